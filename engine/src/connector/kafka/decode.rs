//! Kafka messages of one partition into one Arrow batch: JSON values decoded in bulk, metadata
//! columns filled from the messages.
//!
//! The bulk path first tries the one-pass [`FlatJsonDecoder`]; when it declines, it feeds every
//! message to one arrow-json decoder and checks after each that it produced exactly one complete
//! record. If any message breaks that (or a value has the wrong type, which
//! shows at flush), the chunk is decoded again one message at a time so that only the bad
//! messages are dropped and reported.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;

use crate::connector::flat_json::FlatJsonDecoder;
use crate::connector::{MetadataKey, SourceColumn};

/// One message's metadata and where its value is in [`Chunk::bytes`].
#[derive(Debug, Clone)]
pub struct RecordMeta {
    /// The message's offset.
    pub offset: i64,
    /// Its timestamp, milliseconds since the epoch, when the broker gave one.
    pub timestamp: Option<i64>,
    /// Its key as text (lossy UTF-8), when it has one and a column wants it.
    pub key: Option<String>,
    /// Its value within the chunk (empty for a message without a value).
    pub range: Range<usize>,
}

/// Messages of one partition, in offset order, with their values back to back.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The values.
    pub bytes: Vec<u8>,
    /// One per message.
    pub records: Vec<RecordMeta>,
}

impl Chunk {
    /// Appends a message.
    pub fn push(&mut self, offset: i64, timestamp: Option<i64>, key: Option<String>, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.records.push(RecordMeta { offset, timestamp, key, range: start..self.bytes.len() });
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The value of message `index`.
    pub fn value(&self, index: usize) -> &[u8] {
        &self.bytes[self.records[index].range.clone()]
    }
}

/// A message that could not be decoded: its index in the chunk and why.
#[derive(Debug)]
pub struct BadRecord {
    /// Index in the chunk.
    pub index: usize,
    /// What is wrong.
    pub error: String,
}

/// Decodes chunks into batches of a source's raw schema.
#[derive(Debug)]
pub struct JsonDecoder {
    physical: SchemaRef,
    raw: SchemaRef,
    columns: Vec<SourceColumn>,
    /// The one-pass decoder tried first, when the physical columns allow it.
    flat: Option<FlatJsonDecoder>,
}

impl JsonDecoder {
    /// A decoder producing `raw` (physical and metadata columns, described by `columns`).
    pub fn new(raw: SchemaRef, columns: Vec<SourceColumn>) -> Self {
        let physical = Arc::new(Schema::new(
            raw.fields()
                .iter()
                .zip(&columns)
                .filter(|(_, c)| matches!(c, SourceColumn::Physical))
                .map(|(f, _)| Arc::clone(f))
                .collect::<Vec<_>>(),
        ));
        let flat = FlatJsonDecoder::new(Arc::clone(&physical));
        Self { physical, raw, columns, flat }
    }

    /// Whether a column wants message keys.
    pub fn wants_keys(&self) -> bool {
        self.columns.iter().any(|c| matches!(c, SourceColumn::Metadata(MetadataKey::Key)))
    }

    /// Decodes `chunk` of `partition`: the good messages as one batch, and the bad ones.
    pub fn decode(
        &self,
        partition: i32,
        chunk: &Chunk,
    ) -> Result<(RecordBatch, Vec<BadRecord>), ArrowError> {
        let (physical, good, bad) = match self.decode_bulk(chunk) {
            Ok(batch) => (batch, (0..chunk.len()).collect(), vec![]),
            Err(_) => self.decode_each(chunk)?,
        };
        Ok((self.with_metadata(partition, chunk, physical, &good)?, bad))
    }

    fn decode_bulk(&self, chunk: &Chunk) -> Result<RecordBatch, ArrowError> {
        if self.physical.fields().is_empty() {
            return empty_columns(&self.physical, chunk.len());
        }
        let values = (0..chunk.len()).map(|index| chunk.value(index));
        if let Some(batch) = self.flat.as_ref().and_then(|flat| flat.decode(values)) {
            return Ok(batch);
        }
        let mut decoder = ReaderBuilder::new(Arc::clone(&self.physical))
            .with_batch_size(chunk.len() + 1)
            .build_decoder()?;
        for index in 0..chunk.len() {
            feed(&mut decoder, chunk.value(index))?;
            if decoder.has_partial_record() || decoder.len() != index + 1 {
                return Err(ArrowError::JsonError(format!(
                    "message {index} is not one JSON object"
                )));
            }
        }
        let batch = decoder.flush()?;
        Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(&self.physical))))
    }

    /// Decodes one message at a time; returns the good rows, their indexes and the bad messages.
    fn decode_each(
        &self,
        chunk: &Chunk,
    ) -> Result<(RecordBatch, Vec<usize>, Vec<BadRecord>), ArrowError> {
        let mut batches = vec![];
        let mut good = vec![];
        let mut bad = vec![];
        for index in 0..chunk.len() {
            match self.decode_one(chunk.value(index)) {
                Ok(batch) => {
                    batches.push(batch);
                    good.push(index);
                }
                Err(error) => bad.push(BadRecord { index, error }),
            }
        }
        let batch = concat_batches(&self.physical, &batches)?;
        Ok((batch, good, bad))
    }

    fn decode_one(&self, value: &[u8]) -> Result<RecordBatch, String> {
        if value.trim_ascii().is_empty() {
            return Err("the message has no value".into());
        }
        let mut decoder = ReaderBuilder::new(Arc::clone(&self.physical))
            .with_batch_size(2)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        feed(&mut decoder, value).map_err(|e| e.to_string())?;
        if decoder.has_partial_record() {
            return Err("truncated JSON".into());
        }
        if decoder.len() != 1 {
            return Err(format!("expected one JSON object, found {}", decoder.len()));
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == 1 => Ok(batch),
            Ok(_) => Err("expected one JSON object".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Adds the metadata columns of the messages at `good` to `physical`.
    fn with_metadata(
        &self,
        partition: i32,
        chunk: &Chunk,
        physical: RecordBatch,
        good: &[usize],
    ) -> Result<RecordBatch, ArrowError> {
        if physical.num_columns() == self.raw.fields().len() {
            return Ok(physical);
        }
        let rows = good.iter().map(|&i| &chunk.records[i]);
        let mut decoded = physical.columns().iter();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (column, field) in self.columns.iter().zip(self.raw.fields()) {
            let array: ArrayRef = match column {
                SourceColumn::Physical => match decoded.next() {
                    Some(array) => Arc::clone(array),
                    None => return Err(ArrowError::SchemaError("physical column missing".into())),
                },
                SourceColumn::Metadata(MetadataKey::Partition) => {
                    Arc::new(Int64Array::from(vec![i64::from(partition); good.len()]))
                }
                SourceColumn::Metadata(MetadataKey::Offset) => {
                    Arc::new(Int64Array::from_iter_values(rows.clone().map(|r| r.offset)))
                }
                SourceColumn::Metadata(MetadataKey::Timestamp) => {
                    let millis = rows.clone().map(|r| r.timestamp);
                    match field.data_type() {
                        DataType::Int64 => Arc::new(Int64Array::from_iter(millis)),
                        _ => Arc::new(TimestampMillisecondArray::from_iter(millis)),
                    }
                }
                SourceColumn::Metadata(MetadataKey::Key) => {
                    Arc::new(StringArray::from_iter(rows.clone().map(|r| r.key.as_deref())))
                }
            };
            columns.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(good.len()));
        RecordBatch::try_new_with_options(Arc::clone(&self.raw), columns, &options)
    }
}

/// Feeds all of `bytes` to `decoder`.
fn feed(
    decoder: &mut datafusion::arrow::json::reader::Decoder,
    bytes: &[u8],
) -> Result<(), ArrowError> {
    let mut consumed = 0;
    while consumed < bytes.len() {
        let n = decoder.decode(&bytes[consumed..])?;
        if n == 0 {
            return Err(ArrowError::JsonError("more than one JSON object in a message".into()));
        }
        consumed += n;
    }
    Ok(())
}

fn empty_columns(schema: &SchemaRef, rows: usize) -> Result<RecordBatch, ArrowError> {
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::clone(schema), vec![], &options)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Float64Array};
    use datafusion::arrow::datatypes::{Field, Int64Type};

    use super::*;

    fn decoder() -> JsonDecoder {
        let raw = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("price", DataType::Float64, false),
            Field::new("off", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("k", DataType::Utf8, true),
        ]));
        let columns = vec![
            SourceColumn::Physical,
            SourceColumn::Physical,
            SourceColumn::Metadata(MetadataKey::Offset),
            SourceColumn::Metadata(MetadataKey::Timestamp),
            SourceColumn::Metadata(MetadataKey::Key),
        ];
        JsonDecoder::new(raw, columns)
    }

    fn chunk(values: &[&str]) -> Chunk {
        let mut chunk = Chunk::default();
        for (i, v) in values.iter().enumerate() {
            let i = i as i64;
            chunk.push(100 + i, Some(1_000 + i), Some(format!("k{i}")), v.as_bytes());
        }
        chunk
    }

    #[test]
    fn good_messages_decode_in_bulk_with_metadata() {
        let c =
            chunk(&[r#"{"symbol":"A","price":1.5,"extra":true}"#, r#"{"price":2,"symbol":"B"}"#]);
        let (batch, bad) = decoder().decode(3, &c).unwrap();
        assert!(bad.is_empty());
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_string::<i32>().value(1), "B");
        let prices: &Float64Array = batch.column(1).as_primitive();
        assert_eq!(prices.values(), &[1.5, 2.0]);
        assert_eq!(batch.column(2).as_primitive::<Int64Type>().values(), &[100, 101]);
        assert_eq!(batch.column(4).as_string::<i32>().value(0), "k0");
    }

    #[test]
    fn bad_messages_are_isolated_by_index() {
        let c = chunk(&[
            r#"{"symbol":"A","price":1}"#,
            r#"{"symbol":"B","price":"#,
            r#"{"symbol":"C","price":3}"#,
            "",
            r#"{"symbol":"D","price":"four"}"#,
            r#"{"symbol":"E","price":5}{"symbol":"F","price":6}"#,
            r#"{"price":7}"#,
            r#"{"symbol":"G","price":8}"#,
        ]);
        let (batch, bad) = decoder().decode(0, &c).unwrap();
        let symbols: Vec<&str> = batch.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(symbols, ["A", "C", "G"]);
        assert_eq!(batch.column(2).as_primitive::<Int64Type>().values(), &[100, 102, 107]);
        let indexes: Vec<usize> = bad.iter().map(|b| b.index).collect();
        assert_eq!(indexes, [1, 3, 4, 5, 6]);
    }
}
