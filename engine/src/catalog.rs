//! Declared tables resolved into schemas, computed-column and watermark expressions, and
//! validated connector options.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::logical_expr::ExprSchemable;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast;

mod discover;

pub use self::discover::{SchemaSource, ServerUse, discover};
pub use crate::connector::SinkCapabilities;
pub use crate::connector::cassandra::CassandraTable as StoreTable;
use crate::connector::{ConnectorSpec, SourceColumn};
use crate::error::{EngineError, Location, Result};
use crate::options::Options;
use crate::sql::{CreateTable, Located, TableElement};

/// A column computed from the row: `name AS expr`.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    /// Its position in the table schema.
    pub index: usize,
    /// The expression, over the raw (physical and metadata) columns.
    pub expr: Arc<dyn PhysicalExpr>,
}

/// `WATERMARK FOR column AS expr`, resolved.
#[derive(Debug, Clone)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: String,
    /// The watermark expression over the table's columns; yields a timestamp.
    pub expr: Arc<dyn PhysicalExpr>,
    /// The event-time column's index when `expr` reads no other column. The expression is then
    /// evaluated on the row with the greatest event time only: watermark expressions are
    /// non-decreasing in event time (`ts - INTERVAL '5' SECOND`), as in Flink.
    pub only_column: Option<usize>,
}

/// A declared table.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// Where it was declared.
    pub location: Location,
    /// The connector and its options.
    pub connector: ConnectorSpec,
    /// Whether columns were declared (a sink without columns takes the query's).
    pub declared: bool,
    /// Every column in declared order: what queries see.
    pub schema: SchemaRef,
    /// The physical and metadata columns in declared order: what the connector delivers.
    pub raw_schema: SchemaRef,
    /// How the connector fills each raw column.
    pub source_columns: Vec<SourceColumn>,
    /// Where each table column comes from: `Ok(raw index)` or `Err(computed index)`.
    layout: Vec<std::result::Result<usize, usize>>,
    /// The computed columns.
    pub computed: Vec<ComputedColumn>,
    /// The watermark, if declared.
    pub watermark: Option<WatermarkDef>,
    /// `'watermark.idle-timeout'` given on this table.
    pub idle_timeout: Option<Duration>,
    /// `PRIMARY KEY (...)`, if declared.
    pub primary_key: Vec<String>,
    /// Why the columns of a table kept in a store (Cassandra) are unknown, when it was checked
    /// without the store or its CQL files: queries writing it are planned without checking them.
    pub undescribed: Option<String>,
}

/// How a sink's columns are known, for mapping a query's output onto them.
#[derive(Debug)]
pub enum SinkColumns<'a> {
    /// Declared in `CREATE TABLE`: matched by position or by the `INSERT` column list.
    Declared,
    /// Not declared: the sink takes the query's columns.
    FromQuery,
    /// Described by the store the table lives in: matched by name.
    Store {
        /// The table in the store (`keyspace.table`), for messages.
        name: String,
        /// Its columns.
        table: &'a StoreTable,
    },
    /// Kept in a store whose columns are unknown (checked offline): matched by name,
    /// unchecked.
    Unknown {
        /// Why they are unknown and how to check them.
        why: &'a str,
    },
    /// Kept in a store that could not be described: nothing can be written.
    Missing,
}

impl TableDef {
    /// Resolves `CREATE TABLE`, planning computed columns and the watermark with `state`.
    pub fn resolve(statement: &Located<CreateTable>, state: &SessionState) -> Result<Self> {
        let create = &statement.node;
        let location = &statement.location;
        let mut options = Options::new(&create.name, location, &create.options)?;
        let connector = ConnectorSpec::from_options(&mut options)?;
        let idle_timeout = options.pull_duration("watermark.idle-timeout")?;
        let mut accepted = connector.accepted_options().to_vec();
        accepted.push("watermark.idle-timeout");
        options.finish(&accepted)?;

        let mut raw_fields = vec![];
        let mut source_columns = vec![];
        let mut layout = vec![];
        let mut computed_sql = vec![];
        let mut watermark_sql = None;
        let mut names: Vec<&str> = vec![];
        for element in &create.elements {
            let at = &element.location;
            let name = match &element.node {
                TableElement::Column(c) => c.name.as_str(),
                TableElement::Computed { name, .. } => name.as_str(),
                TableElement::Watermark(_) => "",
            };
            if !name.is_empty() {
                if names.contains(&name) {
                    return crate::sql_err!(at, "column '{name}' is declared more than once");
                }
                names.push(name);
            }
            match &element.node {
                TableElement::Column(c) => {
                    let data_type = crate::sql::types::arrow_type(&c.data_type).map_err(|m| {
                        EngineError::sql(at.clone(), format!("column '{}': {m}", c.name))
                    })?;
                    let kind = match &c.metadata {
                        None => SourceColumn::Physical,
                        Some(key) => {
                            SourceColumn::Metadata(connector.metadata(key).ok_or_else(|| {
                                EngineError::sql(
                                    at.clone(),
                                    format!(
                                        "connector '{}' has no metadata '{key}'",
                                        connector.name()
                                    ),
                                )
                            })?)
                        }
                    };
                    if let SourceColumn::Metadata(key) = kind
                        && !key.accepts(&data_type)
                    {
                        return crate::sql_err!(
                            at,
                            "metadata column '{}' must be {}",
                            c.name,
                            key.sql_types()
                        );
                    }
                    layout.push(Ok(raw_fields.len()));
                    raw_fields.push(Field::new(&c.name, data_type, c.nullable));
                    source_columns.push(kind);
                }
                TableElement::Computed { name, expr } => {
                    layout.push(Err(computed_sql.len()));
                    computed_sql.push((name.clone(), expr.clone(), at.clone()));
                }
                TableElement::Watermark(w) => {
                    if watermark_sql.is_some() {
                        return crate::sql_err!(at, "WATERMARK is specified more than once");
                    }
                    watermark_sql = Some((w.clone(), at.clone()));
                }
            }
        }

        let raw_schema = Arc::new(Schema::new(raw_fields));
        let raw_df = DFSchema::try_from(raw_schema.as_ref().clone())?;
        let mut computed = vec![];
        let mut computed_fields = vec![];
        for (name, expr, at) in &computed_sql {
            let logical = plan_expr(state, expr, &raw_df, at)?;
            let (_, field) = logical.to_field(&raw_df).map_err(|e| {
                EngineError::sql(
                    at.clone(),
                    format!("computed column '{name}': {}", df_message(&e)),
                )
            })?;
            let (data_type, nullable) = (field.data_type().clone(), field.is_nullable());
            let physical = state.create_physical_expr(logical, &raw_df).map_err(|e| {
                EngineError::sql(
                    at.clone(),
                    format!("computed column '{name}': {}", df_message(&e)),
                )
            })?;
            computed_fields.push(Field::new(name, data_type, nullable));
            computed.push(ComputedColumn { index: 0, expr: physical });
        }
        let fields: Vec<Field> = layout
            .iter()
            .map(|slot| match slot {
                Ok(raw) => raw_schema.field(*raw).clone(),
                Err(c) => computed_fields[*c].clone(),
            })
            .collect();
        for (index, slot) in layout.iter().enumerate() {
            if let Err(c) = slot {
                computed[*c].index = index;
            }
        }
        let schema = Arc::new(Schema::new(fields));

        let watermark = match watermark_sql {
            None => None,
            Some((w, at)) => {
                let Ok(field) = schema.field_with_name(&w.column) else {
                    return crate::sql_err!(
                        at,
                        "WATERMARK FOR '{}': no such column in table '{}'",
                        w.column,
                        create.name
                    );
                };
                if !matches!(field.data_type(), DataType::Timestamp(..)) {
                    return crate::sql_err!(
                        at,
                        "WATERMARK FOR '{}': the column is {}, not a TIMESTAMP; declare a computed column such as ts AS to_timestamp(\"{}\")",
                        w.column,
                        field.data_type(),
                        w.column
                    );
                }
                let full_df = DFSchema::try_from(schema.as_ref().clone())?;
                let logical = plan_expr(state, &w.expr, &full_df, &at)?;
                let data_type = logical
                    .get_type(&full_df)
                    .map_err(|e| EngineError::sql(at.clone(), df_message(&e)))?;
                if !matches!(data_type, DataType::Timestamp(..)) {
                    return crate::sql_err!(
                        at,
                        "the watermark expression yields {data_type}, not a TIMESTAMP"
                    );
                }
                let expr = state
                    .create_physical_expr(logical, &full_df)
                    .map_err(|e| EngineError::sql(at.clone(), df_message(&e)))?;
                let index = schema.index_of(&w.column).ok();
                let reads = datafusion::physical_expr::utils::collect_columns(&expr);
                let only_column = index.filter(|&i| reads.iter().all(|c| c.index() == i));
                Some(WatermarkDef { column: w.column.clone(), expr, only_column })
            }
        };

        let declared = !create.elements.is_empty();
        for key in &create.primary_key {
            if !names.contains(&key.as_str()) {
                return crate::sql_err!(
                    location,
                    "PRIMARY KEY column '{key}' is not a column of table '{}'",
                    create.name
                );
            }
        }
        Ok(Self {
            name: create.name.clone(),
            location: location.clone(),
            connector,
            declared,
            schema,
            raw_schema,
            source_columns,
            layout,
            computed,
            watermark,
            idle_timeout,
            primary_key: create.primary_key.clone(),
            undescribed: None,
        })
    }

    /// A table the engine makes rather than a query file declares (the REPL's live results):
    /// without declared columns, so that it takes its query's.
    pub fn undeclared(name: &str, location: Location, connector: ConnectorSpec) -> Self {
        let empty = Arc::new(Schema::empty());
        Self {
            name: name.to_string(),
            location,
            connector,
            declared: false,
            schema: Arc::clone(&empty),
            raw_schema: empty,
            source_columns: vec![],
            layout: vec![],
            computed: vec![],
            watermark: None,
            idle_timeout: None,
            primary_key: vec![],
            undescribed: None,
        }
    }

    /// The table with columns described by the connector rather than declared (a Cassandra
    /// table's, read from the server; a file sink's, found in its files), replacing its
    /// connector options with `connector`.
    pub fn with_external_columns(
        &self,
        schema: SchemaRef,
        primary_key: Vec<String>,
        connector: ConnectorSpec,
    ) -> Self {
        let width = schema.fields().len();
        Self {
            connector,
            declared: true,
            raw_schema: Arc::clone(&schema),
            schema,
            source_columns: vec![SourceColumn::Physical; width],
            layout: (0..width).map(Ok).collect(),
            computed: vec![],
            primary_key,
            ..self.clone()
        }
    }

    /// The connector's name, for messages.
    pub fn connector_name(&self) -> &'static str {
        self.connector.name()
    }

    /// Whether the table can be read as a stream.
    pub fn is_source(&self) -> bool {
        self.connector.is_source()
    }

    /// What the table accepts as a sink; `None` when it can only be read.
    pub fn sink_capabilities(&self) -> Option<SinkCapabilities> {
        self.connector.sink_capabilities()
    }

    /// Whether the source's partitions are split between replicas, one task per partition.
    pub fn splits_partitions(&self) -> bool {
        self.connector.splits_partitions()
    }

    /// How the sink's columns are known.
    pub fn sink_columns(&self) -> SinkColumns<'_> {
        if let Some((name, table)) = self.connector.store_table() {
            return SinkColumns::Store { name, table };
        }
        if self.connector.columns_in_store() {
            return match &self.undescribed {
                Some(why) => SinkColumns::Unknown { why },
                None => SinkColumns::Missing,
            };
        }
        if self.declared { SinkColumns::Declared } else { SinkColumns::FromQuery }
    }

    /// Identifies the connector and its options, for a query's fingerprint.
    pub fn connector_fingerprint(&self) -> String {
        format!("{:?}", self.connector)
    }

    /// Whether the table declares computed columns, metadata columns or a watermark, which only
    /// a source can have.
    pub fn has_source_only_columns(&self) -> bool {
        !self.computed.is_empty()
            || self.watermark.is_some()
            || self.source_columns.iter().any(|c| matches!(c, SourceColumn::Metadata(_)))
    }

    /// Turns a batch of raw columns into a batch of the table schema, computing columns.
    pub fn complete(&self, raw: &RecordBatch) -> Result<RecordBatch> {
        if self.computed.is_empty() {
            return Ok(raw.clone());
        }
        let rows = raw.num_rows();
        let computed = self
            .computed
            .iter()
            .map(|c| c.expr.evaluate(raw)?.into_array(rows))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        let columns = self
            .layout
            .iter()
            .map(|slot| match slot {
                Ok(raw_index) => Arc::clone(raw.column(*raw_index)),
                Err(c) => Arc::clone(&computed[*c]),
            })
            .collect();
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(datafusion::error::DataFusionError::from)?)
    }
}

/// Plans a SQL expression over `schema`, reporting errors at `at`.
pub fn plan_expr(
    state: &SessionState,
    expr: &ast::Expr,
    schema: &DFSchema,
    at: &Location,
) -> Result<datafusion::logical_expr::Expr> {
    let with_alias = ast::ExprWithAlias { expr: expr.clone(), alias: None };
    state
        .create_logical_expr_from_sql_expr(with_alias, schema)
        .map_err(|e| EngineError::sql(at.clone(), df_message(&e)))
}

/// A DataFusion error as one readable line, without backtraces or nested prefixes (and
/// without the position of a syntax error: see [`df_position`]).
pub fn df_message(err: &datafusion::error::DataFusionError) -> String {
    if let Some((message, _)) = syntax_error(err) {
        return message.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let text = match err.diagnostic() {
        Some(d) => {
            let details =
                d.notes.iter().map(|n| &n.message).chain(d.helps.iter().map(|h| &h.message));
            std::iter::once(&d.message).chain(details).cloned().collect::<Vec<_>>().join("; ")
        }
        None => err.find_root().strip_backtrace(),
    };
    let mut text = text.as_str();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Arrow error: ",
        "Execution error: ",
        "External error: ",
    ] {
        text = text.strip_prefix(prefix).unwrap_or(text);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where in its statement a DataFusion error is, as (line, column) from 1: the span of its
/// diagnostic, or the position sqlparser put in a syntax error's message.
pub fn df_position(err: &datafusion::error::DataFusionError) -> Option<(u64, u64)> {
    if let Some((_, position)) = syntax_error(err) {
        return position;
    }
    let span = err.diagnostic().and_then(|d| d.span).filter(|s| s.start.line > 0)?;
    Some((span.start.line, span.start.column))
}

/// A sqlparser error inside `err`: its message and the position it names.
fn syntax_error(err: &datafusion::error::DataFusionError) -> Option<(&str, Option<(u64, u64)>)> {
    use datafusion::sql::sqlparser::parser::ParserError;
    let datafusion::error::DataFusionError::SQL(error, _) = err.find_root() else { return None };
    let message = match error.as_ref() {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.as_str(),
        ParserError::RecursionLimitExceeded => "statement nested too deeply",
    };
    Some(match crate::sql::parser::split_position(message) {
        Some((text, line, column)) => (text, Some((line, column))),
        None => (message, None),
    })
}
