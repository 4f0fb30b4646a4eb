//! A Cassandra table read as it is now (what the REPL queries): paged reads of the columns a
//! query uses. When the query restricts every partition key column to values (`symbol = 'X'`,
//! `symbol IN ('X', 'Y')`), one single-partition read per combination of values is made
//! (`SELECT ... WHERE symbol = ?`); otherwise the whole table is read. DataFusion applies every
//! filter again on the rows read (the pushdown is `Inexact`), so a server that ignores part of a
//! `WHERE` clause cannot change a result.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::value::{CqlValue, Row};
use tokio::sync::OnceCell;

use super::scan::{Batches, spawned_scan};
use crate::connector::cassandra::{CassandraOptions, CassandraTable, ColumnKind, quote, to_cql};
use crate::error::{EngineError, Result};

/// At most this many single-partition reads for one scan; more combinations read the table.
const MAX_PARTITIONS: usize = 1_000;
/// Rows per record batch and per page.
const BATCH_ROWS: usize = 5_000;

/// A Cassandra table as a DataFusion table.
#[derive(Debug)]
pub struct CassandraSnapshot {
    label: String,
    options: CassandraOptions,
    columns: Arc<CassandraTable>,
    schema: SchemaRef,
    session: Arc<OnceCell<Session>>,
}

impl CassandraSnapshot {
    /// The table `name` of `options`, whose columns the planner read from the server.
    pub fn new(name: &str, options: &CassandraOptions) -> Result<Self> {
        let label = format!("cassandra table '{name}' ({})", options.qualified_name());
        let Some(columns) = &options.columns else {
            return Err(EngineError::connector(
                label,
                "its columns could not be read from Cassandra",
            ));
        };
        Ok(Self {
            label,
            options: options.clone(),
            columns: Arc::clone(columns),
            schema: columns.schema(),
            session: Arc::new(OnceCell::new()),
        })
    }

    fn partition_key(&self) -> Vec<&str> {
        let key = self.columns.columns.iter().filter(|c| c.kind == ColumnKind::PartitionKey);
        key.map(|c| c.name.as_str()).collect()
    }

    /// The values of every partition key column that `filters` restrict it to, in key order.
    fn key_values(&self, filters: &[Expr]) -> Option<Vec<Vec<ScalarValue>>> {
        self.partition_key()
            .into_iter()
            .map(|column| filters.iter().find_map(|f| restricted_values(f, column)))
            .collect()
    }

    /// What to read: `SELECT columns FROM table [WHERE key = ? AND ...]` and the values to bind,
    /// once per partition (no values: the whole table, once).
    fn plan_reads(
        &self,
        columns: &[&str],
        filters: &[Expr],
    ) -> Result<(String, Vec<Vec<Option<CqlValue>>>)> {
        let mut names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        if names.is_empty() {
            // Counting rows still needs a column to select.
            names.push(quote(&self.columns.columns[0].name));
        }
        let target = format!("{}.{}", quote(&self.options.keyspace), quote(&self.options.table));
        let select = format!("SELECT {} FROM {target}", names.join(", "));
        let key = self.partition_key();
        let reads = self.key_values(filters).and_then(|values| {
            let count = values.iter().map(Vec::len).try_fold(1usize, |n, v| n.checked_mul(v))?;
            (count <= MAX_PARTITIONS).then_some(values)
        });
        let Some(values) = reads else { return Ok((select, vec![vec![]])) };
        let mut bound: Vec<Vec<Option<CqlValue>>> = vec![vec![]];
        for (column, candidates) in key.iter().zip(values) {
            let data_type = self.schema.field_with_name(column).map_err(DataFusionError::from)?;
            let cql = to_cql_values(&candidates, data_type.data_type())
                .map_err(|e| EngineError::connector(self.label.clone(), e))?;
            bound = bound
                .into_iter()
                .flat_map(|prefix| {
                    cql.iter().map(move |v| {
                        let mut row = prefix.clone();
                        row.push(Some(v.clone()));
                        row
                    })
                })
                .collect();
        }
        let conditions: Vec<String> = key.iter().map(|c| format!("{} = ?", quote(c))).collect();
        Ok((format!("{select} WHERE {}", conditions.join(" AND ")), bound))
    }
}

/// The literal values `filter` restricts `column` to: `column = v`, `v = column` or
/// `column IN (v, ...)`.
fn restricted_values(filter: &Expr, column: &str) -> Option<Vec<ScalarValue>> {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    let literal = |e: &Expr| match e {
        Expr::Literal(value, _) if !value.is_null() => Some(value.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            if is_column(left) {
                literal(right).map(|v| vec![v])
            } else if is_column(right) {
                literal(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr) => {
            list.list.iter().map(literal).collect()
        }
        _ => None,
    }
}

/// Literal values as CQL values of a column read as `data_type`.
fn to_cql_values(values: &[ScalarValue], data_type: &DataType) -> Result<Vec<CqlValue>, String> {
    let array = ScalarValue::iter_to_array(values.iter().cloned()).map_err(|e| e.to_string())?;
    let array = cast(&array, data_type).map_err(|e| e.to_string())?;
    Ok(to_cql(array.as_ref())?.into_iter().flatten().collect())
}

#[async_trait]
impl TableProvider for CassandraSnapshot {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        let key = self.partition_key();
        Ok(filters
            .iter()
            .map(|f| {
                if key.iter().any(|c| restricted_values(f, c).is_some()) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let columns: Vec<&str> = match projection {
            Some(indices) => {
                indices.iter().map(|&i| self.schema.field(i).name().as_str()).collect()
            }
            None => self.schema.fields().iter().map(|f| f.name().as_str()).collect(),
        };
        let (cql, reads) =
            self.plan_reads(&columns, filters).map_err(|e| DataFusionError::External(e.into()))?;
        let (label, options, session) =
            (self.label.clone(), self.options.clone(), Arc::clone(&self.session));
        spawned_scan(&self.schema, projection, limit, move |schema, tx| {
            let read = Read {
                label: label.clone(),
                options: options.clone(),
                session: Arc::clone(&session),
                cql: cql.clone(),
                reads: reads.clone(),
            };
            read.run(schema, tx)
        })
    }
}

/// The reads of one scan: each in turn, page by page.
struct Read {
    label: String,
    options: CassandraOptions,
    session: Arc<OnceCell<Session>>,
    cql: String,
    reads: Vec<Vec<Option<CqlValue>>>,
}

impl Read {
    async fn run(self, schema: SchemaRef, tx: Batches) -> Result<()> {
        let failed = |e: &dyn std::fmt::Display| {
            EngineError::connector(self.label.clone(), format!("{e} in: {}", self.cql))
        };
        let session = self
            .session
            .get_or_try_init(|| self.options.connect())
            .await
            .map_err(|e| failed(&e))?;
        for values in &self.reads {
            let mut statement = scylla::statement::Statement::new(self.cql.as_str());
            statement.set_page_size(BATCH_ROWS as i32);
            let pager = session.query_iter(statement, values).await.map_err(|e| failed(&e))?;
            let mut chunks =
                pager.rows_stream::<Row>().map_err(|e| failed(&e))?.try_chunks(BATCH_ROWS);
            while let Some(rows) = chunks.try_next().await.map_err(|e| failed(&e))? {
                let batch = to_batch(&schema, &rows).map_err(|e| failed(&e))?;
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Rows (holding the selected columns in schema order) as a batch of `schema`.
fn to_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch, String> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let values = rows.iter().map(|r| r.columns.get(i).and_then(Option::as_ref));
            from_cql(field.name(), field.data_type(), values)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(|e| e.to_string())
}

/// One column of CQL values as an Arrow array of `data_type` (the type [`super::arrow_type`]
/// gives the column's CQL type).
fn from_cql<'a>(
    name: &str,
    data_type: &DataType,
    values: impl Iterator<Item = Option<&'a CqlValue>>,
) -> Result<ArrayRef, String> {
    fn typed<'a, T, A>(
        name: &str,
        values: impl Iterator<Item = Option<&'a CqlValue>>,
        get: impl Fn(&'a CqlValue) -> Option<T>,
    ) -> Result<ArrayRef, String>
    where
        A: From<Vec<Option<T>>> + datafusion::arrow::array::Array + 'static,
    {
        let converted = values
            .map(|v| match v {
                None | Some(CqlValue::Empty) => Ok(None),
                Some(value) => get(value)
                    .map(Some)
                    .ok_or_else(|| format!("column '{name}': unexpected value {value:?}")),
            })
            .collect::<Result<Vec<Option<T>>, String>>()?;
        Ok(Arc::new(A::from(converted)))
    }
    match data_type {
        DataType::Utf8 => typed::<&str, StringArray>(name, values, |v| match v {
            CqlValue::Text(s) | CqlValue::Ascii(s) => Some(s.as_str()),
            _ => None,
        }),
        DataType::Int64 => typed::<i64, Int64Array>(name, values, |v| match v {
            CqlValue::BigInt(n) => Some(*n),
            CqlValue::Counter(c) => Some(c.0),
            _ => None,
        }),
        DataType::Int32 => typed::<i32, Int32Array>(name, values, CqlValue::as_int),
        DataType::Int16 => typed::<i16, Int16Array>(name, values, CqlValue::as_smallint),
        DataType::Int8 => typed::<i8, Int8Array>(name, values, CqlValue::as_tinyint),
        DataType::Float64 => typed::<f64, Float64Array>(name, values, CqlValue::as_double),
        DataType::Float32 => typed::<f32, Float32Array>(name, values, CqlValue::as_float),
        DataType::Boolean => typed::<bool, BooleanArray>(name, values, CqlValue::as_boolean),
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            typed::<i64, TimestampMillisecondArray>(name, values, |v| match v {
                CqlValue::Timestamp(t) => Some(t.0),
                _ => None,
            })
        }
        DataType::Date32 => typed::<i32, Date32Array>(name, values, |v| match v {
            // Days since 2^31 days before the epoch.
            CqlValue::Date(d) => i32::try_from(i64::from(d.0) - (1i64 << 31)).ok(),
            _ => None,
        }),
        DataType::Binary => typed::<&[u8], BinaryArray>(name, values, |v| match v {
            CqlValue::Blob(b) => Some(b.as_slice()),
            _ => None,
        }),
        other => Err(format!("column '{name}': cannot read {other} from Cassandra")),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};
    use scylla::value::{CqlDate, CqlTimestamp};

    use super::*;
    use crate::connector::cassandra::CqlColumn;

    fn snapshot(key: &[&str]) -> CassandraSnapshot {
        let column = |name: &str, cql_type: &str, kind| CqlColumn {
            name: name.into(),
            cql_type: cql_type.into(),
            kind,
        };
        let mut columns: Vec<CqlColumn> =
            key.iter().map(|k| column(k, "text", ColumnKind::PartitionKey)).collect();
        columns.push(column("window_start", "timestamp", ColumnKind::Clustering));
        columns.push(column("close", "double", ColumnKind::Regular));
        let options = CassandraOptions {
            hosts: vec![],
            keyspace: "market".into(),
            table: "candles_1m".into(),
            ttl: None,
            consistency: scylla::statement::Consistency::One,
            write_timestamp: crate::connector::cassandra::WriteTimestamp::Server,
            credentials: None,
            max_concurrency: 1,
            max_retries: 0,
            columns: Some(Arc::new(CassandraTable { columns })),
        };
        CassandraSnapshot::new("candles", &options).unwrap()
    }

    #[test]
    fn partition_key_equalities_become_single_partition_reads() {
        let s = snapshot(&["symbol"]);
        let filters =
            [col("symbol").in_list(vec![lit("A"), lit("B")], false), col("close").gt(lit(1.0))];
        let (cql, reads) = s.plan_reads(&["window_start", "close"], &filters).unwrap();
        assert_eq!(cql, "SELECT window_start, close FROM market.candles_1m WHERE symbol = ?");
        assert_eq!(
            reads,
            [vec![Some(CqlValue::Text("A".into()))], vec![Some(CqlValue::Text("B".into()))]]
        );
        let pushdown = s.supports_filters_pushdown(&[&filters[0], &filters[1]]).unwrap();
        assert!(matches!(
            pushdown.as_slice(),
            [TableProviderFilterPushDown::Inexact, TableProviderFilterPushDown::Unsupported]
        ));
    }

    #[test]
    fn a_composite_partition_key_needs_every_column_restricted() {
        let s = snapshot(&["exchange", "symbol"]);
        let only_one = [col("symbol").eq(lit("A"))];
        let (cql, reads) = s.plan_reads(&[], &only_one).unwrap();
        assert_eq!(cql, "SELECT exchange FROM market.candles_1m", "a full read");
        assert_eq!(reads, [Vec::<Option<CqlValue>>::new()]);
        let both =
            [lit("A").eq(col("symbol")), col("exchange").in_list(vec![lit("X"), lit("Y")], false)];
        let (cql, reads) = s.plan_reads(&[], &both).unwrap();
        assert_eq!(cql, "SELECT exchange FROM market.candles_1m WHERE exchange = ? AND symbol = ?");
        assert_eq!(reads.len(), 2);
    }

    #[test]
    fn cql_values_become_arrow_columns() {
        let values = [Some(CqlValue::Timestamp(CqlTimestamp(1_000))), None];
        let array = from_cql(
            "t",
            &DataType::Timestamp(TimeUnit::Millisecond, None),
            values.iter().map(Option::as_ref),
        )
        .unwrap();
        assert_eq!(array.len(), 2);
        assert!(array.is_null(1));
        let date = [Some(CqlValue::Date(CqlDate((1u32 << 31) + 3)))];
        let array = from_cql("d", &DataType::Date32, date.iter().map(Option::as_ref)).unwrap();
        assert_eq!(array.as_any().downcast_ref::<Date32Array>().unwrap().value(0), 3);
        let wrong = [Some(CqlValue::Int(1))];
        let err = from_cql("s", &DataType::Utf8, wrong.iter().map(Option::as_ref)).unwrap_err();
        assert!(err.contains("column 's'"), "{err}");
    }
}
