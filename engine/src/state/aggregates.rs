//! DataFusion's own aggregate functions, kept per group across micro-batches.
//!
//! Every aggregate runs as a [`GroupsAccumulator`] (DataFusion's adapter wraps the ones that only
//! have a row accumulator). Between micro-batches the state lives in the accumulators; to read a
//! value without losing it, or to drop and merge groups, the state is taken out as Arrow arrays
//! ([`AggregateSet::take_state`]) and merged back into fresh accumulators.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

/// One aggregate call of the query: the function, its argument and ORDER BY expressions and
/// its `FILTER (WHERE ...)`.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    /// The function with its arguments bound.
    pub function: Arc<AggregateFunctionExpr>,
    /// `FILTER (WHERE ...)`, if any.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

impl AggregateCall {
    fn inputs(&self) -> Vec<Arc<dyn PhysicalExpr>> {
        // Arguments first, then ORDER BY expressions: the layout DataFusion's own aggregate
        // operator feeds to order-sensitive accumulators such as first_value.
        let mut inputs = self.function.expressions();
        inputs.extend(self.function.order_bys().iter().map(|sort| Arc::clone(&sort.expr)));
        inputs
    }

    fn accumulator(&self) -> DfResult<Box<dyn GroupsAccumulator>> {
        if self.function.groups_accumulator_supported() {
            self.function.create_groups_accumulator()
        } else {
            let function = Arc::clone(&self.function);
            Ok(Box::new(GroupsAccumulatorAdapter::new(move || function.create_accumulator())))
        }
    }
}

/// The state of every aggregate for every group, taken out of the accumulators.
#[derive(Debug)]
pub struct TakenState {
    /// Per aggregate, its state columns; row `i` belongs to group `i`.
    columns: Vec<Vec<ArrayRef>>,
}

impl TakenState {
    /// Per aggregate, its state columns.
    pub fn columns(&self) -> &[Vec<ArrayRef>] {
        &self.columns
    }

    /// State read back from a checkpoint, shaped like [`columns`](Self::columns).
    pub fn from_columns(columns: Vec<Vec<ArrayRef>>) -> Self {
        Self { columns }
    }
}

/// All aggregates of one query with their accumulators.
pub struct AggregateSet {
    calls: Vec<AggregateCall>,
    inputs: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl std::fmt::Debug for AggregateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateSet").field("calls", &self.calls).finish()
    }
}

impl AggregateSet {
    /// Accumulators for `calls`, with no groups yet.
    pub fn new(calls: Vec<AggregateCall>) -> DfResult<Self> {
        let inputs = calls.iter().map(AggregateCall::inputs).collect();
        let accumulators = Self::fresh(&calls)?;
        Ok(Self { calls, inputs, accumulators })
    }

    fn fresh(calls: &[AggregateCall]) -> DfResult<Vec<Box<dyn GroupsAccumulator>>> {
        calls.iter().map(AggregateCall::accumulator).collect()
    }

    /// Adds the rows of `batch` to the groups `group_ids` (one per row).
    pub fn update(
        &mut self,
        batch: &RecordBatch,
        group_ids: &[usize],
        num_groups: usize,
    ) -> DfResult<()> {
        for ((call, inputs), accumulator) in
            self.calls.iter().zip(&self.inputs).zip(self.accumulators.iter_mut())
        {
            let values = inputs
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
                .collect::<DfResult<Vec<_>>>()?;
            let filter = match &call.filter {
                Some(filter) => {
                    let mask = filter.evaluate(batch)?.into_array(batch.num_rows())?;
                    Some(mask.as_boolean().clone())
                }
                None => None,
            };
            accumulator.update_batch(&values, group_ids, filter.as_ref(), num_groups)?;
        }
        Ok(())
    }

    /// Takes the state of all `num_groups` groups out; the accumulators are left empty.
    pub fn take_state(&mut self, num_groups: usize) -> DfResult<TakenState> {
        let mut columns = Vec::with_capacity(self.accumulators.len());
        for accumulator in self.accumulators.iter_mut() {
            let state = if num_groups == 0 { vec![] } else { accumulator.state(EmitTo::All)? };
            columns.push(state);
        }
        self.accumulators = Self::fresh(&self.calls)?;
        Ok(TakenState { columns })
    }

    /// Puts back the state rows `rows`, row `i` into group `targets[i]`; several rows with one
    /// target are merged into that group.
    pub fn restore(
        &mut self,
        state: &TakenState,
        rows: &[u32],
        targets: &[usize],
        num_groups: usize,
    ) -> DfResult<()> {
        merge_into(&mut self.accumulators, state, rows, targets, num_groups)
    }

    /// The final value of every aggregate for `num_outputs` outputs, output `targets[i]`
    /// merging state row `rows[i]`; the state itself is left as it is.
    pub fn evaluate(
        &self,
        state: &TakenState,
        rows: &[u32],
        targets: &[usize],
        num_outputs: usize,
    ) -> DfResult<Vec<ArrayRef>> {
        let mut accumulators = Self::fresh(&self.calls)?;
        merge_into(&mut accumulators, state, rows, targets, num_outputs)?;
        accumulators.iter_mut().map(|a| a.evaluate(EmitTo::All)).collect()
    }

    /// The state fields of each aggregate, in the order [`TakenState`] holds them.
    pub fn state_fields(&self) -> DfResult<Vec<Vec<datafusion::arrow::datatypes::FieldRef>>> {
        self.calls.iter().map(|c| c.function.state_fields()).collect()
    }

    /// Bytes held by the accumulators.
    pub fn size(&self) -> usize {
        self.accumulators.iter().map(|a| a.size()).sum()
    }
}

fn merge_into(
    accumulators: &mut [Box<dyn GroupsAccumulator>],
    state: &TakenState,
    rows: &[u32],
    targets: &[usize],
    num_groups: usize,
) -> DfResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let indices = UInt32Array::from(rows.to_vec());
    for (accumulator, columns) in accumulators.iter_mut().zip(&state.columns) {
        let picked =
            columns.iter().map(|c| take(c, &indices, None)).collect::<Result<Vec<_>, _>>()?;
        accumulator.merge_batch(&picked, targets, num_groups)?;
    }
    Ok(())
}
