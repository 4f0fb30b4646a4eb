//! A sink that prints rows as JSON lines; deletions carry `"__op":"delete"`.

use std::io::Write;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;

use super::filesystem::json_lines;
use super::{ChangeKind, SinkWriter};
use crate::error::{EngineError, Result};

/// Prints rows to standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    buffer: Vec<u8>,
}

#[async_trait]
impl SinkWriter for StdoutSink {
    async fn write(&mut self, _epoch: u64, batch: &RecordBatch, kind: ChangeKind) -> Result<()> {
        json_lines(batch, kind, &mut self.buffer)
    }

    async fn commit(&mut self, _epoch: u64) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buffer)
            .and_then(|()| out.flush())
            .map_err(|e| EngineError::io("writing to stdout", e))?;
        self.buffer.clear();
        Ok(())
    }
}
