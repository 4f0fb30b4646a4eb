//! Writes rows to a Cassandra table with prepared statements: `INSERT` (an upsert) or `DELETE`
//! by primary key. The rows of a write are grouped by partition key; each group is one request
//! (an unlogged batch when it has several rows, which Cassandra applies as one mutation) and up to
//! `sink.max-concurrency` requests run at once, routed token-aware by the driver. A request that
//! times out or finds replicas unavailable is retried with backoff. `write` returns only once every
//! row is written.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use futures::StreamExt;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlDate, CqlTimestamp, CqlValue};

use super::{CassandraOptions, ColumnKind, WriteTimestamp, quote};
use crate::connector::{ChangeKind, SinkWriter};
use crate::error::{EngineError, Result};

/// Rows of one partition per unlogged batch, at most.
const MAX_BATCH_ROWS: usize = 100;

type Row = Vec<Option<CqlValue>>;

/// Writes a query's output to a Cassandra table.
pub struct CassandraSink {
    label: String,
    options: CassandraOptions,
    schema: SchemaRef,
    /// Indexes (in `schema`) of the primary key columns, in key order.
    key: Vec<usize>,
    /// Indexes (in `schema`) of the partition key columns.
    partition_key: Vec<usize>,
    connected: Option<Connected>,
    last_timestamp: i64,
}

struct Connected {
    session: Session,
    insert: PreparedStatement,
    delete: PreparedStatement,
}

impl std::fmt::Debug for CassandraSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraSink")
            .field("table", &self.label)
            .field("connected", &self.connected.is_some())
            .finish()
    }
}

impl CassandraSink {
    /// A sink writing rows of `schema` (a subset of the table's columns, every key column
    /// included) to the table of `options`. Connects on the first write.
    pub fn new(table: &str, options: &CassandraOptions, schema: SchemaRef) -> Result<Self> {
        let label = format!("cassandra sink '{table}' ({})", options.qualified_name());
        let Some(columns) = &options.columns else {
            return Err(EngineError::connector(
                label,
                "the table's columns were not read from Cassandra",
            ));
        };
        let mut key = vec![];
        let mut partition_key = vec![];
        for column in columns.columns.iter().filter(|c| c.is_key()) {
            let Ok(index) = schema.index_of(&column.name) else {
                return Err(EngineError::connector(
                    label,
                    format!("primary key column '{}' is not written", column.name),
                ));
            };
            key.push(index);
            if column.kind == ColumnKind::PartitionKey {
                partition_key.push(index);
            }
        }
        Ok(Self {
            label,
            options: options.clone(),
            schema,
            key,
            partition_key,
            connected: None,
            last_timestamp: 0,
        })
    }

    fn error(&self, message: impl Into<String>) -> EngineError {
        EngineError::connector(self.label.clone(), message)
    }

    /// The upsert, e.g. `INSERT INTO market.candles_1m (symbol, ...) VALUES (?, ...) USING TTL 60`.
    pub fn insert_statement(&self) -> String {
        let names: Vec<String> = self.schema.fields().iter().map(|f| quote(f.name())).collect();
        let markers = vec!["?"; names.len()].join(", ");
        let ttl = self.options.ttl.map(|s| format!(" USING TTL {s}")).unwrap_or_default();
        format!("INSERT INTO {} ({}) VALUES ({markers}){ttl}", self.target(), names.join(", "))
    }

    /// The delete by primary key, e.g. `DELETE FROM market.candles_1m WHERE symbol = ? AND ...`.
    pub fn delete_statement(&self) -> String {
        let conditions: Vec<String> = self
            .key
            .iter()
            .map(|&i| format!("{} = ?", quote(self.schema.field(i).name())))
            .collect();
        format!("DELETE FROM {} WHERE {}", self.target(), conditions.join(" AND "))
    }

    fn target(&self) -> String {
        format!("{}.{}", quote(&self.options.keyspace), quote(&self.options.table))
    }

    async fn connect(&mut self) -> Result<&Connected> {
        if self.connected.is_none() {
            let session = self.options.connect().await.map_err(|e| self.error(e))?;
            let consistency = self.options.consistency;
            let insert = prepare(&session, self.insert_statement(), consistency)
                .await
                .map_err(|e| self.error(e))?;
            let delete = prepare(&session, self.delete_statement(), consistency)
                .await
                .map_err(|e| self.error(e))?;
            tracing::info!(sink = %self.label, "connected to Cassandra");
            self.connected = Some(Connected { session, insert, delete });
        }
        self.connected.as_ref().ok_or_else(|| EngineError::Internal("not connected".into()))
    }

    /// A write time in microseconds, increasing from call to call.
    fn next_timestamp(&mut self) -> Option<i64> {
        if self.options.write_timestamp == WriteTimestamp::Server {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        self.last_timestamp = now.max(self.last_timestamp + 1);
        Some(self.last_timestamp)
    }
}

async fn prepare(
    session: &Session,
    cql: String,
    consistency: scylla::statement::Consistency,
) -> std::result::Result<PreparedStatement, String> {
    let mut statement =
        session.prepare(cql.as_str()).await.map_err(|e| format!("cannot prepare {cql}: {e}"))?;
    statement.set_consistency(consistency);
    statement.set_is_idempotent(true);
    Ok(statement)
}

/// One request: rows of one partition with the statement and write time.
struct Request {
    rows: Vec<Row>,
    timestamp: Option<i64>,
}

#[async_trait]
impl SinkWriter for CassandraSink {
    async fn write(&mut self, _epoch: u64, batch: &RecordBatch, kind: ChangeKind) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let columns: Vec<usize> = match kind {
            ChangeKind::Upsert => (0..batch.num_columns()).collect(),
            ChangeKind::Delete => self.key.clone(),
        };
        let values = columns
            .iter()
            .map(|&i| to_cql(batch.column(i).as_ref()))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|e| self.error(e))?;
        // Group rows by partition key, keeping first-seen order.
        let partition_positions: Vec<usize> = self
            .partition_key
            .iter()
            .map(|k| columns.iter().position(|c| c == k).unwrap_or_default())
            .collect();
        let mut groups: Vec<Vec<Row>> = vec![];
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            let values: Row = values.iter().map(|column| column[row].clone()).collect();
            let key = format!(
                "{:?}",
                partition_positions.iter().map(|&p| &values[p]).collect::<Vec<_>>()
            );
            let group = *by_key.entry(key).or_insert_with(|| {
                groups.push(vec![]);
                groups.len() - 1
            });
            groups[group].push(values);
        }
        let mut requests = vec![];
        for group in groups {
            let mut rows = group.into_iter().peekable();
            while rows.peek().is_some() {
                let rows: Vec<Row> = rows.by_ref().take(MAX_BATCH_ROWS).collect();
                requests.push(Request { rows, timestamp: self.next_timestamp() });
            }
        }
        let (max_concurrency, max_retries, consistency) =
            (self.options.max_concurrency, self.options.max_retries, self.options.consistency);
        let connected = self.connect().await?;
        let statement = match kind {
            ChangeKind::Upsert => &connected.insert,
            ChangeKind::Delete => &connected.delete,
        };
        let session = &connected.session;
        let results: Vec<std::result::Result<(), String>> = futures::stream::iter(requests)
            .map(|request| execute(session, statement, consistency, request, max_retries))
            .buffer_unordered(max_concurrency)
            .collect()
            .await;
        let failures: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(self.error(format!(
                "{} of the write requests failed; first error: {first}",
                failures.len()
            ))),
        }
    }

    async fn commit(&mut self, _epoch: u64) -> Result<()> {
        // `write` returns only once Cassandra acknowledged every row: nothing is outstanding.
        Ok(())
    }
}

/// Runs one request, retrying timeouts and unavailability with exponential backoff.
async fn execute(
    session: &Session,
    statement: &PreparedStatement,
    consistency: scylla::statement::Consistency,
    request: Request,
    max_retries: u32,
) -> std::result::Result<(), String> {
    let mut attempt = 0;
    loop {
        let result = if let [row] = request.rows.as_slice() {
            let mut statement = statement.clone();
            statement.set_timestamp(request.timestamp);
            session.execute_unpaged(&statement, row).await.map(drop)
        } else {
            let mut batch = Batch::new(BatchType::Unlogged);
            for _ in 0..request.rows.len() {
                batch.append_statement(statement.clone());
            }
            batch.set_consistency(consistency);
            batch.set_timestamp(request.timestamp);
            batch.set_is_idempotent(true);
            session.batch(&batch, &request.rows).await.map(drop)
        };
        match result {
            Ok(()) => return Ok(()),
            Err(err) if attempt < max_retries && retryable(&err) => {
                attempt += 1;
                let wait = Duration::from_millis(100 << attempt.min(6));
                tracing::warn!(error = %err, attempt, retry_in = ?wait, "cassandra write failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(err) => return Err(err.to_string()),
        }
    }
}

/// Whether an error is transient: a timeout, unavailable replicas, an overloaded or starting
/// node, or a lost connection.
fn retryable(err: &ExecutionError) -> bool {
    match err {
        ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::EmptyPlan => true,
        ExecutionError::LastAttemptError(attempt) => match attempt {
            RequestAttemptError::DbError(db, _) => matches!(
                db,
                DbError::Unavailable { .. }
                    | DbError::WriteTimeout { .. }
                    | DbError::ReadTimeout { .. }
                    | DbError::Overloaded
                    | DbError::IsBootstrapping
                    | DbError::RateLimitReached { .. }
            ),
            RequestAttemptError::BrokenConnectionError(_)
            | RequestAttemptError::UnableToAllocStreamId => true,
            _ => false,
        },
        _ => false,
    }
}

/// One Arrow column (already in the sink's schema) as CQL values; nulls are written as nulls.
/// The REPL binds partition key values with it too.
pub(crate) fn to_cql(array: &dyn Array) -> std::result::Result<Vec<Option<CqlValue>>, String> {
    fn collect<A: Array, T>(
        array: &A,
        value: impl Fn(&A, usize) -> T,
        to: impl Fn(T) -> CqlValue,
    ) -> Vec<Option<CqlValue>> {
        (0..array.len()).map(|i| array.is_valid(i).then(|| to(value(array, i)))).collect()
    }
    Ok(match array.data_type() {
        DataType::Utf8 => {
            let a: &StringArray = array.as_string();
            collect(a, |a, i| a.value(i).to_string(), CqlValue::Text)
        }
        DataType::Int64 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Int64Type>() as &Int64Array,
            |a, i| a.value(i),
            CqlValue::BigInt,
        ),
        DataType::Int32 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Int32Type>() as &Int32Array,
            |a, i| a.value(i),
            CqlValue::Int,
        ),
        DataType::Int16 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Int16Type>() as &Int16Array,
            |a, i| a.value(i),
            CqlValue::SmallInt,
        ),
        DataType::Int8 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Int8Type>() as &Int8Array,
            |a, i| a.value(i),
            CqlValue::TinyInt,
        ),
        DataType::Float64 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Float64Type>() as &Float64Array,
            |a, i| a.value(i),
            CqlValue::Double,
        ),
        DataType::Float32 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Float32Type>() as &Float32Array,
            |a, i| a.value(i),
            CqlValue::Float,
        ),
        DataType::Boolean => {
            collect(array.as_boolean() as &BooleanArray, |a, i| a.value(i), CqlValue::Boolean)
        }
        DataType::Timestamp(TimeUnit::Millisecond, None) => collect(
            array.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>()
                as &TimestampMillisecondArray,
            |a, i| a.value(i),
            |ms| CqlValue::Timestamp(CqlTimestamp(ms)),
        ),
        DataType::Date32 => collect(
            array.as_primitive::<datafusion::arrow::datatypes::Date32Type>() as &Date32Array,
            |a, i| a.value(i),
            |days| CqlValue::Date(CqlDate((i64::from(days) + (1i64 << 31)) as u32)),
        ),
        DataType::Binary => {
            let a: &BinaryArray = array.as_binary();
            collect(a, |a, i| a.value(i).to_vec(), CqlValue::Blob)
        }
        other => return Err(format!("cannot write Arrow type {other} to Cassandra")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::connector::cassandra::{CassandraTable, CqlColumn};

    fn options(ttl: Option<u32>) -> CassandraOptions {
        let column = |name: &str, cql_type: &str, kind| CqlColumn {
            name: name.into(),
            cql_type: cql_type.into(),
            kind,
        };
        CassandraOptions {
            hosts: vec!["localhost:9042".into()],
            keyspace: "market".into(),
            table: "candles_1m".into(),
            ttl,
            consistency: scylla::statement::Consistency::LocalQuorum,
            write_timestamp: WriteTimestamp::Client,
            credentials: None,
            max_concurrency: 4,
            max_retries: 1,
            columns: Some(Arc::new(CassandraTable {
                columns: vec![
                    column("symbol", "text", ColumnKind::PartitionKey),
                    column("window_start", "timestamp", ColumnKind::Clustering),
                    column("close", "double", ColumnKind::Regular),
                ],
            })),
        }
    }

    fn schema(names: &[&str]) -> SchemaRef {
        Arc::new(Schema::new(
            names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn statements_are_standard_cql_with_ttl() {
        let sink = CassandraSink::new(
            "c",
            &options(Some(3600)),
            schema(&["window_start", "symbol", "close"]),
        )
        .unwrap();
        assert_eq!(
            sink.insert_statement(),
            "INSERT INTO market.candles_1m (window_start, symbol, close) VALUES (?, ?, ?) USING TTL 3600"
        );
        assert_eq!(
            sink.delete_statement(),
            "DELETE FROM market.candles_1m WHERE symbol = ? AND window_start = ?"
        );
        let plain =
            CassandraSink::new("c", &options(None), schema(&["symbol", "window_start"])).unwrap();
        assert!(plain.insert_statement().ends_with("VALUES (?, ?)"));
    }

    #[test]
    fn a_missing_key_column_is_refused() {
        let err =
            CassandraSink::new("c", &options(None), schema(&["symbol", "close"])).unwrap_err();
        assert!(err.to_string().contains("'window_start' is not written"), "{err}");
    }

    #[test]
    fn client_write_times_increase() {
        let mut sink =
            CassandraSink::new("c", &options(None), schema(&["symbol", "window_start"])).unwrap();
        let a = sink.next_timestamp().unwrap();
        let b = sink.next_timestamp().unwrap();
        assert!(b > a);
    }
}
