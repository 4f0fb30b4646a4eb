//! The micro-batch slot: where the runtime puts a micro-batch, and the DataFusion table and plan
//! leaf (`MicroBatchExec`) that the planner registers to read it.
//!
//! DataFusion plans are built once per query; each micro-batch is put into the slot and the
//! plan is executed again, so no planning happens on the hot path.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions,
};

/// Holds the batches of the current micro-batch for one plan leaf.
#[derive(Debug)]
pub struct BatchSlot {
    schema: SchemaRef,
    batches: Mutex<Vec<RecordBatch>>,
}

impl BatchSlot {
    /// An empty slot for batches of `schema`.
    pub fn new(schema: SchemaRef) -> Arc<Self> {
        Arc::new(Self { schema, batches: Mutex::new(vec![]) })
    }

    /// The schema of the batches this slot holds.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Puts the next micro-batch in, replacing anything not yet read.
    pub fn fill(&self, batches: Vec<RecordBatch>) {
        *self.batches.lock().unwrap_or_else(|e| e.into_inner()) = batches;
    }

    fn take(&self) -> Vec<RecordBatch> {
        std::mem::take(&mut *self.batches.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A table whose rows are whatever the slot holds when its plan runs.
#[derive(Debug)]
pub struct SlotTable {
    slot: Arc<BatchSlot>,
}

impl SlotTable {
    /// A table reading `slot`.
    pub fn new(slot: Arc<BatchSlot>) -> Arc<Self> {
        Arc::new(Self { slot })
    }
}

#[async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.slot.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SlotExec::new(Arc::clone(&self.slot), projection.cloned())?))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Unsupported; filters.len()])
    }
}

/// The plan leaf that drains a [`BatchSlot`] each time it is executed.
#[derive(Debug)]
pub struct SlotExec {
    slot: Arc<BatchSlot>,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl SlotExec {
    fn new(slot: Arc<BatchSlot>, projection: Option<Vec<usize>>) -> DfResult<Self> {
        let schema = match &projection {
            Some(indices) => Arc::new(slot.schema().project(indices)?),
            None => Arc::clone(slot.schema()),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self { slot, projection, properties: Arc::new(properties) })
    }
}

impl DisplayAs for SlotExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MicroBatchExec: projection={:?}", self.projection)
    }
}

impl ExecutionPlan for SlotExec {
    fn name(&self) -> &str {
        "MicroBatchExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let batches = self.slot.take();
        Ok(Box::pin(MemoryStream::try_new(
            batches,
            Arc::clone(self.slot.schema()),
            self.projection.clone(),
        )?))
    }
}
