//! The incremental window aggregate of a query: DataFusion's `Aggregate` node lowered into a
//! template the runtime instantiates, and the plan above it re-rooted on the aggregate's slot.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, TableScanBuilder};
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;

use super::query::{QueryContext, df_error, window_name};
use super::window::{WindowCall, window_bound};
use crate::error::{Location, Result};
use crate::slot::{BatchSlot, SlotTable};
use crate::state::aggregates::{AggregateCall, AggregateSet};
use crate::state::keys::KeyInterner;
use crate::state::output::{GroupColumn, OutputBuilder};
use crate::state::session::SessionWindows;
use crate::state::sliced::SlicedWindows;
use crate::state::{WindowAggregate, WindowStore};
use crate::time::window::{WindowAssigner, WindowSpec};

/// Everything needed to build a fresh [`WindowAggregate`].
#[derive(Debug, Clone)]
pub struct AggregateTemplate {
    key_exprs: Vec<Arc<dyn datafusion::physical_expr::PhysicalExpr>>,
    key_types: Vec<DataType>,
    start_expr: Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    calls: Vec<AggregateCall>,
    spec: WindowSpec,
    output: OutputBuilder,
}

impl AggregateTemplate {
    /// An empty aggregate.
    pub fn instantiate(&self) -> Result<WindowAggregate> {
        let store = match self.spec {
            WindowSpec::Tumble { size, .. } => WindowStore::Sliced(SlicedWindows::new(size, size)),
            WindowSpec::Hop { slide, size, .. } => {
                WindowStore::Sliced(SlicedWindows::new(size, slide))
            }
            WindowSpec::Session { gap } => WindowStore::Session(SessionWindows::new(gap)),
        };
        Ok(WindowAggregate::new(
            self.key_exprs.clone(),
            Arc::clone(&self.start_expr),
            AggregateSet::new(self.calls.clone())?,
            KeyInterner::new(&self.key_types).map_err(DataFusionError::from)?,
            store,
            self.output.clone(),
        ))
    }

    /// The schema of the aggregate's output.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.output.schema)
    }

    /// The aggregate calls, for `explain`.
    pub fn describe(&self) -> Vec<String> {
        self.calls.iter().map(|c| c.function.name().to_string()).collect()
    }
}

/// The aggregate of `aggregate` (DataFusion's logical node) lowered into a template of
/// incremental window aggregates over `physical_input`.
pub(super) fn aggregate_template(
    qc: &QueryContext,
    aggregate: &Aggregate,
    physical_input: &SchemaRef,
    call: &WindowCall,
    assigner: &WindowAssigner,
    at: &Location,
) -> Result<AggregateTemplate> {
    let input = aggregate.input.schema();
    let props = qc.state.execution_props();
    let mut key_exprs = vec![];
    let mut key_types = vec![];
    let mut group_columns = vec![];
    let mut start_expr = None;
    let mut has_end = false;
    for expr in &aggregate.group_expr {
        if matches!(expr, Expr::GroupingSet(_)) {
            return crate::sql_err!(
                at,
                "GROUPING SETS, CUBE and ROLLUP are not supported in a continuous query"
            );
        }
        let physical = datafusion::physical_expr::create_physical_expr(
            expr,
            input,
            props,
            &PhysicalPlanningContext::default(),
        )
        .map_err(|e| df_error(e, at))?;
        match window_bound(expr) {
            Some(crate::time::window::WINDOW_START) => {
                group_columns.push(GroupColumn::WindowStart);
                start_expr = Some(physical);
            }
            Some(_) => {
                group_columns.push(GroupColumn::WindowEnd);
                has_end = true;
            }
            None => {
                group_columns.push(GroupColumn::Key(key_exprs.len()));
                key_types.push(expr.get_type(input).map_err(|e| df_error(e, at))?);
                key_exprs.push(physical);
            }
        }
    }
    let (Some(start_expr), true) = (start_expr, has_end) else {
        return crate::sql_err!(
            call.location,
            "{} needs GROUP BY window_start, window_end (plus any keys)",
            window_name(call)
        );
    };
    let calls = aggregate
        .aggr_expr
        .iter()
        .map(|expr| {
            let planning = PhysicalPlanningContext::default();
            let lowered =
                LoweredAggregateBuilder::new(expr, input, physical_input, props, &planning)
                    .with_name(expr.schema_name().to_string())
                    .build()
                    .map_err(|e| df_error(e, at))?;
            Ok(AggregateCall { function: lowered.aggregate, filter: lowered.filter })
        })
        .collect::<Result<Vec<_>>>()?;
    let time_zone = match assigner
        .schema()
        .field_with_name(crate::time::window::WINDOW_START)
        .map(|f| f.data_type().clone())
    {
        Ok(DataType::Timestamp(_, zone)) => zone,
        _ => None,
    };
    let output = OutputBuilder {
        schema: Arc::new(aggregate.schema.as_arrow().clone()),
        group_columns,
        time_zone,
    };
    Ok(AggregateTemplate { key_exprs, key_types, start_expr, calls, spec: call.spec, output })
}

/// The plan above the aggregate, reading the aggregate's output from a slot.
pub(super) fn replace_aggregate(
    plan: &LogicalPlan,
    aggregate: &Aggregate,
    slot: &Arc<BatchSlot>,
) -> Result<LogicalPlan> {
    let provider: Arc<dyn TableProvider> = SlotTable::new(Arc::clone(slot));
    let mut scan = TableScanBuilder::new("__aggregate", provider_as_source(provider)).build()?;
    scan.projected_schema = Arc::clone(&aggregate.schema);
    let replaced = plan.clone().transform_up(|node| {
        Ok(match node {
            LogicalPlan::Aggregate(_) => Transformed::yes(LogicalPlan::TableScan(scan.clone())),
            other => Transformed::no(other),
        })
    })?;
    Ok(replaced.data)
}
