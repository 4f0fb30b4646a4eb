//! The `cassandra` connector (sink): upserts (and deletes) rows of an existing table.
//!
//! ```sql
//! CREATE TABLE candles_1m WITH (
//!     connector = 'cassandra', hosts = 'localhost:9042', keyspace = 'market', 'table' = 'candles_1m'
//! );
//! ```
//!
//! The table's columns and primary key are read from `system_schema.columns` before the queries
//! are planned (or from the CQL files that create it, `engine check --schema`: see [`cql`]); query output columns map to table columns by name. Every primary key column must
//! be written; other columns may be left out (they keep their value).

pub mod cql;
pub mod schema;
mod sink;

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;

pub use self::sink::CassandraSink;
pub(crate) use self::sink::to_cql;
use crate::error::Result;
use crate::options::Options;

/// The options the connector accepts.
pub const OPTIONS: &[&str] = &[
    "connector",
    "hosts",
    "keyspace",
    "table",
    "ttl",
    "consistency",
    "write-timestamp",
    "username",
    "password",
    "sink.max-concurrency",
    "sink.max-retries",
];

/// Who sets the write time of each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteTimestamp {
    /// The coordinator node.
    Server,
    /// The engine: one timestamp per write request, increasing, so that a later write of the
    /// same key (an upsert after a delete) always wins whatever node coordinates it.
    Client,
}

/// Validated `WITH` options of a Cassandra table.
#[derive(Clone)]
pub struct CassandraOptions {
    /// Contact points, `host:port`.
    pub hosts: Vec<String>,
    /// Keyspace of the table.
    pub keyspace: String,
    /// The table.
    pub table: String,
    /// `USING TTL` of every write, in seconds.
    pub ttl: Option<u32>,
    /// Consistency of every write.
    pub consistency: Consistency,
    /// Who sets write times.
    pub write_timestamp: WriteTimestamp,
    /// Credentials for password authentication.
    pub credentials: Option<(String, String)>,
    /// Partitions written at the same time.
    pub max_concurrency: usize,
    /// Attempts of a write request after a timeout or unavailability, before the batch fails.
    pub max_retries: u32,
    /// The table's columns, once described (from the server or the CQL files) before planning.
    pub columns: Option<Arc<CassandraTable>>,
}

impl std::fmt::Debug for CassandraOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraOptions")
            .field("hosts", &self.hosts)
            .field("keyspace", &self.keyspace)
            .field("table", &self.table)
            .field("ttl", &self.ttl)
            .field("consistency", &self.consistency)
            .field("write_timestamp", &self.write_timestamp)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl CassandraOptions {
    /// Takes the Cassandra options out of `options`.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        let hosts = options.pull_required("hosts", "contact points, e.g. 'localhost:9042'")?;
        let hosts: Vec<String> = hosts
            .value
            .split([',', ';'])
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| if h.contains(':') { h.to_string() } else { format!("{h}:9042") })
            .collect();
        let keyspace = options.pull_required("keyspace", "the keyspace of the table")?.value;
        let table = options.pull_required("table", "the Cassandra table written")?.value;
        let ttl = match options.pull_str("ttl") {
            None => None,
            Some(o) => {
                let seconds = crate::options::parse_duration(&o.value)
                    .map_err(|m| {
                        crate::error::EngineError::sql(o.location.clone(), format!("'ttl': {m}"))
                    })?
                    .as_secs();
                match u32::try_from(seconds) {
                    Ok(0) => None,
                    Ok(s) if s <= 630_720_000 => Some(s),
                    _ => {
                        return crate::sql_err!(
                            o.location,
                            "'ttl' is at most 20 years, found '{}'",
                            o.value
                        );
                    }
                }
            }
        };
        let consistency = match options.pull_choice(
            "consistency",
            &[
                "any",
                "one",
                "two",
                "three",
                "quorum",
                "all",
                "local_quorum",
                "each_quorum",
                "local_one",
            ],
        )? {
            Some("any") => Consistency::Any,
            Some("one") => Consistency::One,
            Some("two") => Consistency::Two,
            Some("three") => Consistency::Three,
            Some("quorum") => Consistency::Quorum,
            Some("all") => Consistency::All,
            Some("each_quorum") => Consistency::EachQuorum,
            Some("local_one") => Consistency::LocalOne,
            Some(_) | None => Consistency::LocalQuorum,
        };
        let write_timestamp = match options.pull_choice("write-timestamp", &["server", "client"])? {
            Some("client") => WriteTimestamp::Client,
            Some(_) | None => WriteTimestamp::Server,
        };
        let credentials = match (options.pull_str("username"), options.pull_str("password")) {
            (Some(user), Some(password)) => Some((user.value, password.value)),
            (None, None) => None,
            (Some(o), None) | (None, Some(o)) => {
                return crate::sql_err!(o.location, "'username' and 'password' go together");
            }
        };
        let max_concurrency = options.pull_u64("sink.max-concurrency")?.unwrap_or(64);
        let max_retries = options.pull_u64("sink.max-retries")?.unwrap_or(5);
        Ok(Self {
            hosts,
            keyspace,
            table,
            ttl,
            consistency,
            write_timestamp,
            credentials,
            max_concurrency: usize::try_from(max_concurrency).unwrap_or(usize::MAX),
            max_retries: u32::try_from(max_retries).unwrap_or(u32::MAX),
            columns: None,
        })
    }

    /// `keyspace.table`, for messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.keyspace, self.table)
    }

    /// Connects to the cluster (not waiting for schema agreement, which a single-node test
    /// server cannot report).
    pub async fn connect(&self) -> Result<Session, String> {
        let mut builder = SessionBuilder::new()
            .known_nodes(&self.hosts)
            .connection_timeout(Duration::from_secs(5))
            .auto_await_schema_agreement(false);
        if let Some((user, password)) = &self.credentials {
            builder = builder.user(user, password);
        }
        builder
            .build()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.hosts.join(",")))
    }

    /// Reads the table's columns and primary key from `system_schema.columns`.
    pub async fn describe(&self) -> Result<CassandraTable, String> {
        let session = self.connect().await?;
        describe(&session, &self.keyspace, &self.table).await
    }
}

/// What a column is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColumnKind {
    /// The partition key.
    PartitionKey,
    /// A clustering column.
    Clustering,
    /// A static column.
    Static,
    /// Any other column.
    Regular,
}

/// A column of a Cassandra table.
#[derive(Debug, Clone)]
pub struct CqlColumn {
    /// Its name.
    pub name: String,
    /// Its CQL type as `system_schema` spells it (`text`, `timestamp`, `map<text, int>`).
    pub cql_type: String,
    /// What it is part of.
    pub kind: ColumnKind,
}

impl CqlColumn {
    /// Whether the column is part of the primary key.
    pub fn is_key(&self) -> bool {
        matches!(self.kind, ColumnKind::PartitionKey | ColumnKind::Clustering)
    }
}

/// A Cassandra table's columns: partition key, clustering columns (in key order), then the rest.
#[derive(Debug, Clone)]
pub struct CassandraTable {
    /// Every column.
    pub columns: Vec<CqlColumn>,
}

impl CassandraTable {
    /// The primary key columns in key order.
    pub fn primary_key(&self) -> Vec<String> {
        self.columns.iter().filter(|c| c.is_key()).map(|c| c.name.clone()).collect()
    }

    /// The columns the sink can write, as Arrow fields (key columns not nullable).
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .filter_map(|c| arrow_type(&c.cql_type).map(|t| Field::new(&c.name, t, !c.is_key())))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&CqlColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Arrow type column `name` is written from, if values of type `from` can be written to
    /// it; otherwise why not.
    pub fn writable(&self, name: &str, from: &DataType) -> std::result::Result<DataType, String> {
        let column = self.column(name).ok_or_else(|| format!("no column '{name}'"))?;
        let Some(target) = arrow_type(&column.cql_type) else {
            return Err(format!(
                "column '{name}' is {}, which the cassandra sink cannot write (it writes text, ascii, varchar, bigint, int, smallint, tinyint, double, float, boolean, timestamp, date and blob)",
                column.cql_type
            ));
        };
        if accepts(&target, from) {
            Ok(target)
        } else {
            Err(format!(
                "column '{name}' is {} in Cassandra, but the query gives {from}",
                column.cql_type
            ))
        }
    }
}

/// The Arrow type a CQL type is written from, for the types the sink writes.
pub fn arrow_type(cql: &str) -> Option<DataType> {
    Some(match cql.trim().to_ascii_lowercase().as_str() {
        "text" | "varchar" | "ascii" => DataType::Utf8,
        "bigint" => DataType::Int64,
        "int" => DataType::Int32,
        "smallint" => DataType::Int16,
        "tinyint" => DataType::Int8,
        "double" => DataType::Float64,
        "float" => DataType::Float32,
        "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "date" => DataType::Date32,
        "blob" => DataType::Binary,
        _ => return None,
    })
}

/// Whether query values of type `from` may be written to a column written from `target`: the
/// same kind of value (text, integer, number, time, ...), never a silent reinterpretation.
fn accepts(target: &DataType, from: &DataType) -> bool {
    use DataType as D;
    let integer = |t: &DataType| {
        matches!(
            t,
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64
        )
    };
    match target {
        _ if from == &D::Null => true,
        D::Utf8 => matches!(from, D::Utf8 | D::LargeUtf8 | D::Utf8View),
        D::Int8 | D::Int16 | D::Int32 | D::Int64 => integer(from),
        D::Float32 | D::Float64 => {
            integer(from)
                || matches!(
                    from,
                    D::Float16 | D::Float32 | D::Float64 | D::Decimal128(..) | D::Decimal256(..)
                )
        }
        D::Boolean => from == &D::Boolean,
        D::Timestamp(..) => matches!(from, D::Timestamp(..)),
        D::Date32 => matches!(from, D::Date32 | D::Date64),
        D::Binary => {
            matches!(from, D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_))
        }
        _ => false,
    }
}

/// Reads a table's columns from `system_schema.columns` (paged). Selects the keyspace's columns
/// and keeps the table's on the client; when that finds nothing, scans the whole table (the
/// kassandra test server applies no partition-key predicate on its system tables).
pub async fn describe(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> Result<CassandraTable, String> {
    const COLUMNS: &str = "SELECT keyspace_name, table_name, column_name, kind, position, type FROM system_schema.columns";
    let mut rows = select_columns(
        session,
        &format!("{COLUMNS} WHERE keyspace_name = ?"),
        (keyspace,),
        keyspace,
        table,
    )
    .await?;
    if rows.is_empty() {
        rows = select_columns(session, COLUMNS, (), keyspace, table).await?;
    }
    if rows.is_empty() {
        return Err(format!(
            "table {keyspace}.{table} does not exist (no columns in system_schema.columns); create it first (see cql/)"
        ));
    }
    let mut columns: Vec<(ColumnKind, i32, CqlColumn)> = rows
        .into_iter()
        .map(|(name, kind, position, cql_type)| {
            let kind = match kind.to_ascii_lowercase().as_str() {
                "partition_key" => ColumnKind::PartitionKey,
                "clustering" => ColumnKind::Clustering,
                "static" => ColumnKind::Static,
                _ => ColumnKind::Regular,
            };
            (kind, position, CqlColumn { name, cql_type, kind })
        })
        .collect();
    columns.sort_by(|a, b| (a.0, a.1, &a.2.name).cmp(&(b.0, b.1, &b.2.name)));
    Ok(CassandraTable { columns: columns.into_iter().map(|(_, _, c)| c).collect() })
}

type ColumnRow = (String, String, String, String, i32, String);

/// Runs a paged select of `system_schema.columns`; returns (name, kind, position, type) of the
/// columns of `keyspace.table`.
async fn select_columns(
    session: &Session,
    cql: &str,
    values: impl scylla::serialize::row::SerializeRow,
    keyspace: &str,
    table: &str,
) -> Result<Vec<(String, String, i32, String)>, String> {
    let failed =
        |e: &dyn std::fmt::Display| format!("cannot read the columns of {keyspace}.{table}: {e}");
    let pager = session.query_iter(cql, values).await.map_err(|e| failed(&e))?;
    pager
        .rows_stream::<ColumnRow>()
        .map_err(|e| failed(&e))?
        .try_filter_map(|(k, t, name, kind, position, cql_type)| {
            let ours = k == keyspace && t == table;
            std::future::ready(Ok(ours.then_some((name, kind, position, cql_type))))
        })
        .try_collect()
        .await
        .map_err(|e| failed(&e))
}

/// CQL's reserved keywords: identifiers spelled like these must be quoted.
const RESERVED: &[&str] = &[
    "add",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "is",
    "keyspace",
    "limit",
    "materialized",
    "mbean",
    "mbeans",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "unset",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
];

/// A CQL identifier as written in a statement: as is when it is a plain lowercase name (which
/// CQL reads the same unquoted), otherwise double-quoted so that its case is kept.
pub fn quote(identifier: &str) -> String {
    let plain = identifier.starts_with(|c: char| c.is_ascii_lowercase())
        && identifier.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&identifier);
    if plain { identifier.to_string() } else { format!("\"{}\"", identifier.replace('"', "\"\"")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CassandraTable {
        let column = |name: &str, cql_type: &str, kind| CqlColumn {
            name: name.into(),
            cql_type: cql_type.into(),
            kind,
        };
        CassandraTable {
            columns: vec![
                column("symbol", "text", ColumnKind::PartitionKey),
                column("window_start", "timestamp", ColumnKind::Clustering),
                column("open", "double", ColumnKind::Regular),
                column("tags", "map<text, text>", ColumnKind::Regular),
            ],
        }
    }

    #[test]
    fn writable_types_are_checked_by_kind_of_value() {
        let t = table();
        assert_eq!(t.writable("open", &DataType::Int64).unwrap(), DataType::Float64);
        assert!(
            t.writable("window_start", &DataType::Timestamp(TimeUnit::Nanosecond, None)).is_ok()
        );
        let err = t.writable("open", &DataType::Utf8).unwrap_err();
        assert!(err.contains("'open' is double in Cassandra, but the query gives Utf8"), "{err}");
        assert!(t.writable("window_start", &DataType::Int64).is_err());
        assert!(t.writable("tags", &DataType::Utf8).unwrap_err().contains("cannot write"));
        assert_eq!(t.primary_key(), ["symbol", "window_start"]);
        assert_eq!(t.schema().fields().len(), 3, "the map column is not writable");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("window_start"), "window_start");
        assert_eq!(quote("windowStart"), "\"windowStart\"");
        assert_eq!(quote("order"), "\"order\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
