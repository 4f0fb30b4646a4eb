//! The DataFusion plan of a snapshot read: one stream of batches sent by a task that the stream
//! owns, so that dropping the stream (as a satisfied `LIMIT` does) stops the read.

use std::future::Future;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use tokio::sync::mpsc::Sender;

use crate::error::EngineError;

/// Where a read sends its batches; a failed send means nobody wants more.
pub type Batches = Sender<datafusion::error::Result<RecordBatch>>;

/// A scan of `table_schema` projected by `projection`: each execution runs `read` with the
/// projected schema and a [`Batches`] to send batches of it to. DataFusion stops after `limit`
/// rows.
pub fn spawned_scan<R, F>(
    table_schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    read: R,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>>
where
    R: Fn(SchemaRef, Batches) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), EngineError>> + Send + 'static,
{
    let schema = match projection {
        Some(indices) => Arc::new(table_schema.project(indices)?),
        None => Arc::clone(table_schema),
    };
    let stream = SpawnedStream { schema: Arc::clone(&schema), read };
    Ok(Arc::new(StreamingTableExec::try_new(
        schema,
        vec![Arc::new(stream)],
        None,
        [],
        false,
        limit,
    )?))
}

struct SpawnedStream<R> {
    schema: SchemaRef,
    read: R,
}

impl<R> std::fmt::Debug for SpawnedStream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnedStream").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl<R, F> PartitionStream for SpawnedStream<R>
where
    R: Fn(SchemaRef, Batches) -> F + Send + Sync + 'static,
    F: Future<Output = Result<(), EngineError>> + Send + 'static,
{
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let read = (self.read)(Arc::clone(&self.schema), builder.tx());
        builder.spawn(async move { read.await.map_err(|e| DataFusionError::External(e.into())) });
        builder.build()
    }
}
