//! A sink that hands a query's committed changes to the process running it: the REPL shows a
//! live query's results from it. It cannot be declared in SQL.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;

use super::{ChangeKind, SinkWriter};
use crate::error::Result;

/// The changes a query committed and nobody has taken yet, shared between the sink and its
/// reader.
#[derive(Clone, Default)]
pub struct Changes {
    committed: Arc<Mutex<Vec<(ChangeKind, RecordBatch)>>>,
}

impl Changes {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every committed change, oldest first.
    pub fn take(&self) -> Vec<(ChangeKind, RecordBatch)> {
        std::mem::take(&mut *self.committed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn append(&self, changes: &mut Vec<(ChangeKind, RecordBatch)>) {
        self.committed.lock().unwrap_or_else(|e| e.into_inner()).append(changes);
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Changes")
    }
}

/// Collects the rows of a micro-batch and publishes them to [`Changes`] when it commits.
#[derive(Debug)]
pub struct MemorySink {
    changes: Changes,
    pending: Vec<(ChangeKind, RecordBatch)>,
}

impl MemorySink {
    /// A sink publishing to `changes`.
    pub fn new(changes: &Changes) -> Self {
        Self { changes: changes.clone(), pending: vec![] }
    }
}

#[async_trait]
impl SinkWriter for MemorySink {
    async fn write(&mut self, _epoch: u64, batch: &RecordBatch, kind: ChangeKind) -> Result<()> {
        self.pending.push((kind, batch.clone()));
        Ok(())
    }

    async fn commit(&mut self, _epoch: u64) -> Result<()> {
        self.changes.append(&mut self.pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[tokio::test]
    async fn only_committed_changes_are_taken() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let changes = Changes::new();
        let mut sink = MemorySink::new(&changes);
        sink.write(0, &batch, ChangeKind::Upsert).await.unwrap();
        sink.write(0, &batch, ChangeKind::Delete).await.unwrap();
        assert!(changes.take().is_empty(), "nothing before the commit");
        sink.commit(0).await.unwrap();
        let taken = changes.take();
        assert_eq!(
            taken.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [ChangeKind::Upsert, ChangeKind::Delete]
        );
        assert!(changes.take().is_empty(), "taken once");
    }
}
