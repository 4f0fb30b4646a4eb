//! Scale-out: replicas of `engine run` in one consumer group split a topic's partitions
//! (`TICKS_PARTITION_ASSIGNMENT=group` in the shipped source), and a partition's window state
//! moves with it: handed over when a second replica joins, and taken over from the shared
//! checkpoint directory when a replica is killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cli::{free_port, http_get, metric};
use crate::harness::*;
use crate::oracle::CANDLES;
use crate::servers::{cql_session, create_topic, produce_all, shipped_env, shipped_schema, unique};
use crate::shipped::cassandra_rows;

const KEY: &[&str] = &["symbol", "window_start"];
const QUERY: &str = "10_candles_1m";

/// A replica of the engine running the shipped candles query, checkpointing into `state`.
struct Replica {
    child: Option<Child>,
    metrics: String,
    /// Where its log goes.
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Killed (the test's SIGKILL) or still running after a failure: reap it either way.
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Replica {
    fn start(queries: &Path, state: &Path, topic: &str, keyspace: &str, name: &str) -> Self {
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = state.with_file_name(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_engine"))
            .args(["run", "--queries"])
            .arg(queries)
            .arg("--state-dir")
            .arg(state)
            .args(["--metrics-addr", &metrics, "--trigger-interval", "200ms"])
            .envs(shipped_env(topic, keyspace))
            .env("TICKS_PARTITION_ASSIGNMENT", "group")
            .env("KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child: Some(child), metrics, log }
    }

    fn metrics(&self) -> String {
        http_get(&self.metrics, "/metrics").map(|(_, body)| body).unwrap_or_default()
    }

    /// Rows the replica read so far (all its partition tasks).
    fn rows_in(&self) -> f64 {
        metric(&self.metrics(), "engine_rows_in_total", QUERY).unwrap_or(0.0)
    }

    /// The partitions the replica reports a lag for: those it read since it started.
    fn partitions(&self) -> Vec<String> {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with("engine_consumer_lag{"))
            .filter_map(|l| l.split("partition=\"").nth(1)?.split('"').next().map(str::to_string))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the replica with SIGTERM; it must exit cleanly.
    fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = child.wait().unwrap();
        assert!(status.success(), "replica failed:\n{}", self.log());
    }
}

async fn wait_for(what: &str, replicas: &[&Replica], mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            let logs: Vec<String> = replicas.iter().map(|r| r.log()).collect();
            panic!("timed out waiting for {what}; logs:\n{}", logs.join("\n---\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The next offset of every partition as checkpointed under `state`.
fn checkpointed(state: &Path) -> BTreeMap<i32, i64> {
    let mut offsets = BTreeMap::new();
    for entry in std::fs::read_dir(state.join(QUERY)).into_iter().flatten() {
        let manifest = entry.unwrap().path().join("manifest.json");
        let Ok(text) = std::fs::read_to_string(manifest) else { continue };
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (partition, next) in manifest["source"]["offsets"].as_object().unwrap() {
            offsets.insert(partition.parse().unwrap(), next.as_i64().unwrap());
        }
    }
    offsets
}

/// The next offset of every partition after `messages` were produced at `offsets`.
fn ends(messages: &[(i32, String, Vec<u8>, i64)], offsets: &[i64]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for ((partition, ..), &offset) in messages.iter().zip(offsets) {
        let end = ends.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    ends
}

/// The messages of `parts` whose tick falls in `phase` (0, 1, 2) of each partition's thirds.
fn phase(parts: &[Vec<Tick>], phase: usize) -> Vec<(i32, String, Vec<u8>, i64)> {
    parts
        .iter()
        .enumerate()
        .flat_map(|(p, part)| {
            let third = part.len().div_ceil(3);
            part.iter().skip(phase * third).take(third).map(move |t| {
                (p as i32, t.symbol.clone(), t.json().into_bytes(), t.timestamp * 1000)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_the_partitions_and_hand_window_state_over() {
    let ticks = generate(33, 12, 3_000, 4);
    let parts = partition_by_symbol(&ticks, 4);
    assert!(parts.iter().all(|p| !p.is_empty()), "every partition gets ticks");
    let topic = unique("it.scale.ticks");
    create_topic(&topic, 4).await;
    let keyspace = shipped_schema("it_scale").await;
    let tmp = tempfile::tempdir().unwrap();
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    // The shipped files, in a consumer group of this run's own: the default group is named
    // after the query, and members of earlier runs may linger in it.
    let sources = std::fs::read_to_string(shipped_queries().join("00_sources.sql")).unwrap();
    let group = format!("'properties.group.id' = '{}',\n    format =", unique("it.scale"));
    std::fs::write(queries.join("00_sources.sql"), sources.replacen("format =", &group, 1))
        .unwrap();
    std::fs::copy(
        shipped_queries().join(QUERY).with_extension("sql"),
        queries.join("10_candles_1m.sql"),
    )
    .unwrap();
    let state = tmp.path().join("state");
    let [first, second, third] = [0, 1, 2].map(|p| phase(&parts, p));

    // One replica reads the first third of every partition.
    produce_all(&topic, &first).await;
    let a = Replica::start(&queries, &state, &topic, &keyspace, "a");
    let produced = first.len() as f64;
    wait_for("replica A to read the first third", &[&a], || a.rows_in() >= produced).await;

    // A second replica joins: the group splits the partitions, and the two partitions that move
    // continue from the checkpoints A saved when they were revoked.
    let b = Replica::start(&queries, &state, &topic, &keyspace, "b");
    wait_for("replica B to be given partitions", &[&a, &b], || b.partitions().len() == 2).await;
    let second_ends = ends(&second, &produce_all(&topic, &second).await);
    let moved: Vec<usize> = b.partitions().iter().map(|p| p.parse().unwrap()).collect();
    let moved_second =
        second.iter().filter(|(p, ..)| moved.contains(&(*p as usize))).count() as f64;
    let produced = (first.len() + second.len()) as f64;
    wait_for("both replicas to read the second third", &[&a, &b], || {
        a.rows_in() + b.rows_in() >= produced
    })
    .await;
    assert!(b.rows_in() > 0.0, "replica B read nothing");
    // Rows are counted when read: wait for the checkpoints, so A dies with nothing to replay.
    wait_for("the second third to be checkpointed", &[&a, &b], || {
        checkpointed(&state) == second_ends
    })
    .await;
    assert!(
        b.rows_in() <= moved_second,
        "replica B re-read what A had checkpointed: {} rows for partitions {moved:?}, {moved_second} new",
        b.rows_in()
    );

    // A dies without warning (SIGKILL); once the group notices, B takes its partitions over from their
    // last checkpoints and reads the rest.
    drop(a);
    produce_all(&topic, &third).await;
    wait_for("replica B to take every partition over", &[&b], || b.partitions().len() == 4).await;

    let expected = oracle(CANDLES, ticks_table(&parts)).await;
    let session = cql_session().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut rows = BTreeMap::new();
    while tokio::time::Instant::now() < deadline {
        rows = apply_changelog(cassandra_rows(&session, &keyspace, "candles_1m").await, KEY);
        if tables_diff(&rows, &expected, KEY).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let read_by_b = moved_second + third.len() as f64;
    assert!(
        b.rows_in() <= read_by_b,
        "replica B read {} rows, more than the {read_by_b} it had not seen checkpointed: the taken-over partitions were read again",
        b.rows_in()
    );
    b.stop();
    assert_tables_eq(&rows, &expected, KEY, "candles after hand-over and take-over");
    let claimed = std::fs::read_dir(state.join(QUERY)).unwrap().count();
    assert_eq!(claimed, 4, "one checkpoint directory per partition");
}
