//! End to end: JSON ticks produced to the broker → the engine's candles query (in process) →
//! rows in the CQL server, compared with a DataFusion batch oracle over the same ticks.

use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::{JsonReadOptions, SessionContext};
use engine::runtime::QueryRunner;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use tokio_util::sync::CancellationToken;

use crate::servers::{
    brokers, cql, cql_hosts, cql_session, create_keyspace, create_topic, plan, produce_all, unique,
};

/// symbol, window_start (ms), window_end (ms), open, high, low, close, ticks.
pub type Candle = (String, i64, i64, f64, f64, f64, f64, i64);

const SYMBOLS: usize = 24;
const SECONDS: i64 = 420;
const START: i64 = 1_700_000_040; // a minute boundary, epoch seconds

/// Ticks in TwelveData's format: every symbol at most once a second, so open and close are
/// never ties; produced in time order, one partition per symbol group.
pub fn ticks() -> Vec<(i32, String, Vec<u8>, i64)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut prices = [100.0f64; SYMBOLS];
    let mut ticks = vec![];
    for second in 0..SECONDS {
        for (s, price) in prices.iter_mut().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(3) {
                continue;
            }
            *price = (*price * (1.0 + ((state >> 11) % 2001) as f64 / 1e5 - 0.01)).max(1.0);
            let price = (*price * 100.0).round() / 100.0;
            let symbol = format!("SYM{s:02}");
            let timestamp = START + second;
            let value = format!(
                r#"{{"event":"price","symbol":"{symbol}","currency":"USD","exchange":"NASDAQ","type":"Common Stock","timestamp":{timestamp},"price":{price},"day_volume":{}}}"#,
                1000 + second
            );
            ticks.push(((s % 3) as i32, symbol, value.into_bytes(), timestamp * 1000));
        }
    }
    ticks
}

/// The candles DataFusion computes in batch mode over the same ticks.
pub async fn oracle(ticks: &[(i32, String, Vec<u8>, i64)]) -> Vec<Candle> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticks.json");
    let mut lines = Vec::new();
    for (_, _, value, _) in ticks {
        lines.extend_from_slice(value);
        lines.push(b'\n');
    }
    std::fs::write(&path, lines).unwrap();
    let ctx = SessionContext::new();
    ctx.register_json("ticks", path.to_str().unwrap(), JsonReadOptions::default()).await.unwrap();
    let batches: Vec<RecordBatch> = ctx
        .sql(
            "SELECT symbol,
                    to_unixtime(date_bin(INTERVAL '1 minute', to_timestamp(\"timestamp\"))) * 1000 AS ws,
                    first_value(price ORDER BY \"timestamp\") AS open, max(price) AS high,
                    min(price) AS low, last_value(price ORDER BY \"timestamp\") AS close,
                    count(*) AS ticks
             FROM ticks GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut candles = vec![];
    for batch in &batches {
        let symbol = batch.column(0).as_string::<i32>();
        let ws = batch.column(1).as_primitive::<Int64Type>();
        let f = |i: usize| batch.column(i).as_primitive::<Float64Type>();
        let count = batch.column(6).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let start = ws.value(row);
            candles.push((
                symbol.value(row).to_string(),
                start,
                start + 60_000,
                f(2).value(row),
                f(3).value(row),
                f(4).value(row),
                f(5).value(row),
                count.value(row),
            ));
        }
    }
    candles
}

pub async fn read_back(session: &Session, keyspace: &str) -> Vec<Candle> {
    type Raw = (String, CqlTimestamp, CqlTimestamp, f64, f64, f64, f64, i64);
    let pager = session
        .query_iter(
            format!("SELECT symbol, window_start, window_end, open, high, low, close, ticks FROM {keyspace}.candles_1m"),
            (),
        )
        .await
        .unwrap();
    let mut rows: Vec<Candle> = pager
        .rows_stream::<Raw>()
        .unwrap()
        .map_ok(|(s, ws, we, o, h, l, c, t)| (s, ws.0, we.0, o, h, l, c, t))
        .try_collect()
        .await
        .unwrap();
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    rows
}

/// A new 3-partition topic, a new keyspace with a `candles_1m` table, and the candles query
/// from one to the other through the CQL server at `cql_at`.
pub struct CandlesSetup {
    pub session: Session,
    pub keyspace: String,
    pub topic: String,
    /// The query file's text.
    pub sql: String,
    /// The oracle's candles over [`ticks`].
    pub expected: Vec<Candle>,
}

/// Sets up [`CandlesSetup`] without producing anything.
pub async fn candles_setup(prefix: &str, cql_at: &str) -> CandlesSetup {
    let topic = unique(&format!("it.{prefix}.ticks"));
    create_topic(&topic, 3).await;
    let session = cql_session().await;
    let keyspace = create_keyspace(&session, &format!("it_{prefix}")).await;
    cql(
        &session,
        &format!(
            "CREATE TABLE {keyspace}.candles_1m (symbol text, window_start timestamp, window_end timestamp, \
             open double, high double, low double, close double, ticks bigint, vwap double, \
             PRIMARY KEY ((symbol), window_start)) WITH CLUSTERING ORDER BY (window_start DESC)"
        ),
    )
    .await;
    let expected = oracle(&ticks()).await;
    assert!(expected.len() >= SYMBOLS * 7, "the oracle has every window");
    let sql = format!(
        "CREATE TABLE ticks (
            symbol TEXT NOT NULL, price DOUBLE NOT NULL, day_volume BIGINT, \"timestamp\" BIGINT NOT NULL,
            ts AS to_timestamp(\"timestamp\"),
            WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
        ) WITH (connector = 'kafka', topic = '{topic}', 'bootstrap.servers' = '{}', format = 'json',
                'scan.startup.mode' = 'earliest-offset', 'properties.group.id' = '{topic}.engine');
        CREATE TABLE candles_1m WITH (connector = 'cassandra', hosts = '{cql_at}', keyspace = '{keyspace}', 'table' = 'candles_1m');
        INSERT INTO candles_1m
        SELECT symbol, window_start, window_end,
               first_value(price ORDER BY ts) AS open, max(price) AS high, min(price) AS low,
               last_value(price ORDER BY ts) AS close, count(*) AS ticks
        FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE)
        GROUP BY symbol, window_start, window_end;",
        brokers(),
    );
    CandlesSetup { session, keyspace, topic, sql, expected }
}

/// [`candles_setup`] on the CQL test server with every tick produced: (CQL session, keyspace,
/// query SQL, oracle candles).
pub async fn kafka_to_cassandra_candles(prefix: &str) -> (Session, String, String, Vec<Candle>) {
    let setup = candles_setup(prefix, &cql_hosts()).await;
    produce_all(&setup.topic, &ticks()).await;
    (setup.session, setup.keyspace, setup.sql, setup.expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_through_kafka_and_the_engine_give_the_oracles_candles_in_cassandra() {
    let (session, keyspace, sql, expected) = kafka_to_cassandra_candles("e2e").await;
    let (_dir, mut pipeline, errors) = plan(&[("candles.sql", sql)]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut query = pipeline.queries.remove(0);
    query.options.trigger_interval = Duration::from_millis(200);
    query.options.max_rows_per_batch = 500;
    let runner = QueryRunner::new(query, false).await.unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut got = vec![];
    while tokio::time::Instant::now() < deadline {
        got = read_back(&session, &keyspace).await;
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the query did not stop")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), expected.len(), "windows in Cassandra vs the oracle");
    assert_eq!(got, expected);
}
