//! The Cassandra sink against the real CQL server (kassandra). Reads back whole tables with
//! paged iterators and sorts on the client (kassandra ignores clustering order).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use engine::connector::cassandra::{CassandraSink, ColumnKind};
use engine::connector::{ChangeKind, ConnectorSpec, SinkWriter};
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;

use crate::servers::{cql, cql_hosts, cql_session, create_keyspace, file_in, plan, table};

const CANDLES: &str = "(symbol text, window_start timestamp, window_end timestamp, open double, high double, \
     low double, close double, ticks bigint, note text, PRIMARY KEY ((symbol), window_start)) \
     WITH CLUSTERING ORDER BY (window_start DESC)";

fn sink_ddl(keyspace: &str) -> String {
    format!(
        "CREATE TABLE candles WITH (connector = 'cassandra', hosts = '{}', keyspace = '{keyspace}', 'table' = 'candles');\n",
        cql_hosts()
    )
}

const SOURCE: &str = "CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL, \"timestamp\" BIGINT NOT NULL,
    ts AS to_timestamp(\"timestamp\"), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'filesystem', path = '/nonexistent', format = 'json');
";

async fn candles_keyspace(prefix: &str) -> (Session, String) {
    let session = cql_session().await;
    let keyspace = create_keyspace(&session, prefix).await;
    cql(&session, &format!("CREATE TABLE {keyspace}.candles {CANDLES}")).await;
    (session, keyspace)
}

type Candle = (String, i64, Option<i64>, Option<f64>, Option<i64>, Option<String>);

/// Every row of the candles table (symbol, window_start ms, window_end, open, ticks, note), sorted.
async fn read_candles(session: &Session, keyspace: &str) -> Vec<Candle> {
    let pager = session
        .query_iter(
            format!(
                "SELECT symbol, window_start, window_end, open, ticks, note FROM {keyspace}.candles"
            ),
            (),
        )
        .await
        .unwrap();
    let mut rows: Vec<Candle> = pager
        .rows_stream::<(String, CqlTimestamp, Option<CqlTimestamp>, Option<f64>, Option<i64>, Option<String>)>()
        .unwrap()
        .map_ok(|(s, ws, we, o, t, n)| (s, ws.0, we.map(|w| w.0), o, t, n))
        .try_collect()
        .await
        .unwrap();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    rows
}

#[tokio::test]
async fn the_table_schema_is_read_from_system_schema() {
    let (_session, keyspace) = candles_keyspace("it_describe").await;
    let (_dir, pipeline, errors) = plan(&[("sink.sql", sink_ddl(&keyspace))]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let candles = table(&pipeline, "candles");
    assert_eq!(candles.primary_key, ["symbol", "window_start"]);
    let ConnectorSpec::Cassandra(options) = &candles.connector else { panic!() };
    let described = options.columns.as_ref().expect("columns read");
    let kinds: BTreeMap<&str, (ColumnKind, &str)> = described
        .columns
        .iter()
        .map(|c| (c.name.as_str(), (c.kind, c.cql_type.as_str())))
        .collect();
    assert_eq!(kinds["symbol"], (ColumnKind::PartitionKey, "text"));
    assert_eq!(kinds["window_start"], (ColumnKind::Clustering, "timestamp"));
    assert_eq!(kinds["open"], (ColumnKind::Regular, "double"));
    assert_eq!(kinds["ticks"], (ColumnKind::Regular, "bigint"));
    assert_eq!(kinds.len(), 9);
    assert_eq!(candles.schema.fields().len(), 9);
}

#[tokio::test]
async fn check_refuses_a_missing_key_column_and_a_wrong_type_at_their_position() {
    let (_session, keyspace) = candles_keyspace("it_check").await;
    let missing_key = "INSERT INTO candles\nSELECT symbol, window_end, first_value(price ORDER BY ts) AS open\n\
        FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end;\n";
    let wrong_type = "\n\n  INSERT INTO candles\nSELECT symbol, window_start, 'x' || symbol AS open\n\
        FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end;\n";
    let unknown_column = "INSERT INTO candles SELECT symbol, window_start, count(*) AS volume\n\
        FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end;\n";
    let (dir, pipeline, errors) = plan(&[
        ("0_tables.sql", format!("{SOURCE}{}", sink_ddl(&keyspace))),
        ("1_missing_key.sql", missing_key.to_string()),
        ("2_wrong_type.sql", wrong_type.to_string()),
        ("3_unknown_column.sql", unknown_column.to_string()),
    ])
    .await;
    assert!(pipeline.queries.is_empty());
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let at = |file: &str, line: u32, column: u32| {
        format!("{}:{line}:{column}: ", file_in(dir.path(), file))
    };
    assert!(errors[0].starts_with(&at("1_missing_key.sql", 1, 1)), "{}", errors[0]);
    assert!(errors[0].contains("primary key column window_start"), "{}", errors[0]);
    assert!(errors[1].starts_with(&at("2_wrong_type.sql", 3, 3)), "{}", errors[1]);
    assert!(
        errors[1].contains("'open' is double in Cassandra, but the query gives Utf8"),
        "{}",
        errors[1]
    );
    assert!(errors[2].starts_with(&at("3_unknown_column.sql", 1, 1)), "{}", errors[2]);
    assert!(errors[2].contains("'volume' is not a column"), "{}", errors[2]);
}

fn candles_batch(rows: &[(&str, i64, f64, i64)]) -> RecordBatch {
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "symbol",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "window_start",
            datafusion::arrow::datatypes::DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Millisecond,
                None,
            ),
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "open",
            datafusion::arrow::datatypes::DataType::Float64,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "ticks",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn upserts_and_deletes_round_trip() {
    let (session, keyspace) = candles_keyspace("it_roundtrip").await;
    let (_dir, pipeline, errors) = plan(&[("sink.sql", sink_ddl(&keyspace))]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let candles = table(&pipeline, "candles");
    let ConnectorSpec::Cassandra(options) = &candles.connector else { panic!() };
    // The query writes a subset of the columns: window_end and note stay unset.
    let first = candles_batch(
        &(0..250)
            .map(|i| {
                (["AAPL", "MSFT", "BTC/USD"][i % 3], 60_000 * (i as i64 / 3), i as f64, i as i64)
            })
            .collect::<Vec<_>>(),
    );
    let mut sink = CassandraSink::new("candles", options, first.schema()).unwrap();
    sink.write(0, &first, ChangeKind::Upsert).await.unwrap();
    let mut expected: BTreeMap<(String, i64), (f64, i64)> = BTreeMap::new();
    for i in 0..250 {
        expected.insert(
            (["AAPL", "MSFT", "BTC/USD"][i % 3].to_string(), 60_000 * (i as i64 / 3)),
            (i as f64, i as i64),
        );
    }
    // Upsert: the same keys with new values, plus deletes of others.
    let update = candles_batch(&[("AAPL", 0, -1.0, 1000), ("MSFT", 60_000, -2.0, 2000)]);
    sink.write(1, &update, ChangeKind::Upsert).await.unwrap();
    let gone =
        candles_batch(&[("BTC/USD", 0, 0.0, 0), ("AAPL", 120_000, 0.0, 0), ("NOPE", 0, 0.0, 0)]);
    sink.write(1, &gone, ChangeKind::Delete).await.unwrap();
    sink.commit(1).await.unwrap();
    expected.insert(("AAPL".into(), 0), (-1.0, 1000));
    expected.insert(("MSFT".into(), 60_000), (-2.0, 2000));
    expected.remove(&("BTC/USD".into(), 0));
    expected.remove(&("AAPL".into(), 120_000));

    let rows = read_candles(&session, &keyspace).await;
    let expected: Vec<Candle> = expected
        .into_iter()
        .map(|((s, ws), (o, t))| (s, ws, None, Some(o), Some(t), None))
        .collect::<Vec<_>>();
    let mut expected = expected;
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(rows.len(), 248);
    assert_eq!(rows, expected);
}
