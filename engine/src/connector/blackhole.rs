//! A sink that drops every row (benchmarks, debugging).

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;

use super::{ChangeKind, SinkWriter};
use crate::error::Result;

/// Accepts and drops rows.
#[derive(Debug)]
pub struct BlackholeSink;

#[async_trait]
impl SinkWriter for BlackholeSink {
    async fn write(&mut self, _epoch: u64, _batch: &RecordBatch, _kind: ChangeKind) -> Result<()> {
        Ok(())
    }

    async fn commit(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }
}
