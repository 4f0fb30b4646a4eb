//! Delivery across crashes: the engine is killed with SIGKILL at random moments while it works
//! through its input, restarted from its checkpoints each time, and finally run to the end. The
//! rows it wrote, applied as upserts, equal the batch oracle: nothing lost, nothing counted twice.

use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::harness::*;
use crate::oracle::{CANDLES, SESSIONS, VWAP};

#[test]
fn killed_at_random_moments_and_restarted_the_engine_loses_nothing_and_counts_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let ticks = generate(42, 6, 3_000, 5);
    let parts = partition_by_symbol(&ticks, 3);
    write_partitions(&tmp.path().join("ticks"), &parts);
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    for entry in std::fs::read_dir(shipped_queries()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            std::fs::copy(&path, queries.join(path.file_name().unwrap())).unwrap();
        }
    }
    // Small micro-batches, so that a kill lands in the middle of the input.
    std::fs::write(queries.join("00_a_settings.sql"), "SET 'source.max-rows-per-batch' = '5';")
        .unwrap();
    let run = |once: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_engine"));
        command
            .args(["run", "--queries"])
            .arg(&queries)
            .arg("--state-dir")
            .arg(tmp.path().join("state"))
            .args(["--metrics-addr", "127.0.0.1:0", "--trigger-interval", "5ms"])
            .args(backtest_args(tmp.path()))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if once {
            command.arg("--once");
        }
        command
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..5 {
        let mut child = run(false).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..800)));
        child.kill().unwrap(); // SIGKILL: no chance to finish the micro-batch
        child.wait().unwrap();
    }
    let last = run(true)
        .arg("--log-format=json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        last.status.success(),
        "the final run failed: {}",
        String::from_utf8_lossy(&last.stderr)
    );
    // The final run resumed from checkpoints rather than starting over: it read less than all.
    let log = String::from_utf8_lossy(&last.stderr);
    let resumed: Vec<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "query stopped")
        .map(|l| l["fields"]["rows_in"].as_u64().unwrap())
        .collect();
    assert_eq!(resumed.len(), 3, "{log}");
    // (A query killed every time before its first checkpoint legitimately starts over.)
    assert!(
        resumed.iter().any(|&rows| rows < ticks.len() as u64),
        "every query started over: read {resumed:?} of {}",
        ticks.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = ticks_table(&parts);
    let key = ["symbol", "window_start"];
    for (sink, sql) in [("candles_1m", CANDLES), ("vwap_5m", VWAP), ("activity_sessions", SESSIONS)]
    {
        let actual = apply_changelog(read_changelog(&tmp.path().join("out").join(sink)), &key);
        let expected = runtime.block_on(oracle(sql, table.clone()));
        assert_tables_eq(&actual, &expected, &key, &format!("{sink} after 5 kills"));
    }
}

/// The same through the real servers: ticks in a Kafka topic, candles upserted into Cassandra,
/// the engine binary killed with SIGKILL five times and restarted from its checkpoints; the
/// table ends equal to the oracle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_kafka_and_cassandra_the_engine_loses_nothing_and_counts_nothing_twice() {
    use crate::end_to_end::{kafka_to_cassandra_candles, ticks as kafka_ticks};

    let (session, keyspace, sql, expected) = kafka_to_cassandra_candles("crash").await;
    let ticks = kafka_ticks();
    let tmp = tempfile::tempdir().unwrap();
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    // Small micro-batches, so that kills land in the middle of the topic.
    let settings = "SET 'source.max-rows-per-batch' = '100';\n";
    std::fs::write(queries.join("candles.sql"), format!("{settings}{sql}")).unwrap();
    let command = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_engine"));
        command
            .args(["--log-format", "json", "run", "--queries"])
            .arg(&queries)
            .arg("--state-dir")
            .arg(tmp.path().join("state"))
            .args(["--metrics-addr", "127.0.0.1:0", "--trigger-interval", "50ms"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let start = || command().spawn().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    // The first run is killed only once it has checkpointed (on a loaded machine a kill could
    // otherwise always land before the first checkpoint, and the check below that the last run
    // resumed would fail for no fault of the engine).
    let manifest = tmp.path().join("state/candles/manifest.json");
    for run in 0..5 {
        let mut child = start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while run == 0 && !manifest.exists() {
            assert!(tokio::time::Instant::now() < deadline, "no checkpoint within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2_000))).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let last = command().env("RUST_LOG", "info").stderr(Stdio::piped()).spawn().unwrap();
    // Let it start before checking: the earlier runs may already have written everything.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut got = vec![];
    while tokio::time::Instant::now() < deadline {
        got = crate::end_to_end::read_back(&session, &keyspace).await;
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        Command::new("kill").args(["-INT", &last.id().to_string()]).status().unwrap().success()
    );
    let output = last.wait_with_output().unwrap();
    assert_eq!(got.len(), expected.len(), "windows in Cassandra vs the oracle");
    assert_eq!(got, expected, "after 5 kills, Cassandra differs from the oracle");
    // The last run resumed from the checkpoints rather than reading the topic from the start.
    let log = String::from_utf8_lossy(&output.stderr);
    let rows_in: Vec<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "query stopped")
        .filter_map(|l| l["fields"]["rows_in"].as_u64())
        .collect();
    assert!(
        matches!(rows_in.as_slice(), [n] if *n < ticks.len() as u64),
        "read {rows_in:?} of {} (exit {:?}):\n{log}",
        ticks.len(),
        output.status
    );
}
