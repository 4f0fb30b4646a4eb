//! The REPL's catalog and statement runner: the tables and views of the query files registered
//! in a DataFusion session, and each statement turned into rows, a message or a live query.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::{TableType, ViewTable};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::{Failure, LiveQuery, Names, Outcome, Rows};
use crate::catalog::{TableDef, df_message};
use crate::connector::cassandra::ColumnKind;
use crate::connector::memory::Changes;
use crate::connector::{ConnectorSpec, SourceColumn};
use crate::error::Location;
use crate::planner::{
    Pipeline, PipelineOptions, SET_KEYS, apply_set, explain, is_windowed, new_session, plan_select,
};
use crate::snapshot::snapshot_table;
use crate::sql::parser::normalize_ident;
use crate::sql::{Statement, parse_sql, process_env};

/// The table a live query writes its rows to (never visible to queries).
const LIVE_RESULT: &str = "__live_result";

/// The tables and views a REPL can query, and how statements over them run.
pub struct Session {
    ctx: SessionContext,
    pipeline: Pipeline,
    options: PipelineOptions,
    live_queries: usize,
}

impl Session {
    /// A session over `pipeline` (the query files loaded and planned): registers every table
    /// that can be read and every view. Returns the tables and views that cannot be queried
    /// here, and why. The rest is usable.
    pub async fn open(pipeline: Pipeline) -> (Self, Vec<String>) {
        let mut state = new_session().state();
        state.config_mut().options_mut().catalog.information_schema = true;
        let ctx = SessionContext::new_with_state(state);
        let mut problems = vec![];
        for table in &pipeline.tables {
            match snapshot_table(table) {
                Ok(Some(provider)) => {
                    if let Err(err) = ctx.register_table(table.name.as_str(), provider) {
                        problems.push(format!("table '{}': {}", table.name, df_message(&err)));
                    }
                }
                Ok(None) => {}
                Err(err) => problems.push(format!("{}: {err}", table.location)),
            }
        }
        for view in &pipeline.views {
            let name = &view.node.name;
            if is_windowed(&view.node.query) {
                problems.push(format!(
                    "{}: view '{name}' reads a window function; query it with a windowed SELECT of its own",
                    view.location
                ));
                continue;
            }
            let query = ast::Statement::Query(view.node.query.clone());
            let planned =
                ctx.state().statement_to_plan(DfStatement::Statement(Box::new(query))).await;
            let registered = planned.and_then(|plan| {
                let view_table = ViewTable::new(plan, Some(view.node.query.to_string()));
                ctx.register_table(name.as_str(), Arc::new(view_table))
            });
            if let Err(err) = registered {
                problems.push(format!("{}: view '{name}': {}", view.location, df_message(&err)));
            }
        }
        let session = Self { ctx, pipeline, options: PipelineOptions::default(), live_queries: 0 };
        (session, problems)
    }

    /// Runs one statement.
    pub async fn execute(&mut self, sql: &str) -> Result<Outcome, Failure> {
        if let Some(done) = self.set_pipeline_option(sql)? {
            return Ok(Outcome::Done(done));
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        match state.sql_to_statement(sql, &dialect)? {
            DfStatement::Statement(statement) => match *statement {
                ast::Statement::ShowTables { .. } => Ok(Outcome::Rows(self.list().await?)),
                ast::Statement::ExplainTable { table_name, .. } => {
                    Ok(Outcome::Rows(self.describe(&object_name(&table_name)).await?))
                }
                ast::Statement::Query(query) if is_windowed(&query) => {
                    Ok(Outcome::Live(Box::new(self.live(query).await?)))
                }
                other => self.run(DfStatement::Statement(Box::new(other))).await,
            },
            DfStatement::Explain(explained) => match windowed_query(&explained.statement) {
                Some(query) => {
                    let live = self.live(query).await?;
                    Ok(Outcome::Rows(lines("plan", &explain(live.plan()))))
                }
                None => self.run(DfStatement::Explain(explained)).await,
            },
            other => self.run(other).await,
        }
    }

    /// Plans and runs a statement with DataFusion.
    async fn run(&self, statement: DfStatement) -> Result<Outcome, Failure> {
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        if schema.fields().is_empty() {
            return Ok(Outcome::Done("OK".to_string()));
        }
        Ok(Outcome::Rows(Rows { schema, batches }))
    }

    /// Plans a windowed query as a continuous query writing to memory.
    async fn live(&mut self, query: Box<ast::Query>) -> Result<LiveQuery, Failure> {
        self.live_queries += 1;
        let name = format!("repl#{}", self.live_queries);
        let at = Location::start_of(Path::new("statement"));
        let changes = Changes::new();
        let sink =
            TableDef::undeclared(LIVE_RESULT, at.clone(), ConnectorSpec::Memory(changes.clone()));
        let plan = plan_select(&name, query, &at, sink, &self.pipeline, &self.options).await?;
        LiveQuery::new(plan, changes)
    }

    /// `SET 'trigger-interval' = '200ms'` and the other pipeline options apply to the live
    /// queries that follow; any other `SET` is DataFusion's.
    fn set_pipeline_option(&mut self, sql: &str) -> Result<Option<String>, Failure> {
        let is_set = sql.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("SET"));
        if !is_set {
            return Ok(None);
        }
        let (statements, _) = parse_sql(&Arc::new(PathBuf::from("statement")), sql, &process_env);
        let [located] = statements.as_slice() else { return Ok(None) };
        let Statement::Set(set) = &located.node else { return Ok(None) };
        if !SET_KEYS.contains(&set.key.as_str()) {
            return Ok(None);
        }
        apply_set(&mut self.options, set, &located.location)?;
        Ok(Some(format!("SET '{}' = '{}' (for the live queries that follow)", set.key, set.value)))
    }

    fn declared(&self, name: &str) -> Option<&TableDef> {
        self.pipeline.tables.iter().find(|t| t.name == name).map(AsRef::as_ref)
    }

    /// The tables and views that can be queried, with their columns.
    async fn tables(&self) -> Vec<(String, SchemaRef, String)> {
        let Some(schema) = self.ctx.catalog("datafusion").and_then(|c| c.schema("public")) else {
            return vec![];
        };
        let mut names = schema.table_names();
        names.sort();
        let mut tables = vec![];
        for name in names {
            let Ok(Some(provider)) = schema.table(&name).await else { continue };
            let kind = match (self.declared(&name), provider.table_type()) {
                (Some(table), _) => table.connector.name().to_string(),
                (None, TableType::View) => "view".to_string(),
                (None, _) => "table".to_string(),
            };
            tables.push((name, provider.schema(), kind));
        }
        tables
    }

    /// The tables and views with their columns, for completion.
    pub async fn names(&self) -> Names {
        let tables = self.tables().await;
        tables
            .into_iter()
            .map(|(name, schema, _)| {
                let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
                (name, columns)
            })
            .collect()
    }

    /// `\d` and `SHOW TABLES`: every table and view with its kind and number of columns.
    pub async fn list(&self) -> Result<Rows, Failure> {
        let tables = self.tables().await;
        let schema = Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("columns", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(tables.iter().map(|t| t.0.as_str()))),
                Arc::new(StringArray::from_iter_values(tables.iter().map(|t| t.2.as_str()))),
                Arc::new(UInt64Array::from_iter_values(
                    tables.iter().map(|t| t.1.fields().len() as u64),
                )),
            ],
        )
        .map_err(DataFusionError::from)?;
        Ok(Rows { schema, batches: vec![batch] })
    }

    /// `DESCRIBE t` and `\d t`: the columns of a table or view, with where each comes from.
    pub async fn describe(&self, name: &str) -> Result<Rows, Failure> {
        let provider = self.ctx.table_provider(name).await?;
        let columns = provider.schema();
        let notes: Vec<String> = columns
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| self.declared(name).map(|t| note(t, i, f.name())).unwrap_or_default())
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("column", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
            Field::new("nullable", DataType::Utf8, false),
            Field::new("note", DataType::Utf8, false),
        ]));
        let fields = columns.fields();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from_iter_values(fields.iter().map(|f| f.name().as_str()))),
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| f.data_type().to_string()),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| if f.is_nullable() { "YES" } else { "NO" }),
                )),
                Arc::new(StringArray::from_iter_values(notes)),
            ],
        )
        .map_err(DataFusionError::from)?;
        Ok(Rows { schema, batches: vec![batch] })
    }
}

/// Where column `index` (`name`) of a declared table comes from: computed, metadata, event
/// time, Cassandra key.
fn note(table: &TableDef, index: usize, name: &str) -> String {
    let mut notes = vec![];
    if table.computed.iter().any(|c| c.index == index) {
        notes.push("computed".to_string());
    } else if let Ok(raw) = table.raw_schema.index_of(name)
        && let Some(SourceColumn::Metadata(key)) = table.source_columns.get(raw)
    {
        notes.push(format!("metadata '{}'", key.name()));
    }
    if table.watermark.as_ref().is_some_and(|w| w.column == name) {
        notes.push("event time (watermark)".to_string());
    }
    if let ConnectorSpec::Cassandra(options) = &table.connector
        && let Some(column) = options.columns.as_ref().and_then(|c| c.column(name))
    {
        match column.kind {
            ColumnKind::PartitionKey => notes.push("partition key".to_string()),
            ColumnKind::Clustering => notes.push("clustering key".to_string()),
            ColumnKind::Static => notes.push("static".to_string()),
            ColumnKind::Regular => {}
        }
    }
    notes.join(", ")
}

/// The windowed query an `EXPLAIN` explains, if it explains one.
fn windowed_query(statement: &DfStatement) -> Option<Box<ast::Query>> {
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            ast::Statement::Query(query) if is_windowed(query) => Some(query.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A table name as DataFusion resolves it: unquoted parts lower-cased.
fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ast::ObjectNamePart::Identifier(ident) => normalize_ident(ident),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Text as rows of one column, a line each.
fn lines(column: &str, text: &str) -> Rows {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
    let values = StringArray::from(text.lines().collect::<Vec<_>>());
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)]).expect("one Utf8 column");
    Rows { schema, batches: vec![batch] }
}
