//! The shipped pipeline as deployed: ticks in a Kafka topic → `engine run --queries queries/`
//! (the binary, the files unchanged) → the shipped Cassandra tables. The rows equal the batch
//! oracle, and equal a backtest of the same files over a file copy of the topic
//! (`--replay`, `--sink-dir`): backtest equals live.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use datafusion::arrow::array::TimestampMillisecondArray;
use datafusion::arrow::util::display::array_value_to_string;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::value::{CqlValue, Row};
use serde_json::{Map, Value};

use crate::cli::{free_port, http_get, metric};
use crate::harness::*;
use crate::oracle::{CANDLES, SESSIONS, VWAP};
use crate::servers::{cql_session, create_topic, produce_all, shipped_env, shipped_schema, unique};

const KEY: &[&str] = &["symbol", "window_start"];

/// Every row of `keyspace.table`, as the filesystem sink would encode it.
pub async fn cassandra_rows(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> Vec<Map<String, Value>> {
    let pager = session.query_iter(format!("SELECT * FROM {keyspace}.{table}"), ()).await.unwrap();
    let names: Vec<String> = pager.column_specs().iter().map(|c| c.name().to_string()).collect();
    let rows: Vec<Row> = pager.rows_stream::<Row>().unwrap().try_collect().await.unwrap();
    rows.into_iter()
        .map(|row| {
            names
                .iter()
                .zip(row.columns)
                .map(|(name, value)| (name.clone(), json_of(value)))
                .collect()
        })
        .collect()
}

fn json_of(value: Option<CqlValue>) -> Value {
    match value {
        None => Value::Null,
        Some(CqlValue::Text(text)) => text.into(),
        Some(CqlValue::Double(x)) => x.into(),
        Some(CqlValue::BigInt(n)) => n.into(),
        Some(CqlValue::Timestamp(ts)) => {
            array_value_to_string(&TimestampMillisecondArray::from(vec![ts.0]), 0).unwrap().into()
        }
        Some(other) => panic!("unexpected CQL value {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_queries_from_kafka_to_cassandra_equal_the_oracle_and_their_backtest() {
    let ticks = generate(21, 8, 3_000, 5);
    let parts = partition_by_symbol(&ticks, 3);
    let topic = unique("it.shipped.ticks");
    create_topic(&topic, 3).await;
    let keyspace = shipped_schema("it_shipped").await;
    let messages: Vec<(i32, String, Vec<u8>, i64)> = parts
        .iter()
        .enumerate()
        .flat_map(|(p, part)| {
            part.iter().map(move |t| {
                (p as i32, t.symbol.clone(), t.json().into_bytes(), t.timestamp * 1000)
            })
        })
        .collect();
    produce_all(&topic, &messages).await;

    let tmp = tempfile::tempdir().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let live = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["run", "--queries"])
        .arg(shipped_queries())
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .args(["--metrics-addr", &metrics_addr, "--trigger-interval", "200ms"])
        .envs(shipped_env(&topic, &keyspace))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The backtest: the topic's copy, one file per partition, offsets as line numbers.
    write_partitions(&tmp.path().join("ticks"), &parts);
    let backtest = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["run", "--once", "--queries"])
        .arg(shipped_queries())
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(backtest_args(tmp.path()))
        .output()
        .unwrap();
    assert!(backtest.status.success(), "{}", String::from_utf8_lossy(&backtest.stderr));
    let table = ticks_table(&parts);
    let out = tmp.path().join("out");
    let mut expected = BTreeMap::new();
    for (sink, sql) in [("candles_1m", CANDLES), ("vwap_5m", VWAP), ("activity_sessions", SESSIONS)]
    {
        let oracle = oracle(sql, table.clone()).await;
        let changelog = read_changelog(&out.join(sink));
        let rows = if sink == "activity_sessions" {
            unique_rows(changelog, KEY)
        } else {
            apply_changelog(changelog, KEY)
        };
        assert_tables_eq(&rows, &oracle, KEY, &format!("backtest {sink}"));
        expected.insert(sink, oracle);
    }

    // Live: every upserted window reaches the oracle's values; sessions are written once each,
    // when they close, so the live table holds the closed ones.
    let session = cql_session().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tokio::time::Instant::now() < deadline {
        let candles = cassandra_rows(&session, &keyspace, "candles_1m").await;
        let vwap = cassandra_rows(&session, &keyspace, "vwap_5m").await;
        if candles.len() == expected["candles_1m"].len() && vwap.len() == expected["vwap_5m"].len()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Every window exists; let the last micro-batches' upserts land before comparing values.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let candles = cassandra_rows(&session, &keyspace, "candles_1m").await;
    let vwap = cassandra_rows(&session, &keyspace, "vwap_5m").await;
    let sessions = cassandra_rows(&session, &keyspace, "activity_sessions").await;
    // Everything was read (lag 0 on every partition), and the record-to-sink latency lies
    // between now minus the newest and now minus the oldest record timestamp (the ticks' own).
    let (_, body) = http_get(&metrics_addr, "/metrics").expect("/metrics answers");
    let lags: Vec<&str> = body.lines().filter(|l| l.starts_with("engine_consumer_lag{")).collect();
    assert_eq!(lags.len(), 9, "3 queries x 3 partitions:\n{body}");
    assert!(lags.iter().all(|l| l.ends_with(" 0")), "{lags:?}");
    let latency = metric(&body, "engine_record_to_sink_seconds_sum", "10_candles_1m")
        .zip(metric(&body, "engine_record_to_sink_seconds_count", "10_candles_1m"))
        .map(|(sum, count)| sum / count)
        .expect("record-to-sink latency exported");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let (oldest, newest) = (
        ticks.iter().map(|t| t.timestamp).min().unwrap(),
        ticks.iter().map(|t| t.timestamp).max().unwrap(),
    );
    let bounds =
        (now.as_secs() as i64 - newest - 300) as f64..=(now.as_secs() as i64 - oldest) as f64;
    assert!(bounds.contains(&latency), "mean latency {latency} outside {bounds:?}");
    assert!(
        Command::new("kill").args(["-INT", &live.id().to_string()]).status().unwrap().success()
    );
    let output = live.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "live run failed:\n{log}");
    for (sink, rows) in [("candles_1m", candles), ("vwap_5m", vwap)] {
        let rows = apply_changelog(rows, KEY);
        assert_tables_eq(&rows, &expected[sink], KEY, &format!("live {sink}"));
    }
    let closed = unique_rows(sessions, KEY);
    assert!(!closed.is_empty(), "no session closed in the live run");
    let oracle_sessions: Vec<_> = expected["activity_sessions"]
        .iter()
        .filter(|row| closed.contains_key(&key_of(row, KEY)))
        .cloned()
        .collect();
    assert_tables_eq(&closed, &oracle_sessions, KEY, "live activity_sessions");
}
