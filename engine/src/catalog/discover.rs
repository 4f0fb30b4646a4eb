//! Schema discovery, between loading the query files and planning them: the columns of tables
//! kept in a store (Cassandra) are read from the server, from the CQL files the deployment
//! applies, or from both and compared, so that the planner checks queries against them without
//! touching the network.

use std::path::PathBuf;
use std::sync::Arc;

use super::TableDef;
use crate::connector::ConnectorSpec;
use crate::connector::cassandra::cql::{CqlSchema, differences};
use crate::connector::cassandra::{CassandraOptions, CassandraTable, describe};
use crate::error::{EngineError, Result};

/// Whether discovery asks the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerUse {
    /// Always (`engine run`): a table that cannot be described is an error.
    Required,
    /// When it answers (`engine check` without `--schema`): otherwise the table's columns are
    /// left unchecked, with a note saying how to check them.
    IfReachable,
    /// Never (`engine check --schema`): the CQL files alone.
    Never,
}

/// Where the columns of tables kept in a store come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSource {
    /// The CQL files the deployment applies (`--schema`), if given.
    pub cql_dir: Option<PathBuf>,
    /// Whether the server is asked.
    pub server: ServerUse,
}

impl SchemaSource {
    /// For running queries: the live tables, which must match `cql_dir`'s when given.
    pub fn live(cql_dir: Option<PathBuf>) -> Self {
        Self { cql_dir, server: ServerUse::Required }
    }

    /// For checking queries: `cql_dir`'s tables when given (no server), else the server's if
    /// it answers.
    pub fn offline(cql_dir: Option<PathBuf>) -> Self {
        let server = if cql_dir.is_some() { ServerUse::Never } else { ServerUse::IfReachable };
        Self { cql_dir, server }
    }
}

impl Default for SchemaSource {
    fn default() -> Self {
        Self::live(None)
    }
}

/// Fills in the columns of the tables of `tables` kept in a store, as `source` says. Returns
/// an error for each table that could not be described; queries writing it are then refused.
pub async fn discover(tables: &mut [Arc<TableDef>], source: &SchemaSource) -> Vec<EngineError> {
    let mut errors = vec![];
    if !tables.iter().any(|t| t.connector.columns_in_store()) {
        return errors;
    }
    let files = match source.cql_dir.as_deref().map(CqlSchema::read).transpose() {
        Ok(files) => files,
        Err(err) => {
            errors.push(err);
            return errors;
        }
    };
    for table in tables.iter_mut() {
        let ConnectorSpec::Cassandra(options) = &table.connector else { continue };
        if table.declared {
            errors.push(EngineError::sql(
                table.location.clone(),
                format!(
                    "table '{}': the columns of a cassandra table come from Cassandra itself; remove the column list",
                    table.name
                ),
            ));
            continue;
        }
        match describe_table(options, files.as_ref(), source.server).await {
            Ok(Found::Table(described)) => {
                let (schema, key) = (described.schema(), described.primary_key());
                let options =
                    CassandraOptions { columns: Some(Arc::new(described)), ..options.clone() };
                *table = Arc::new(table.with_external_columns(
                    schema,
                    key,
                    ConnectorSpec::Cassandra(options),
                ));
            }
            Ok(Found::Unknown(why)) => {
                let mut undescribed = table.as_ref().clone();
                undescribed.undescribed = Some(format!("table '{}': {why}", table.name));
                *table = Arc::new(undescribed);
            }
            Err(message) => errors.push(EngineError::sql(
                table.location.clone(),
                format!("table '{}': {message}", table.name),
            )),
        }
    }
    errors
}

enum Found {
    Table(CassandraTable),
    Unknown(String),
}

async fn describe_table(
    options: &CassandraOptions,
    files: Option<&CqlSchema>,
    server: ServerUse,
) -> Result<Found, String> {
    let name = options.qualified_name();
    let from_files = match files {
        Some(schema) => match schema.table(&options.keyspace, &options.table) {
            Some(table) => Some(table),
            None => {
                return Err(format!(
                    "no file of {} creates {name}; add its CREATE TABLE there",
                    schema.dir.display()
                ));
            }
        },
        None => None,
    };
    if server == ServerUse::Never {
        return Ok(from_files.map_or_else(
            || Found::Unknown(format!("the columns of {name} are not checked")),
            |t| Found::Table(t.table.clone()),
        ));
    }
    let session = match options.connect().await {
        Ok(session) => session,
        Err(message) if server == ServerUse::IfReachable => {
            return Ok(Found::Unknown(format!(
                "{message}, so the query's columns were not checked against {name}; check them offline with --schema DIR (the CQL files the deployment applies, e.g. cql/) or with Cassandra reachable (CASSANDRA_HOSTS)"
            )));
        }
        Err(message) => return Err(message),
    };
    let live = describe(&session, &options.keyspace, &options.table).await?;
    if let Some(files) = from_files {
        let differences = differences(&live, &files.table);
        if !differences.is_empty() {
            return Err(format!(
                "Cassandra table {name} differs from its definition at {}: {}; apply the CQL files (engine run --apply-schema) or bring them up to date",
                files.location,
                differences.join("; ")
            ));
        }
    }
    Ok(Found::Table(live))
}
