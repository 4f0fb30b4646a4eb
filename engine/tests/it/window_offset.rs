//! Window offsets: `TUMBLE` and `HOP` with a positive or negative offset, streamed over random
//! micro-batch splits and partition counts in both emit modes, equal DataFusion batch SQL over
//! the whole input (`date_bin` with the origin moved by the offset; for `HOP`, each tick joined
//! to the windows that hold it).

use std::collections::HashMap;

use engine::planner::PipelineOptions;
use proptest::prelude::*;

use crate::golden::SOURCE;
use crate::harness::*;

const KEY: &[&str] = &["symbol", "window_start"];

const AGGREGATES: &str =
    "count(*) AS ticks, min(price) AS low, max(price) AS high, sum(day_volume) AS volume";

/// (streaming window call, the oracle's window start expression per tick, window length).
const CASES: &[(&str, &str, &str)] = &[
    (
        "TUMBLE(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '15' SECOND)",
        "date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:15')",
        "INTERVAL '1 minute'",
    ),
    (
        "TUMBLE(ticks, ts, INTERVAL '5' MINUTE, INTERVAL '-2' MINUTE)",
        "date_bin(INTERVAL '5 minutes', ts, TIMESTAMP '1969-12-31T23:58:00')",
        "INTERVAL '5 minutes'",
    ),
    (
        "HOP(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '3' MINUTE, INTERVAL '-10' SECOND)",
        "date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1969-12-31T23:59:50') - k.back",
        "INTERVAL '3 minutes'",
    ),
];

fn oracle_sql(start: &str, length: &str) -> String {
    format!(
        "SELECT symbol, ws AS window_start, ws + {length} AS window_end, {AGGREGATES}
         FROM (SELECT t.*, {start} AS ws FROM ticks t
               CROSS JOIN (VALUES (INTERVAL '0 minutes'), (INTERVAL '1 minute'), (INTERVAL '2 minutes')) AS k(back)
               WHERE k.back = INTERVAL '0 minutes' OR {hop})
         GROUP BY symbol, ws",
        hop = start.contains("k.back"),
    )
}

fn check_case(seed: u64, count: usize, partitions: usize, max_rows: usize, on_close: bool) {
    let ticks = generate(seed, 3, count, 5);
    let parts = partition_by_symbol(&ticks, partitions);
    let table = ticks_table(&parts);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (call, start, length) in CASES {
        let tmp = tempfile::tempdir().unwrap();
        write_partitions(&tmp.path().join("ticks"), &parts);
        let emit = if on_close { "EMIT ON WINDOW CLOSE" } else { "" };
        let query = format!(
            "{SOURCE}\nINSERT INTO out SELECT symbol, window_start, window_end, {AGGREGATES}
             FROM {call} GROUP BY symbol, window_start, window_end {emit};\n"
        );
        std::fs::create_dir_all(tmp.path().join("q")).unwrap();
        std::fs::write(tmp.path().join("q/query.sql"), query).unwrap();
        let vars = HashMap::from([
            ("TICKS".to_string(), tmp.path().join("ticks").display().to_string()),
            ("OUT".to_string(), tmp.path().join("out").display().to_string()),
        ]);
        let options = PipelineOptions {
            max_rows_per_batch: max_rows,
            idle_timeout: None,
            ..PipelineOptions::default()
        };
        runtime.block_on(run_once(&tmp.path().join("q"), &vars, &options));
        let changelog = read_changelog(&tmp.path().join("out"));
        let actual =
            if on_close { unique_rows(changelog, KEY) } else { apply_changelog(changelog, KEY) };
        let expected = runtime.block_on(oracle(&oracle_sql(start, length), table.clone()));
        let context = format!(
            "{call} (on_close={on_close}, seed={seed}, ticks={count}, partitions={partitions}, max_rows={max_rows})"
        );
        assert_tables_eq(&actual, &expected, KEY, &context);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn offset_windows_equal_batch_oracle(
        seed in any::<u64>(),
        count in 1usize..250,
        partitions in 1usize..4,
        max_rows_exp in 0u32..9,
        on_close in any::<bool>(),
    ) {
        check_case(seed, count, partitions, 1 << max_rows_exp, on_close);
    }
}

#[test]
fn one_row_micro_batches_match_the_oracle() {
    check_case(3, 200, 2, 1, false);
    check_case(3, 200, 2, 1, true);
}

/// State keyed by slice start must not be restored into a query whose windows start elsewhere:
/// the offset is part of the checkpoint fingerprint (the logical plan only scans the windowed
/// relation, so it would not show there).
#[tokio::test]
async fn the_offset_is_part_of_the_query_fingerprint() {
    let mut fingerprints = vec![];
    for call in [
        "TUMBLE(ticks, ts, INTERVAL '1' MINUTE)",
        "TUMBLE(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '15' SECOND)",
        "TUMBLE(ticks, ts, INTERVAL '1' MINUTE, INTERVAL '-15' SECOND)",
        "TUMBLE(ticks, ts, INTERVAL '2' MINUTE)",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let query = format!(
            "{SOURCE}\nINSERT INTO out SELECT symbol, window_start, window_end, count(*) AS n
             FROM {call} GROUP BY symbol, window_start, window_end;\n"
        );
        std::fs::write(dir.path().join("query.sql"), query).unwrap();
        let vars = |_: &str| Some("unused".to_string());
        let (pipeline, errors) = engine::runtime::load::load_and_plan(
            &dir.path().join("query.sql"),
            &vars,
            &PipelineOptions::default(),
            &Default::default(),
        )
        .await;
        assert!(errors.is_empty(), "{errors:?}");
        fingerprints.push(pipeline.queries[0].fingerprint());
    }
    let distinct: std::collections::HashSet<_> = fingerprints.iter().collect();
    assert_eq!(distinct.len(), fingerprints.len(), "{fingerprints:?}");
}
