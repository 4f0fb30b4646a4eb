//! Reads a filesystem table as a stream: every file is a partition, read a bounded number of
//! rows at a time. A bad record is reported with `file:line` and skipped; the rest of its chunk
//! is kept.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::Decoder as JsonDecoder;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{FileFormat, FilesystemOptions, list_files};
use crate::connector::flat_json::FlatJsonDecoder;
use crate::connector::{
    Malformed, MetadataKey, Origins, PartitionBatch, Polled, Record, RecordLocation, RowOrigins,
    SourceColumn, SourceReader,
};
use crate::error::{EngineError, Result};

#[derive(Debug)]
struct Partition {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// Byte position of the next unread line (JSON, CSV) or rows read (Parquet).
    position: u64,
    /// Line number of the next line, 1-based.
    line: u64,
    /// Records read so far: the next record's offset.
    records: u64,
    finished: bool,
}

/// A line of a chunk with where it came from.
struct Line {
    number: u64,
    offset: u64,
    /// Where the line's content starts in its file.
    byte: u64,
    range: std::ops::Range<usize>,
}

/// Decoded rows of a file with each one's record offset, and where they came from.
type Decoded = (RecordBatch, Vec<u64>, Origins);

/// Where each row of a chunk of lines came from: the line's number and its bytes' place in the
/// file (read again only for a row found bad, so no copy of the chunk is kept).
#[derive(Debug)]
struct LineOrigins {
    path: Arc<PathBuf>,
    /// Per row: line number, byte position, length.
    lines: Vec<(u64, u64, u32)>,
}

impl LineOrigins {
    fn new(path: &Path, lines: &[Line]) -> Self {
        let lines = lines.iter().map(|l| (l.number, l.byte, l.range.len() as u32)).collect();
        Self { path: Arc::new(path.to_path_buf()), lines }
    }
}

impl RowOrigins for LineOrigins {
    fn len(&self) -> usize {
        self.lines.len()
    }

    fn record(&self, row: usize) -> Option<Record> {
        let (line, byte, len) = *self.lines.get(row)?;
        let read = || -> std::io::Result<Vec<u8>> {
            let mut file = File::open(self.path.as_ref())?;
            file.seek(SeekFrom::Start(byte))?;
            let mut raw = vec![0; len as usize];
            file.read_exact(&mut raw)?;
            Ok(raw)
        };
        let location = RecordLocation::Line { path: Arc::clone(&self.path), line };
        Some(Record { location, raw: read().ok(), key: None })
    }
}

/// Where each row of a Parquet read came from: its row number in the file.
#[derive(Debug)]
struct ParquetOrigins {
    path: Arc<PathBuf>,
    first: u64,
    rows: usize,
}

impl RowOrigins for ParquetOrigins {
    fn len(&self) -> usize {
        self.rows
    }

    fn record(&self, row: usize) -> Option<Record> {
        let location =
            RecordLocation::Row { path: Arc::clone(&self.path), row: self.first + row as u64 };
        Some(Record { location, raw: None, key: None })
    }
}

/// Streams the files of a filesystem table.
#[derive(Debug)]
pub struct FileSource {
    table: String,
    options: FilesystemOptions,
    /// Decoded columns: the physical columns, in declared order.
    physical: SchemaRef,
    /// What the source emits: physical and metadata columns in declared order.
    raw: SchemaRef,
    columns: Vec<SourceColumn>,
    partitions: Vec<Partition>,
    bounded: bool,
    /// The buffer lines are read into, kept between polls.
    scratch: Vec<u8>,
    /// JSON decoders kept between polls (one per decoding thread), so their buffers keep their
    /// capacity instead of growing again for every micro-batch; with the batch size they were
    /// built for.
    json_decoders: (usize, Vec<JsonDecoder>),
    /// The one-pass decoder tried first on JSON lines, when the physical columns allow it.
    flat_json: Option<FlatJsonDecoder>,
}

impl FileSource {
    /// A source for `table` producing rows of `raw` (whose columns are described by `columns`).
    /// `bounded` input is read once to its end (`--once`); otherwise files are followed as they
    /// grow and new files are picked up.
    pub fn new(
        table: &str,
        options: &FilesystemOptions,
        raw: SchemaRef,
        columns: Vec<SourceColumn>,
        bounded: bool,
    ) -> Self {
        let physical = Arc::new(Schema::new(
            raw.fields()
                .iter()
                .zip(&columns)
                .filter(|(_, c)| matches!(c, SourceColumn::Physical))
                .map(|(f, _)| f.as_ref().clone())
                .collect::<Vec<_>>(),
        ));
        Self {
            table: table.to_string(),
            options: options.clone(),
            flat_json: FlatJsonDecoder::new(Arc::clone(&physical)),
            physical,
            raw,
            columns,
            partitions: vec![],
            bounded,
            scratch: Vec::new(),
            json_decoders: (0, vec![]),
        }
    }

    fn error(&self, message: impl Into<String>) -> EngineError {
        EngineError::connector(format!("filesystem source '{}'", self.table), message)
    }

    /// Adds files that appeared since the last call, in name order.
    fn discover(&mut self) -> Result<()> {
        let files = list_files(&self.options.path).map_err(|e| self.error(e))?;
        for path in files {
            if !self.partitions.iter().any(|p| p.path == path) {
                self.partitions.push(Partition {
                    path,
                    reader: None,
                    position: 0,
                    line: 1,
                    records: 0,
                    finished: false,
                });
            }
        }
        Ok(())
    }

    fn read_partition(&mut self, index: usize, max_rows: usize, polled: &mut Polled) -> Result<()> {
        let decoded = match self.options.format {
            FileFormat::Parquet => self.read_parquet(index, max_rows)?,
            FileFormat::Json | FileFormat::Csv => {
                self.read_lines(index, max_rows, &mut polled.malformed)?
            }
        };
        if let Some((batch, offsets, origins)) = decoded {
            let batch = self.with_metadata(index, batch, offsets)?;
            polled.batches.push(PartitionBatch { partition: index, batch, origins });
        }
        Ok(())
    }

    fn read_lines(
        &mut self,
        index: usize,
        max_rows: usize,
        malformed: &mut Vec<Malformed>,
    ) -> Result<Option<Decoded>> {
        let skip_header = self.options.format == FileFormat::Csv && self.options.csv_header;
        let bounded = self.bounded;
        let partition = &mut self.partitions[index];
        if partition.finished {
            return Ok(None);
        }
        let path = partition.path.clone();
        let io_error = |e: std::io::Error| {
            EngineError::connector("filesystem source", format!("reading {}: {e}", path.display()))
        };
        if partition.reader.is_none() {
            let mut file = File::open(&partition.path).map_err(io_error)?;
            file.seek(SeekFrom::Start(partition.position)).map_err(io_error)?;
            partition.reader = Some(BufReader::with_capacity(1 << 20, file));
        }
        let reader = partition.reader.as_mut().expect("opened above");
        // Lines are read straight into one reused buffer: no copy per line, no fresh pages.
        let mut chunk = std::mem::take(&mut self.scratch);
        chunk.clear();
        let mut lines = Vec::new();
        while lines.len() < max_rows {
            let start = chunk.len();
            let read = reader.read_until(b'\n', &mut chunk).map_err(io_error)?;
            if read == 0 {
                if bounded {
                    partition.finished = true;
                }
                break;
            }
            if chunk.last() != Some(&b'\n') && !bounded {
                // A line still being written: read it again next time.
                chunk.truncate(start);
                reader.seek(SeekFrom::Current(-(read as i64))).map_err(io_error)?;
                break;
            }
            let line_start = partition.position;
            partition.position += read as u64;
            let number = partition.line;
            partition.line += 1;
            let line = &chunk[start..];
            let content = line.trim_ascii();
            let (lead, len) = (content.as_ptr() as usize - line.as_ptr() as usize, content.len());
            if len == 0 || (skip_header && number == 1) {
                chunk.truncate(start);
                continue;
            }
            // Keep the line without surrounding whitespace (a CSV field must not gain a '\r').
            chunk.truncate(start + lead + len);
            chunk.drain(start..start + lead);
            let end = start + len;
            chunk.push(b'\n');
            let byte = line_start + lead as u64;
            lines.push(Line { number, offset: partition.records, byte, range: start..end });
            partition.records += 1;
        }
        let result = if lines.is_empty() {
            Ok(None)
        } else {
            match self.decode_in_parallel(&chunk, &lines, max_rows) {
                Ok(batch) => {
                    let offsets = lines.iter().map(|l| l.offset).collect();
                    let origins = Origins::of(LineOrigins::new(&path, &lines));
                    Ok(Some((batch, offsets, origins)))
                }
                Err(_) => self.decode_line_by_line(index, &chunk, &lines, malformed).map(Some),
            }
        };
        self.scratch = chunk;
        result
    }

    /// Decodes a chunk of whole lines, JSON split across threads when it is large; each JSON
    /// piece goes through the one-pass decoder, or arrow-json's when that one declines.
    fn decode_in_parallel(
        &mut self,
        chunk: &[u8],
        lines: &[Line],
        max_rows: usize,
    ) -> Result<RecordBatch, ArrowError> {
        const MIN_ROWS_PER_THREAD: usize = 16_384;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let pieces = (lines.len() / MIN_ROWS_PER_THREAD).clamp(1, threads);
        if self.options.format != FileFormat::Json {
            return self.decode(chunk, lines.len());
        }
        if self.json_decoders.0 != max_rows || self.json_decoders.1.len() < pieces {
            let decoders = (0..threads)
                .map(|_| {
                    ReaderBuilder::new(Arc::clone(&self.physical))
                        .with_batch_size(max_rows)
                        .build_decoder()
                })
                .collect::<Result<_, _>>()?;
            self.json_decoders = (max_rows, decoders);
        }
        let per_piece = lines.len().div_ceil(pieces);
        let (physical, flat_json) = (&self.physical, self.flat_json.as_ref());
        let batches = std::thread::scope(|scope| {
            let handles: Vec<_> = lines
                .chunks(per_piece)
                .zip(self.json_decoders.1.iter_mut())
                .map(|(piece, decoder)| {
                    let bytes = &chunk[piece[0].range.start..piece[piece.len() - 1].range.end + 1];
                    scope.spawn(move || {
                        let records = piece.iter().map(|line| &chunk[line.range.clone()]);
                        match flat_json.and_then(|flat| flat.decode(records)) {
                            Some(batch) => Ok(batch),
                            None => decode_json(decoder, physical, bytes, piece.len()),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ArrowError::JsonError("decoder thread panicked".into()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let batches = batches.inspect_err(|_| {
            // A decoder that failed may hold half a record: build fresh ones next time.
            self.json_decoders = (0, vec![]);
        })?;
        concat_batches(&self.physical, &batches)
    }

    /// Decodes one line at a time, reporting the lines that fail.
    fn decode_line_by_line(
        &self,
        index: usize,
        chunk: &[u8],
        lines: &[Line],
        malformed: &mut Vec<Malformed>,
    ) -> Result<Decoded> {
        let mut batches = vec![];
        let mut good = vec![];
        for line in lines {
            let mut bytes = chunk[line.range.clone()].to_vec();
            bytes.push(b'\n');
            let error = match self.decode(&bytes, 1) {
                Ok(batch) if batch.num_rows() == 1 => {
                    batches.push(batch);
                    good.push(Line { range: line.range.clone(), ..*line });
                    continue;
                }
                Ok(_) => "not one record".to_string(),
                Err(err) => err.to_string(),
            };
            bytes.pop();
            let path = Arc::new(self.partitions[index].path.clone());
            let location = RecordLocation::Line { path, line: line.number };
            malformed.push(Malformed {
                record: Record { location, raw: Some(bytes), key: None },
                error,
            });
        }
        let batch =
            concat_batches(&self.physical, &batches).map_err(|e| self.error(e.to_string()))?;
        let offsets = good.iter().map(|l| l.offset).collect();
        let origins = Origins::of(LineOrigins::new(&self.partitions[index].path, &good));
        Ok((batch, offsets, origins))
    }

    fn decode(&self, bytes: &[u8], rows: usize) -> Result<RecordBatch, ArrowError> {
        let schema = Arc::clone(&self.physical);
        match self.options.format {
            FileFormat::Json => {
                let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
                    .with_batch_size(rows.max(1))
                    .build_decoder()?;
                decode_json(&mut decoder, &schema, bytes, rows)
            }
            FileFormat::Csv => {
                let mut decoder = datafusion::arrow::csv::ReaderBuilder::new(schema)
                    .with_header(false)
                    .with_delimiter(self.options.csv_delimiter)
                    .with_batch_size(rows.max(1))
                    .build_decoder();
                feed(bytes, |b| decoder.decode(b))?;
                let batch = decoder.flush()?;
                expect_rows(batch, &self.physical, rows)
            }
            FileFormat::Parquet => unreachable!("parquet is not line based"),
        }
    }

    fn read_parquet(&mut self, index: usize, max_rows: usize) -> Result<Option<Decoded>> {
        let partition = &self.partitions[index];
        if partition.finished {
            return Ok(None);
        }
        let path = partition.path.clone();
        let start = partition.position;
        let fail = |e: &dyn std::fmt::Display| self.error(format!("{}: {e}", path.display()));
        let file = File::open(&path).map_err(|e| fail(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(&e))?;
        let total = builder.metadata().file_metadata().num_rows() as u64;
        let reader = builder
            .with_offset(start as usize)
            .with_limit(max_rows)
            .with_batch_size(max_rows.min(65_536))
            .build()
            .map_err(|e| fail(&e))?;
        let mut batches = vec![];
        for batch in reader {
            batches.push(self.conform(&batch.map_err(|e| fail(&e))?, &path)?);
        }
        let batch = concat_batches(&self.physical, &batches).map_err(|e| fail(&e))?;
        let partition = &mut self.partitions[index];
        let rows = batch.num_rows() as u64;
        partition.position += rows;
        partition.records += rows;
        if partition.position >= total {
            // Parquet files are written whole: once read, a file never grows.
            partition.finished = true;
        }
        if rows == 0 {
            return Ok(None);
        }
        let origins =
            Origins::of(ParquetOrigins { path: Arc::new(path), first: start, rows: rows as usize });
        Ok(Some((batch, (start..start + rows).collect(), origins)))
    }

    /// Picks the declared columns of a Parquet batch by name and casts them to the declared types.
    fn conform(&self, batch: &RecordBatch, path: &Path) -> Result<RecordBatch> {
        let columns = self
            .physical
            .fields()
            .iter()
            .map(|field| {
                let column = batch.column_by_name(field.name()).ok_or_else(|| {
                    self.error(format!("{} has no column '{}'", path.display(), field.name()))
                })?;
                cast(column, field.data_type()).map_err(|e| {
                    self.error(format!("{}: column '{}': {e}", path.display(), field.name()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(Arc::clone(&self.physical), columns)
            .map_err(|e| self.error(e.to_string()))
    }

    /// Adds the metadata columns, producing the raw schema.
    fn with_metadata(
        &self,
        index: usize,
        batch: RecordBatch,
        offsets: Vec<u64>,
    ) -> Result<RecordBatch> {
        if batch.num_columns() == self.raw.fields().len() {
            return Ok(batch);
        }
        let mut physical = batch.columns().iter();
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .zip(self.raw.fields())
            .map(|(c, field)| match c {
                SourceColumn::Physical => {
                    Arc::clone(physical.next().expect("one per physical column"))
                }
                // Files have no record timestamps or keys (`metadata` never maps them here).
                SourceColumn::Metadata(MetadataKey::Timestamp | MetadataKey::Key) => {
                    new_null_array(field.data_type(), batch.num_rows())
                }
                SourceColumn::Metadata(MetadataKey::Offset) => {
                    Arc::new(Int64Array::from_iter_values(offsets.iter().map(|o| *o as i64)))
                }
                SourceColumn::Metadata(MetadataKey::Partition) => {
                    Arc::new(Int64Array::from(vec![index as i64; batch.num_rows()]))
                }
            })
            .collect();
        RecordBatch::try_new(Arc::clone(&self.raw), columns).map_err(|e| self.error(e.to_string()))
    }
}

/// Decodes `bytes`, which must hold exactly `rows` JSON records of `schema`, with `decoder`.
fn decode_json(
    decoder: &mut JsonDecoder,
    schema: &SchemaRef,
    bytes: &[u8],
    rows: usize,
) -> Result<RecordBatch, ArrowError> {
    feed(bytes, |b| decoder.decode(b))?;
    let batch = decoder.flush()?;
    expect_rows(batch, schema, rows)
}

/// A decoded batch (an empty one when the decoder had nothing), refused unless it has `rows`.
fn expect_rows(
    batch: Option<RecordBatch>,
    schema: &SchemaRef,
    rows: usize,
) -> Result<RecordBatch, ArrowError> {
    let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    if batch.num_rows() != rows {
        return Err(ArrowError::JsonError(format!(
            "expected {rows} records, decoded {}",
            batch.num_rows()
        )));
    }
    Ok(batch)
}

/// Hands `bytes` to a push decoder until it has taken them all (or stops taking).
fn feed(
    bytes: &[u8],
    mut decode: impl FnMut(&[u8]) -> Result<usize, ArrowError>,
) -> Result<(), ArrowError> {
    let mut consumed = 0;
    while consumed < bytes.len() {
        let n = decode(&bytes[consumed..])?;
        if n == 0 {
            break;
        }
        consumed += n;
    }
    Ok(())
}

/// The checkpointed position of one file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct FilePosition {
    path: PathBuf,
    position: u64,
    line: u64,
    records: u64,
    finished: bool,
}

#[async_trait]
impl SourceReader for FileSource {
    fn position(&self) -> serde_json::Value {
        let files: Vec<FilePosition> = self
            .partitions
            .iter()
            .map(|p| FilePosition {
                path: p.path.clone(),
                position: p.position,
                line: p.line,
                records: p.records,
                finished: p.finished,
            })
            .collect();
        serde_json::json!({ "files": files })
    }

    async fn restore(&mut self, position: &serde_json::Value) -> Result<()> {
        let files: Vec<FilePosition> = serde_json::from_value(position["files"].clone())
            .map_err(|e| self.error(format!("unreadable checkpoint position: {e}")))?;
        self.partitions = files
            .into_iter()
            .map(|f| Partition {
                path: f.path,
                reader: None,
                position: f.position,
                line: f.line,
                records: f.records,
                finished: f.finished,
            })
            .collect();
        Ok(())
    }

    async fn poll(&mut self, max_rows: usize) -> Result<Polled> {
        self.discover()?;
        let mut polled = Polled::default();
        let reading = self.partitions.iter().filter(|p| !p.finished).count();
        let share = max_rows.div_ceil(reading.max(1)).max(1);
        for index in 0..self.partitions.len() {
            let was_finished = self.partitions[index].finished;
            self.read_partition(index, share, &mut polled)?;
            if !was_finished && self.partitions[index].finished {
                polled.finished.push(index);
            }
        }
        polled.partitions = self.partitions.len();
        // Read once to the end, what is not read yet is waiting: read the next batch ahead.
        polled.more_available = self.bounded && self.partitions.iter().any(|p| !p.finished);
        Ok(polled)
    }
}
