//! Plans one `INSERT INTO` and splits it into micro-batch stages around the window aggregate.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::ViewTable;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, TableScanBuilder};
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::context::new_session;
use super::sink::map_to_sink;
use super::window::{WindowCall, rewrite_windows, window_bound};
use super::{PipelineOptions, QueryPlan, Recipe, Stages, WindowedStages};
use crate::catalog::{TableDef, df_message, df_position};
use crate::connector::ConnectorSpec;
use crate::connector::kafka::Assignment;
use crate::error::{EngineError, Location, Result};
use crate::slot::{BatchSlot, SlotTable};
use crate::sql::{CreateView, Emit, InsertInto, Located};
use crate::state::aggregates::{AggregateCall, AggregateSet};
use crate::state::keys::KeyInterner;
use crate::state::output::{GroupColumn, OutputBuilder};
use crate::state::session::SessionWindows;
use crate::state::sliced::SlicedWindows;
use crate::state::{WindowAggregate, WindowStore};
use crate::time::window::{WindowAssigner, WindowSpec, windowed_schema};

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

    /// The aggregate calls, for `explain`.
    pub fn describe(&self) -> Vec<String> {
        self.calls.iter().map(|c| c.function.name().to_string()).collect()
    }
}

fn df_error(err: DataFusionError, at: &Location) -> EngineError {
    let location = match df_position(&err) {
        Some((line, column)) => Location::new(&at.file, line, column),
        None => at.clone(),
    };
    EngineError::sql(location, df_message(&err))
}

struct QueryContext {
    ctx: SessionContext,
    state: SessionState,
    tables: Vec<Arc<TableDef>>,
    source_slots: Vec<(String, Arc<BatchSlot>)>,
    windows: Vec<(WindowCall, Arc<BatchSlot>)>,
    next_window: usize,
}

impl QueryContext {
    fn new(tables: &[Arc<TableDef>]) -> Result<Self> {
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

    fn table(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// Rewrites window calls in `query`, registers their relations and plans the query.
    async fn plan_query(
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
        self.state.statement_to_plan(statement).await.map_err(|e| df_error(e, at))
    }

    async fn register_views(&mut self, views: &[Located<CreateView>]) -> Result<()> {
        for view in views {
            let plan = self.plan_query(view.node.query.clone(), &view.location).await?;
            self.ctx
                .register_table(view.node.name.as_str(), Arc::new(ViewTable::new(plan, None)))?;
        }
        self.state = self.ctx.state();
        Ok(())
    }

    async fn physical(&self, plan: &LogicalPlan, at: &Location) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::default()
            .create_physical_plan(plan, &self.state)
            .await
            .map_err(|e| df_error(e, at))
    }

    fn optimize(&self, plan: &LogicalPlan, at: &Location) -> Result<LogicalPlan> {
        self.state.optimize(plan).map_err(|e| df_error(e, at))
    }

    fn source_slot(&self, name: &str) -> Arc<BatchSlot> {
        let (_, slot) =
            self.source_slots.iter().find(|(n, _)| n == name).expect("every table has a slot");
        Arc::clone(slot)
    }
}

fn window_name(call: &WindowCall) -> &'static str {
    match call.spec {
        WindowSpec::Tumble { .. } => "TUMBLE",
        WindowSpec::Hop { .. } => "HOP",
        WindowSpec::Session { .. } => "SESSION",
    }
}

/// Plans `INSERT INTO` into runnable stages.
pub async fn plan_insert(
    name: &str,
    insert: &Located<InsertInto>,
    options: &PipelineOptions,
    tables: &[Arc<TableDef>],
    views: &[Located<CreateView>],
) -> Result<QueryPlan> {
    let at = &insert.location;
    let mut qc = QueryContext::new(tables)?;
    qc.register_views(views).await?;
    let Some(sink) = qc.table(&insert.node.table).cloned() else {
        return crate::sql_err!(
            at,
            "INSERT INTO '{}': no such table; declare it with CREATE TABLE",
            insert.node.table
        );
    };
    let plan = qc.plan_query(insert.node.query.clone(), at).await?;
    refuse_unstreamable(&plan, &clause_location(&insert.node.query, Clause::OrderBy, at))?;
    let optimized = qc.optimize(&plan, at)?;
    let scans = scanned_tables(&optimized);
    let [scan] = scans.as_slice() else {
        return crate::sql_err!(
            at,
            "a continuous query reads exactly one stream; this one reads {} tables ({}). Joins are not supported yet",
            scans.len(),
            scans.join(", ")
        );
    };
    let window = qc.windows.iter().find(|(call, _)| &call.relation == scan).cloned();
    let (source, stages, emits_deletes) = match window {
        Some((call, window_slot)) => {
            let (source, stages) = plan_windowed(&qc, &optimized, &call, window_slot, at).await?;
            let deletes = matches!(call.spec, WindowSpec::Session { .. })
                && insert.node.emit == Emit::OnUpdate;
            (source, Stages::Windowed(Box::new(stages)), deletes)
        }
        None => {
            if insert.node.emit == Emit::OnWindowClose {
                return crate::sql_err!(
                    at,
                    "EMIT ON WINDOW CLOSE needs a windowed aggregate (TUMBLE, HOP or SESSION with GROUP BY window_start, window_end)"
                );
            }
            if has_aggregate(&optimized) {
                let at = clause_location(&insert.node.query, Clause::GroupBy, at);
                return crate::sql_err!(
                    at,
                    "this query aggregates without a window, so its results would never be final; aggregate over TUMBLE, HOP or SESSION and GROUP BY window_start, window_end"
                );
            }
            let source = streaming_source(&qc, scan, at)?;
            (source, Stages::Stateless { plan: qc.physical(&optimized, at).await? }, false)
        }
    };
    if emits_deletes && !sink.connector.accepts_deletes() {
        return crate::sql_err!(
            at,
            "session windows in upsert mode retract merged sessions, which table '{}' ({}) cannot store; add EMIT ON WINDOW CLOSE",
            sink.name,
            sink.connector.name()
        );
    }
    if let ConnectorSpec::Kafka(kafka) = &source.connector
        && kafka.assignment == Assignment::Group
        && matches!(sink.connector, ConnectorSpec::Filesystem(_))
    {
        return crate::sql_err!(
            at,
            "table '{}' splits its topic between replicas ('scan.partition-assignment' = 'group'), whose partition tasks cannot share the files of table '{}'; write to a cassandra, stdout or blackhole table",
            source.name,
            sink.name
        );
    }
    let output = match &stages {
        Stages::Stateless { plan } => plan.schema(),
        Stages::Windowed(w) => w.post.schema(),
    };
    let sink_mapping = map_to_sink(&output, &sink, &insert.node, at)?;
    let source_slot = qc.source_slot(&source.name);
    Ok(QueryPlan {
        name: name.to_string(),
        location: at.clone(),
        source,
        source_slot,
        stages,
        sink,
        sink_mapping,
        emit: insert.node.emit,
        options: options.clone(),
        logical: optimized,
        task_ctx: qc.ctx.task_ctx(),
        recipe: Arc::new(Recipe {
            insert: insert.clone(),
            tables: tables.to_vec(),
            views: views.to_vec(),
        }),
    })
}

fn streaming_source(qc: &QueryContext, name: &str, at: &Location) -> Result<Arc<TableDef>> {
    let Some(table) = qc.table(name) else {
        return crate::sql_err!(at, "'{name}' is not a declared table");
    };
    if !table.connector.is_source() {
        return crate::sql_err!(
            at,
            "table '{name}' uses the {} connector, which can only be written",
            table.connector.name()
        );
    }
    if !table.declared {
        return crate::sql_err!(
            table.location,
            "table '{name}' is read as a stream, so it needs its columns declared: the {} connector reads them by name",
            table.connector.name()
        );
    }
    Ok(Arc::clone(table))
}

/// Refuses what cannot run on an unbounded stream, saying why.
fn refuse_unstreamable(plan: &LogicalPlan, at: &Location) -> Result<()> {
    let mut problem = None;
    plan.apply(|node| {
        problem = match node {
            LogicalPlan::Sort(_) => Some("ORDER BY over a stream never finishes: the sort would wait for the end of an unbounded input. Remove it (windows are written as they are computed; order by a window column when reading the sink)"),
            LogicalPlan::Limit(_) => Some("LIMIT is not supported in a continuous query"),
            LogicalPlan::Window(_) => Some("OVER (...) window functions are not supported in a continuous query; use TUMBLE, HOP or SESSION with GROUP BY"),
            LogicalPlan::Join(_) => Some("joins are not supported yet in a continuous query"),
            LogicalPlan::Union(_) => Some("UNION is not supported yet in a continuous query"),
            LogicalPlan::Distinct(_) => Some("DISTINCT over a stream is an aggregate without a window; group by window_start, window_end of TUMBLE, HOP or SESSION instead"),
            LogicalPlan::RecursiveQuery(_) => Some("recursive queries are not supported in a continuous query"),
            _ => None,
        };
        Ok(if problem.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    match problem {
        Some(message) => crate::sql_err!(at, "{message}"),
        None => Ok(()),
    }
}

/// A clause of a query whose position an error can point at.
#[derive(Debug, Clone, Copy)]
enum Clause {
    OrderBy,
    GroupBy,
}

/// Where `clause` starts in `query` (its first expression), else `fallback`.
fn clause_location(query: &ast::Query, clause: Clause, fallback: &Location) -> Location {
    use datafusion::sql::sqlparser::ast::Spanned;
    let span = match clause {
        Clause::OrderBy => query.order_by.as_ref().map(|o| o.span()),
        Clause::GroupBy => match query.body.as_ref() {
            ast::SetExpr::Select(select) => match &select.group_by {
                ast::GroupByExpr::Expressions(exprs, _) => exprs.first().map(|e| e.span()),
                ast::GroupByExpr::All(_) => None,
            },
            _ => None,
        },
    };
    match span {
        Some(span) if span.start.line > 0 => {
            Location::new(&fallback.file, span.start.line, span.start.column)
        }
        _ => fallback.clone(),
    }
}

fn scanned_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut scans = vec![];
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans.push(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .expect("the visitor never fails");
    scans
}

fn has_aggregate(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_)))).unwrap_or(false)
}

/// The nodes allowed around the aggregate: those that act row by row.
fn is_row_by_row(node: &LogicalPlan) -> bool {
    matches!(
        node,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::TableScan(_)
    )
}

async fn plan_windowed(
    qc: &QueryContext,
    optimized: &LogicalPlan,
    call: &WindowCall,
    window_slot: Arc<BatchSlot>,
    at: &Location,
) -> Result<(Arc<TableDef>, WindowedStages)> {
    let name = window_name(call);
    let mut aggregates = vec![];
    let mut other = None;
    optimized.apply(|node| {
        match node {
            LogicalPlan::Aggregate(a) => aggregates.push(a.clone()),
            n if !is_row_by_row(n) => other = Some(n.display().to_string()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if let Some(node) = other {
        return crate::sql_err!(at, "'{node}' is not supported around a window aggregate");
    }
    let aggregate = match aggregates.as_slice() {
        [a] => a.clone(),
        [] => {
            return crate::sql_err!(
                call.location,
                "{name} must be aggregated: GROUP BY window_start, window_end (and any keys)"
            );
        }
        _ => {
            return crate::sql_err!(
                at,
                "only one aggregation per continuous query; aggregate once over the window"
            );
        }
    };

    // The stream the window reads: a source table, or a view over one.
    let (source, view) = match qc.table(&call.input) {
        Some(_) => (streaming_source(qc, &call.input, &call.location)?, None),
        None => {
            let provider = qc.ctx.table_provider(call.input.as_str()).await?;
            let Some(defined) = provider.get_logical_plan() else {
                return crate::sql_err!(
                    call.location,
                    "'{}' is neither a table nor a view",
                    call.input
                );
            };
            let view_plan = qc.optimize(&defined, at)?;
            refuse_unstreamable(&view_plan, &call.location)?;
            if has_aggregate(&view_plan) {
                return crate::sql_err!(
                    call.location,
                    "{name} over view '{}', which aggregates: window the stream before aggregating",
                    call.input
                );
            }
            let scans = scanned_tables(&view_plan);
            let [scan] = scans.as_slice() else {
                return crate::sql_err!(
                    call.location,
                    "view '{}' must read exactly one stream",
                    call.input
                );
            };
            (streaming_source(qc, scan, &call.location)?, Some(qc.physical(&view_plan, at).await?))
        }
    };
    match &source.watermark {
        None => {
            return crate::sql_err!(
                call.location,
                "{name} over '{}' needs a watermark: declare WATERMARK FOR {} AS {} - INTERVAL '5' SECOND in CREATE TABLE {}",
                call.input,
                call.time_column,
                call.time_column,
                source.name
            );
        }
        Some(w) if w.column != call.time_column => {
            return crate::sql_err!(
                call.location,
                "{name} must use the watermarked column '{}' of '{}', not '{}'",
                w.column,
                source.name,
                call.time_column
            );
        }
        Some(_) => {}
    }
    let input_schema = match &view {
        Some(plan) => plan.schema(),
        None => Arc::clone(&source.schema),
    };
    let time_index = input_schema.index_of(&call.time_column).map_err(DataFusionError::from)?;
    let assigner = WindowAssigner::new(call.spec, &input_schema, time_index);

    if !matches!(call.spec, WindowSpec::Tumble { .. }) && filters_on_window_bounds(&aggregate.input)
    {
        return crate::sql_err!(
            at,
            "with {name}, filter on window_start/window_end after aggregating (HAVING), not in WHERE"
        );
    }
    let pre = qc.physical(&aggregate.input, at).await?;
    let template = aggregate_template(qc, &aggregate, &pre.schema(), call, &assigner, at)?;
    // Accumulators are created when the query starts; create and feed one now so that an
    // aggregate DataFusion cannot run for these types is refused by `engine check`.
    template.instantiate().and_then(|a| a.probe(&pre.schema())).map_err(|e| match e {
        EngineError::Execution(e) => df_error(e, at),
        other => other,
    })?;
    let aggregate_slot = BatchSlot::new(Arc::clone(&template.output.schema));
    let post_logical = replace_aggregate(optimized, &aggregate, &aggregate_slot)?;
    let post = qc.physical(&post_logical, at).await?;
    Ok((
        source,
        WindowedStages {
            view,
            assigner,
            window_slot,
            pre,
            aggregate: template,
            aggregate_slot,
            post,
        },
    ))
}

fn filters_on_window_bounds(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::Filter(f) => f
                .predicate
                .column_refs()
                .iter()
                .any(|c| window_bound(&Expr::Column((*c).clone())).is_some()),
            _ => false,
        })
    })
    .unwrap_or(false)
}

fn aggregate_template(
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
fn replace_aggregate(
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
