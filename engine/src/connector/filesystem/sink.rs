//! Writes each micro-batch's rows to a new file: written under a hidden temporary name and
//! renamed into place when the micro-batch commits, so readers never see half a file. Files are
//! named `part-<query>-<number>`, numbered per query, so that several queries can write one
//! table: their files never collide, and each query's files sort in the order it wrote them.

use std::fs::File;
use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use super::{FileFormat, FilesystemOptions, json_lines};
use crate::connector::{ChangeKind, SinkWriter};
use crate::error::{EngineError, Result};

enum Pending {
    Json(Vec<u8>),
    Parquet(Box<ArrowWriter<File>>),
}

/// A filesystem sink.
pub struct FileSink {
    table: String,
    dir: PathBuf,
    format: FileFormat,
    schema: SchemaRef,
    /// `part-<query>-`: what this writer's file names start with.
    prefix: String,
    next_file: u64,
    pending: Option<Pending>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").field("table", &self.table).field("dir", &self.dir).finish()
    }
}

impl FileSink {
    /// A sink writing the files of query `writer` into `options.path`, after any part files of
    /// the same query already there.
    pub fn new(
        table: &str,
        writer: &str,
        options: &FilesystemOptions,
        schema: SchemaRef,
    ) -> Result<Self> {
        let prefix = format!("part-{}-", writer.replace(['/', '\\'], "_"));
        let dir = options.path.clone();
        let fail = |e: std::io::Error| {
            EngineError::connector(
                format!("filesystem sink '{table}'"),
                format!("{}: {e}", dir.display()),
            )
        };
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let mut next_file = 0;
        for entry in std::fs::read_dir(&dir).map_err(fail)? {
            let name = entry.map_err(fail)?.file_name();
            let name = name.to_string_lossy();
            let number = name.strip_prefix(prefix.as_str()).and_then(|r| r.split('.').next());
            if let Some(Ok(n)) = number.map(str::parse::<u64>) {
                next_file = next_file.max(n + 1);
            }
        }
        if options.format == FileFormat::Csv {
            return Err(EngineError::connector(
                format!("filesystem sink '{table}'"),
                "CSV is read-only; write 'json' or 'parquet'",
            ));
        }
        Ok(Self {
            table: table.to_string(),
            dir,
            format: options.format,
            schema,
            prefix,
            next_file,
            pending: None,
        })
    }

    fn extension(&self) -> &'static str {
        match self.format {
            FileFormat::Parquet => "parquet",
            _ => "jsonl",
        }
    }

    fn temp_path(&self) -> PathBuf {
        self.dir.join(format!(".{}{:010}.{}.tmp", self.prefix, self.next_file, self.extension()))
    }

    fn error(&self, message: impl std::fmt::Display) -> EngineError {
        EngineError::connector(format!("filesystem sink '{}'", self.table), message.to_string())
    }
}

#[async_trait]
impl SinkWriter for FileSink {
    async fn write(&mut self, _epoch: u64, batch: &RecordBatch, kind: ChangeKind) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.pending.is_none() {
            self.pending = Some(match self.format {
                FileFormat::Parquet => {
                    let file = File::create(self.temp_path()).map_err(|e| self.error(e))?;
                    Pending::Parquet(Box::new(
                        ArrowWriter::try_new(file, self.schema.clone(), None)
                            .map_err(|e| self.error(e))?,
                    ))
                }
                _ => Pending::Json(vec![]),
            });
        }
        match self.pending.as_mut().expect("set above") {
            Pending::Json(buffer) => json_lines(batch, kind, buffer),
            Pending::Parquet(writer) => {
                if kind == ChangeKind::Delete {
                    return Err(self.error("Parquet files cannot record deletions"));
                }
                writer
                    .write(batch)
                    .map_err(|e| EngineError::connector("filesystem sink", e.to_string()))
            }
        }
    }

    async fn commit(&mut self, _epoch: u64) -> Result<()> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let temp = self.temp_path();
        match pending {
            Pending::Json(buffer) => std::fs::write(&temp, buffer).map_err(|e| self.error(e))?,
            Pending::Parquet(writer) => {
                writer.close().map_err(|e| self.error(e))?;
            }
        }
        let target =
            self.dir.join(format!("{}{:010}.{}", self.prefix, self.next_file, self.extension()));
        std::fs::rename(&temp, &target).map_err(|e| self.error(e))?;
        self.next_file += 1;
        Ok(())
    }
}
