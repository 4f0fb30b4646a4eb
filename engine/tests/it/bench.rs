//! Benchmarks (not run by default): broker → engine throughput of the 1-minute candles query over
//! 1,000 symbols into a `blackhole` sink, which isolates the Kafka source, decoding and the
//! aggregate; and `engine repl` over a topic of a million messages.
//!
//! ```bash
//! eval "$(scripts/test-env.sh env)"
//! MDSP_BENCH_EVENTS=1000000 cargo test --release -p engine --test it bench -- --ignored --nocapture
//! ```
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use engine::runtime::QueryRunner;

use crate::harness::generate;
use crate::repl::{mock_topic, queries_dir, repl, ticks_ddl};
use crate::servers::{brokers, create_topic, plan, produce_all, unique};

fn events() -> usize {
    std::env::var("MDSP_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture, preferably --release"]
async fn bench_kafka_to_blackhole_candles_over_1000_symbols() {
    let events = events();
    let topic = unique("bench.ticks");
    create_topic(&topic, 3).await;
    let produced = Instant::now();
    let start = 1_700_000_040i64;
    for chunk in (0..events).collect::<Vec<_>>().chunks(100_000) {
        let messages: Vec<(i32, String, Vec<u8>, i64)> = chunk
            .iter()
            .map(|&i| {
                let symbol = format!("SYM{:04}", i % 1000);
                let ts = start + (i / 1000) as i64 / 10;
                let value = format!(
                    r#"{{"event":"price","symbol":"{symbol}","currency":"USD","exchange":"NASDAQ","timestamp":{ts},"price":{},"day_volume":{i}}}"#,
                    100.0 + (i % 977) as f64 / 100.0
                );
                (((i % 1000) % 3) as i32, symbol, value.into_bytes(), ts * 1000)
            })
            .collect();
        produce_all(&topic, &messages).await;
    }
    println!("produced {events} events in {:.1?}", produced.elapsed());

    let sql = format!(
        "CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL, day_volume BIGINT, \"timestamp\" BIGINT NOT NULL,
            ts AS to_timestamp(\"timestamp\"), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH (connector = 'kafka', topic = '{topic}', 'bootstrap.servers' = '{}', format = 'json');
         CREATE TABLE out WITH (connector = 'blackhole');
         INSERT INTO out SELECT symbol, window_start, window_end, first_value(price ORDER BY ts) AS open,
            max(price) AS high, min(price) AS low, last_value(price ORDER BY ts) AS close, count(*) AS ticks
         FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end;",
        brokers()
    );
    let (_dir, mut pipeline, errors) = plan(&[("bench.sql", sql)]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut runner = QueryRunner::new(pipeline.queries.remove(0), false).await.unwrap();
    let mut consumed = 0;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while consumed < events {
        assert!(Instant::now() < deadline, "only {consumed} of {events} events consumed");
        let started = Instant::now();
        let outcome = runner.step().await.unwrap();
        if outcome.rows_in > 0 {
            first.get_or_insert(started);
        }
        consumed += outcome.rows_in;
    }
    let elapsed = first.map(|f| f.elapsed()).unwrap_or_default();
    println!(
        "consumed and aggregated {consumed} events in {elapsed:.2?}: {:.0} events/s",
        consumed as f64 / elapsed.as_secs_f64()
    );
}

/// `engine repl -e` over a topic of `MDSP_BENCH_EVENTS` (default 1,000,000) messages on
/// librdkafka's mock cluster (exact high watermarks): `SELECT count(*)` reads and decodes the
/// whole snapshot; `LIMIT 5` must not. Each figure is a whole process run; `SELECT 1` gives the
/// cost of starting and loading the query files. The mock cluster keeps at most 5 MiB (and
/// 100,000 messages) per partition, so the messages are spread over 40 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture, preferably --release"]
async fn bench_repl_snapshot_of_a_million_message_topic() {
    let events = events();
    let mut parts = vec![vec![]; 40];
    for (i, tick) in generate(1, 1000, events, 5).into_iter().enumerate() {
        parts[i % 40].push(tick);
    }
    let produced = Instant::now();
    let mock = mock_topic("bench.repl", &parts).await;
    println!("produced {events} messages to the mock cluster in {:.1?}", produced.elapsed());
    let dir = queries_dir(&ticks_ddl("ticks", "bench.repl", &mock.bootstrap_servers(), ""));
    let timed = |sql: &str| {
        let started = Instant::now();
        let output = repl(dir.path(), &["--format", "csv", "-e", sql], &[]);
        let elapsed = started.elapsed();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        (String::from_utf8(output.stdout).unwrap(), elapsed)
    };
    let (_, baseline) = timed("SELECT 1");
    let (count, counted) = timed("SELECT count(*) AS n FROM ticks");
    assert_eq!(count, format!("n\n{events}\n"), "every message counted once");
    let (limited, first) = timed("SELECT * FROM ticks LIMIT 5");
    assert_eq!(limited.lines().count(), 6, "a header and 5 rows");
    println!(
        "engine repl -e: SELECT 1 {baseline:.2?}; SELECT count(*) over {events} messages {counted:.2?} \
         ({:.0} messages/s); LIMIT 5 {first:.2?}",
        events as f64 / counted.as_secs_f64()
    );
}
