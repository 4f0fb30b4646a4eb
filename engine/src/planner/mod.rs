//! From query files to runnable streaming queries: resolves tables and views, plans each
//! `INSERT INTO` with DataFusion and splits the plan into micro-batch stages.
//!
//! ```text
//! source ─▶ [view plan] ─▶ window assigner ─▶ pre plan ─▶ WindowAggregate ─▶ post plan ─▶ sink
//! source ─▶ plan ─▶ sink                                              (stateless queries)
//! ```

mod aggregate;
mod coercion;
mod context;
mod explain;
mod options;
mod query;
mod redirect;
mod refuse;
mod sink;
mod split;
mod window;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast;

pub use self::context::new_session;
pub use self::explain::explain;
pub use self::options::{PipelineOptions, SET_KEYS, apply_set};
pub use self::redirect::Redirect;
pub use self::sink::SinkMapping;
use crate::catalog::TableDef;
use crate::error::{EngineError, Location, Result};
use crate::slot::BatchSlot;
use crate::sql::{CreateView, Emit, InsertInto, Located, QueryFile, Statement};
use crate::state::WindowAggregate;
use crate::time::window::WindowAssigner;

/// A continuous query ready to run.
#[derive(Debug)]
pub struct QueryPlan {
    /// Name used in logs and metrics: the file stem, with `#n` for the n-th query of a file.
    pub name: String,
    /// Where the `INSERT INTO` is.
    pub location: Location,
    /// The table read as a stream.
    pub source: Arc<TableDef>,
    /// Where source batches (in the source table's schema) go.
    pub source_slot: Arc<BatchSlot>,
    /// The stages between source and sink.
    pub stages: Stages,
    /// The table written.
    pub sink: Arc<TableDef>,
    /// How query output becomes sink rows.
    pub sink_mapping: SinkMapping,
    /// Emit mode.
    pub emit: Emit,
    /// Options in force for this query.
    pub options: PipelineOptions,
    /// The optimized logical plan, for `explain`.
    pub logical: LogicalPlan,
    /// DataFusion's execution context for the stage plans.
    pub task_ctx: Arc<TaskContext>,
    /// What the plan was made from, to make another instance of it.
    pub recipe: Arc<Recipe>,
}

/// What a query is planned from: its `INSERT INTO` and the tables and views it may read.
#[derive(Debug)]
pub struct Recipe {
    insert: Located<InsertInto>,
    tables: Vec<Arc<TableDef>>,
    views: Vec<Located<CreateView>>,
}

/// The stages of a query.
#[derive(Debug)]
pub enum Stages {
    /// Filters and projections: each micro-batch flows straight through.
    Stateless {
        /// The whole query over the source slot.
        plan: Arc<dyn ExecutionPlan>,
    },
    /// A windowed aggregation.
    Windowed(Box<WindowedStages>),
}

/// The stages of a windowed aggregation.
#[derive(Debug)]
pub struct WindowedStages {
    /// When the window function reads a view: the view over the source slot.
    pub view: Option<Arc<dyn ExecutionPlan>>,
    /// Adds window bounds and drops late events.
    pub assigner: WindowAssigner,
    /// Where windowed events go.
    pub window_slot: Arc<BatchSlot>,
    /// From windowed events to the aggregate's input (WHERE, projections).
    pub pre: Arc<dyn ExecutionPlan>,
    /// Builds the incremental aggregate.
    pub aggregate: aggregate::AggregateTemplate,
    /// Where aggregate output goes.
    pub aggregate_slot: Arc<BatchSlot>,
    /// From aggregate output to the query's output (HAVING, SELECT list).
    pub post: Arc<dyn ExecutionPlan>,
}

impl QueryPlan {
    /// Identifies the query's plan, source, sink and emit mode: state is only restored into the
    /// same query. Pipeline options (trigger interval, lateness) are not part of it.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.logical.display_indent().to_string().hash(&mut hasher);
        self.source.connector_fingerprint().hash(&mut hasher);
        self.sink.connector_fingerprint().hash(&mut hasher);
        self.emit.hash(&mut hasher);
        // The windowed relation is a scan in the logical plan: its sizes and offset are not.
        if let Stages::Windowed(stages) = &self.stages {
            format!("{:?}", stages.assigner.spec()).hash(&mut hasher);
        }
        format!("{:016x}", hasher.finish())
    }

    /// Another instance of this query with stages of its own (its slots and state are not
    /// shared with this one): one per partition when replicas split a topic.
    pub async fn replan(&self) -> Result<QueryPlan> {
        let recipe = &self.recipe;
        split::plan_insert(&self.name, &recipe.insert, &self.options, &recipe.tables, &recipe.views)
            .await
    }
}

impl WindowedStages {
    /// A fresh, empty aggregate for this query.
    pub fn new_aggregate(&self) -> Result<WindowAggregate> {
        self.aggregate.instantiate()
    }
}

/// Everything the query files declare, planned.
#[derive(Debug, Default)]
pub struct Pipeline {
    /// Declared tables by name.
    pub tables: Vec<Arc<TableDef>>,
    /// Declared views, in declaration order.
    pub views: Vec<Located<CreateView>>,
    /// The continuous queries.
    pub queries: Vec<QueryPlan>,
}

/// What the query files declare, not yet planned. The columns of tables kept in a store
/// (Cassandra) are filled in between [`declare`] and [`plan_declared`] by
/// [`crate::catalog::discover`], so that planning itself never touches the network.
#[derive(Debug, Default)]
pub struct Declarations {
    /// Declared tables.
    pub tables: Vec<Arc<TableDef>>,
    views: Vec<Located<CreateView>>,
    inserts: Vec<(String, Located<InsertInto>, PipelineOptions)>,
}

/// Resolves every declaration of `files` (already in load order). Returns what resolved and
/// an error for everything that did not: a broken statement does not stop the others.
pub fn declare(files: &[QueryFile], base: &PipelineOptions) -> (Declarations, Vec<EngineError>) {
    let mut errors = vec![];
    let undeclared = base.redirect.undeclared_sources(files);
    if !undeclared.is_empty() {
        errors.push(EngineError::Config(format!(
            "--replay names tables that no query file declares: {}",
            undeclared.join(", ")
        )));
    }
    let declarations = declare_all(files, base, &mut errors);
    (declarations, errors)
}

/// Plans every `INSERT INTO` of `declarations`. Returns what planned and an error for
/// everything that did not.
pub async fn plan_declared(declarations: Declarations) -> (Pipeline, Vec<EngineError>) {
    let mut errors = vec![];
    let mut queries = vec![];
    for (name, insert, options) in &declarations.inserts {
        match split::plan_insert(name, insert, options, &declarations.tables, &declarations.views)
            .await
        {
            Ok(query) => queries.push(query),
            Err(err) => errors.push(err),
        }
    }
    (Pipeline { tables: declarations.tables, views: declarations.views, queries }, errors)
}

/// Plans `query`, a SELECT starting at `location`, as a continuous query named `name` over the
/// tables and views of `pipeline`, writing `sink` (a table without declared columns, which takes
/// the query's): how the REPL runs a windowed query.
pub async fn plan_select(
    name: &str,
    query: Box<ast::Query>,
    location: &Location,
    sink: TableDef,
    pipeline: &Pipeline,
    options: &PipelineOptions,
) -> Result<QueryPlan> {
    let insert =
        InsertInto { table: sink.name.clone(), columns: vec![], query, emit: Emit::OnUpdate };
    let mut tables = pipeline.tables.clone();
    tables.push(Arc::new(sink));
    let insert = Located { location: location.clone(), node: insert };
    split::plan_insert(name, &insert, options, &tables, &pipeline.views).await
}

/// Whether `query` reads a window table function (`TUMBLE`, `HOP`, `SESSION`), so that only
/// the streaming runtime can run it.
pub fn is_windowed(query: &ast::Query) -> bool {
    let mut rewritten = query.clone();
    let at = Location::start_of(std::path::Path::new("query"));
    // A malformed window call is still one: planning it reports the mistake.
    window::rewrite_windows(&mut rewritten, &new_session().state(), &at, &mut 0)
        .map_or(true, |calls| !calls.is_empty())
}

fn declare_all(
    files: &[QueryFile],
    base: &PipelineOptions,
    errors: &mut Vec<EngineError>,
) -> Declarations {
    let scratch = new_session().state();
    let mut options = base.clone();
    let mut tables: Vec<Arc<TableDef>> = vec![];
    let mut views: Vec<Located<CreateView>> = vec![];
    let mut inserts = vec![];
    let mut names: HashMap<String, Location> = HashMap::new();
    let sinks = redirect::insert_targets(files);
    for file in files {
        let stem =
            file.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let mut count = 0;
        for statement in &file.statements {
            let at = &statement.location;
            let mut declare_name = |name: &str| declare_once(&mut names, name, at);
            let result = match &statement.node {
                Statement::Set(set) => apply_set(&mut options, set, at),
                Statement::CreateTable(create) => {
                    if create.if_not_exists && tables.iter().any(|t| t.name == create.name) {
                        Ok(())
                    } else {
                        declare_name(&create.name).and_then(|()| {
                            let mut node = create.clone();
                            if !base.redirect.is_empty() {
                                node.options = base.redirect.options_for(create, &sinks);
                            }
                            let located = Located { location: at.clone(), node };
                            TableDef::resolve(&located, &scratch).map(|t| tables.push(Arc::new(t)))
                        })
                    }
                }
                Statement::CreateView(view) => declare_name(&view.name).map(|()| {
                    views.push(Located { location: at.clone(), node: view.clone() });
                }),
                Statement::Insert(insert) => {
                    count += 1;
                    let name = if count == 1 { stem.clone() } else { format!("{stem}#{count}") };
                    inserts.push((
                        name,
                        Located { location: at.clone(), node: insert.clone() },
                        options.clone(),
                    ));
                    Ok(())
                }
            };
            if let Err(err) = result {
                errors.push(err);
            }
        }
    }
    Declarations { tables, views, inserts }
}

fn declare_once(names: &mut HashMap<String, Location>, name: &str, at: &Location) -> Result<()> {
    if let Some(first) = names.get(name) {
        return crate::sql_err!(at, "'{name}' is already declared at {first}");
    }
    names.insert(name.to_string(), at.clone());
    Ok(())
}
