//! One query's DataFusion session: tables, views and window relations registered over slots;
//! planning SQL to logical and physical plans with errors at their positions.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::ViewTable;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::coercion::refuse_text_number_mixes;
use super::context::new_session;
use super::window::{WindowCall, rewrite_windows};
use crate::catalog::{TableDef, df_message, df_position};
use crate::error::{EngineError, Location, Result};
use crate::slot::{BatchSlot, SlotTable};
use crate::sql::{CreateView, Located};
use crate::time::window::{WindowSpec, windowed_schema};

/// A DataFusion planning error at its position in the statement at `at`.
pub(super) fn df_error(err: DataFusionError, at: &Location) -> EngineError {
    let location = match df_position(&err) {
        Some((line, column)) => Location::new(&at.file, line, column),
        None => at.clone(),
    };
    EngineError::sql(location, df_message(&err))
}

/// One query's DataFusion session: its tables and views registered over slots, the windowed
/// relations its window calls read.
pub(super) struct QueryContext {
    pub(super) ctx: SessionContext,
    pub(super) state: SessionState,
    tables: Vec<Arc<TableDef>>,
    source_slots: Vec<(String, Arc<BatchSlot>)>,
    pub(super) windows: Vec<(WindowCall, Arc<BatchSlot>)>,
    next_window: usize,
}

impl QueryContext {
    pub(super) fn new(tables: &[Arc<TableDef>]) -> Result<Self> {
        let ctx = new_session();
        let mut source_slots = vec![];
        for table in tables {
            let slot = BatchSlot::new(Arc::clone(&table.schema));
            ctx.register_table(table.name.as_str(), SlotTable::new(Arc::clone(&slot)))?;
            source_slots.push((table.name.clone(), slot));
        }
        let state = ctx.state();
        Ok(Self {
            ctx,
            state,
            tables: tables.to_vec(),
            source_slots,
            windows: vec![],
            next_window: 0,
        })
    }

    pub(super) fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Rewrites window calls in `query`, registers their relations and plans the query.
    pub(super) async fn plan_query(
        &mut self,
        mut query: Box<ast::Query>,
        at: &Location,
    ) -> Result<LogicalPlan> {
        let calls = rewrite_windows(&mut query, &self.state, at, &mut self.next_window)?;
        for call in calls {
            let provider = self.ctx.table_provider(call.input.as_str()).await.map_err(|_| {
                EngineError::sql(
                    call.location.clone(),
                    format!("{}: unknown table or view '{}'", window_name(&call), call.input),
                )
            })?;
            let input_schema = provider.schema();
            let zone = match input_schema
                .field_with_name(&call.time_column)
                .map(|f| f.data_type().clone())
            {
                Ok(DataType::Timestamp(_, zone)) => zone,
                Ok(other) => {
                    return crate::sql_err!(
                        call.location,
                        "{}: column '{}' is {other}, not a TIMESTAMP",
                        window_name(&call),
                        call.time_column
                    );
                }
                Err(_) => {
                    return crate::sql_err!(
                        call.location,
                        "{}: '{}' has no column '{}'",
                        window_name(&call),
                        call.input,
                        call.time_column
                    );
                }
            };
            let slot = BatchSlot::new(Arc::new(windowed_schema(&input_schema, zone)));
            self.ctx.register_table(call.relation.as_str(), SlotTable::new(Arc::clone(&slot)))?;
            self.windows.push((call, slot));
        }
        self.state = self.ctx.state();
        let statement = DfStatement::Statement(Box::new(ast::Statement::Query(query)));
        let plan = self.state.statement_to_plan(statement).await.map_err(|e| df_error(e, at))?;
        refuse_text_number_mixes(&plan, at)?;
        Ok(plan)
    }

    pub(super) async fn register_views(&mut self, views: &[Located<CreateView>]) -> Result<()> {
        for view in views {
            let plan = self.plan_query(view.node.query.clone(), &view.location).await?;
            self.ctx
                .register_table(view.node.name.as_str(), Arc::new(ViewTable::new(plan, None)))?;
        }
        self.state = self.ctx.state();
        Ok(())
    }

    pub(super) async fn physical(
        &self,
        plan: &LogicalPlan,
        at: &Location,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::default()
            .create_physical_plan(plan, &self.state)
            .await
            .map_err(|e| df_error(e, at))
    }

    pub(super) fn optimize(&self, plan: &LogicalPlan, at: &Location) -> Result<LogicalPlan> {
        self.state.optimize(plan).map_err(|e| df_error(e, at))
    }

    pub(super) fn source_slot(&self, name: &str) -> Arc<BatchSlot> {
        let (_, slot) =
            self.source_slots.iter().find(|(n, _)| n == name).expect("every table has a slot");
        Arc::clone(slot)
    }
}

/// The window function as written, for messages.
pub(super) fn window_name(call: &WindowCall) -> &'static str {
    match call.spec {
        WindowSpec::Tumble { .. } => "TUMBLE",
        WindowSpec::Hop { .. } => "HOP",
        WindowSpec::Session { .. } => "SESSION",
    }
}
