//! Plans one `INSERT INTO` and splits it into micro-batch stages around the window aggregate.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;

use super::aggregate::{aggregate_template, replace_aggregate};
use super::query::{QueryContext, df_error, window_name};
use super::refuse::{
    Clause, clause_location, filters_on_window_bounds, has_aggregate, is_row_by_row,
    refuse_unstreamable, scanned_tables,
};
use super::sink::map_to_sink;
use super::window::WindowCall;
use super::{PipelineOptions, QueryPlan, Recipe, Stages, WindowedStages};
use crate::catalog::TableDef;
use crate::error::{EngineError, Location, Result};
use crate::slot::BatchSlot;
use crate::sql::{CreateView, Emit, InsertInto, Located};
use crate::time::window::{WindowAssigner, WindowSpec};

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
    let accepts = sink.sink_capabilities();
    if emits_deletes && !accepts.is_some_and(|a| a.deletes) {
        return crate::sql_err!(
            at,
            "session windows in upsert mode retract merged sessions, which table '{}' ({}) cannot store; add EMIT ON WINDOW CLOSE",
            sink.name,
            sink.connector_name()
        );
    }
    if source.splits_partitions() && accepts.is_some_and(|a| !a.partition_tasks) {
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

pub(super) fn streaming_source(
    qc: &QueryContext,
    name: &str,
    at: &Location,
) -> Result<Arc<TableDef>> {
    let Some(table) = qc.table(name) else {
        return crate::sql_err!(at, "'{name}' is not a declared table");
    };
    if !table.is_source() {
        return crate::sql_err!(
            at,
            "table '{name}' uses the {} connector, which can only be written",
            table.connector_name()
        );
    }
    if !table.declared {
        return crate::sql_err!(
            table.location,
            "table '{name}' is read as a stream, so it needs its columns declared: the {} connector reads them by name",
            table.connector_name()
        );
    }
    Ok(Arc::clone(table))
}

pub(super) async fn plan_windowed(
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
    let aggregate_slot = BatchSlot::new(template.output_schema());
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
