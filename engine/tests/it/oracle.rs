//! The shipped window queries, streamed over generated ticks, equal the same aggregation run
//! by DataFusion in batch mode over the whole input: for any micro-batch size, any number of
//! partitions, and both emit modes.

use std::collections::HashMap;
use std::path::Path;

use engine::planner::PipelineOptions;
use proptest::prelude::*;

use crate::harness::*;

const KEY: &[&str] = &["symbol", "window_start"];

pub const CANDLES: &str = "
    SELECT symbol, ws AS window_start, ws + INTERVAL '1 minute' AS window_end,
           first_value(price ORDER BY ts, off) AS open, max(price) AS high, min(price) AS low,
           last_value(price ORDER BY ts, off) AS close, count(*) AS ticks
    FROM (SELECT *, date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws FROM ticks)
    GROUP BY symbol, ws";

pub const VWAP: &str = "
    SELECT symbol, ws AS window_start, ws + INTERVAL '5 minutes' AS window_end,
           avg(price) AS avg_price, sum(price * day_volume) / sum(day_volume) AS vwap,
           min(price) AS low, max(price) AS high, count(*) AS ticks
    FROM (SELECT t.*, date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00') - k.back AS ws
          FROM ticks t CROSS JOIN (VALUES (INTERVAL '0 minutes'), (INTERVAL '1 minute'),
               (INTERVAL '2 minutes'), (INTERVAL '3 minutes'), (INTERVAL '4 minutes')) AS k(back))
    GROUP BY symbol, ws";

pub const SESSIONS: &str = "
    WITH flagged AS (
        SELECT *, CASE WHEN \"timestamp\" - lag(\"timestamp\") OVER (PARTITION BY symbol ORDER BY ts, off) < 120
                  THEN 0 ELSE 1 END AS starts_session
        FROM ticks),
    numbered AS (
        SELECT *, sum(starts_session) OVER (PARTITION BY symbol ORDER BY ts, off ROWS UNBOUNDED PRECEDING) AS session
        FROM flagged)
    SELECT symbol, min(ts) AS window_start, max(ts) + INTERVAL '2 minutes' AS window_end, count(*) AS ticks,
           first_value(price ORDER BY ts, off) AS open, last_value(price ORDER BY ts, off) AS close,
           stddev(price) AS price_stddev
    FROM numbered GROUP BY symbol, session";

/// The shipped queries, or each with its emit mode flipped (`EMIT ON WINDOW CLOSE` added where
/// absent and removed where present).
fn write_queries(dir: &Path, flip_emit: bool) -> Vec<(String, bool)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut outputs = vec![];
    for entry in std::fs::read_dir(shipped_queries()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        if text.contains("INSERT INTO") {
            let on_close = text.contains("EMIT ON WINDOW CLOSE");
            if flip_emit {
                text = if on_close {
                    text.replace("EMIT ON WINDOW CLOSE", "")
                } else {
                    let end = text.rfind(';').unwrap();
                    format!("{} EMIT ON WINDOW CLOSE;\n", &text[..end])
                };
            }
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            outputs.push((stem, on_close != flip_emit));
        }
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    outputs
}

fn check_case(
    seed: u64,
    symbols: usize,
    count: usize,
    partitions: usize,
    max_rows: usize,
    flip_emit: bool,
) {
    let tmp = tempfile::tempdir().unwrap();
    let ticks = generate(seed, symbols, count, 5);
    let parts = partition_by_symbol(&ticks, partitions);
    write_partitions(&tmp.path().join("ticks"), &parts);
    let queries = tmp.path().join("queries");
    let outputs = write_queries(&queries, flip_emit);
    // A backtest: the shipped files, with the Kafka source read from the partition files and
    // the Cassandra sinks written as JSON lines.
    let options = PipelineOptions {
        max_rows_per_batch: max_rows,
        idle_timeout: None,
        redirect: backtest(tmp.path()),
        ..PipelineOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(run_once(&queries, &HashMap::new(), &options));
    let table = ticks_table(&parts);
    for (stem, on_close) in outputs {
        let (sink, sql) = match stem.as_str() {
            "10_candles_1m" => ("candles_1m", CANDLES),
            "20_vwap_5m" => ("vwap_5m", VWAP),
            "30_activity_sessions" => ("activity_sessions", SESSIONS),
            other => panic!("no oracle for shipped query {other}: add one to this test"),
        };
        let changelog = read_changelog(&tmp.path().join("out").join(sink));
        let actual =
            if on_close { unique_rows(changelog, KEY) } else { apply_changelog(changelog, KEY) };
        let expected = runtime.block_on(oracle(sql, table.clone()));
        let context = format!(
            "{sink} (on_close={on_close}, seed={seed}, symbols={symbols}, ticks={count}, partitions={partitions}, max_rows={max_rows})"
        );
        assert_tables_eq(&actual, &expected, KEY, &context);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn shipped_queries_equal_batch_oracle(
        seed in any::<u64>(),
        symbols in 1usize..6,
        count in 1usize..250,
        partitions in 1usize..4,
        max_rows_exp in 0u32..9,
        flip_emit in any::<bool>(),
    ) {
        check_case(seed, symbols, count, partitions, 1 << max_rows_exp, flip_emit);
    }
}

#[test]
fn one_row_micro_batches_match_the_oracle() {
    check_case(7, 3, 200, 2, 1, false);
    check_case(7, 3, 200, 2, 1, true);
}

#[test]
fn whole_input_in_one_micro_batch_matches_the_oracle() {
    check_case(11, 5, 400, 3, 100_000, false);
    check_case(11, 5, 400, 3, 100_000, true);
}
