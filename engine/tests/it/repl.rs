//! `engine repl` as users run it. Non-interactively (`-e`, piped statements): Kafka topics read
//! as bounded snapshots (librdkafka's mock cluster, whose high watermarks are exact, and tansu),
//! Cassandra tables with the partition key pushed down (kassandra), files, views, windowed
//! queries run to the end of their input against the batch oracle, errors with positions and
//! the exact CSV and JSON shapes. Interactively, through a pseudo-terminal: completion,
//! multi-line input, `\timing`, history, and Ctrl-C stopping a live query.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Map, Value};

use crate::harness::*;
use crate::servers::{cql, cql_hosts, cql_session, create_keyspace, produce, producer, unique};

fn engine() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_engine"));
    command.env("RUST_LOG", "warn");
    command
}

/// `engine repl --queries DIR ARGS...` with `env`, run to its end.
pub fn repl(queries: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = engine();
    command.arg("repl").arg("--queries").arg(queries).args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdin(Stdio::null()).output().unwrap()
}

/// Like [`repl`], and the run must succeed; returns standard output.
fn repl_ok(queries: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = repl(queries, args, env);
    assert!(
        output.status.success(),
        "engine repl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The objects of JSON-lines output.
pub fn json_rows(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(row)) => row,
            _ => panic!("not a JSON object: {l}"),
        })
        .collect()
}

/// A directory holding one query file with `sql`.
pub fn queries_dir(sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tables.sql"), sql).unwrap();
    dir
}

pub fn ticks_ddl(name: &str, topic: &str, brokers: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE {name} (
            symbol TEXT NOT NULL,
            price DOUBLE NOT NULL,
            day_volume BIGINT,
            \"timestamp\" BIGINT NOT NULL,
            part BIGINT METADATA FROM 'partition',
            off BIGINT METADATA FROM 'offset',
            ts AS to_timestamp(\"timestamp\"),
            WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
        ) WITH (connector = 'kafka', topic = '{topic}', 'bootstrap.servers' = '{brokers}', format = 'json'{extra});\n"
    )
}

/// Produces ticks to the mock cluster, each partition's in order.
async fn produce_to(brokers: &str, topic: &str, parts: &[Vec<Tick>]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for (partition, ticks) in parts.iter().enumerate() {
        for chunk in ticks.chunks(50_000) {
            let sends = chunk.iter().map(|tick| {
                let value = tick.json();
                let producer = &producer;
                async move {
                    let record = FutureRecord::to(topic)
                        .partition(partition as i32)
                        .key(tick.symbol.as_str())
                        .payload(&value);
                    producer.send(record, Duration::from_secs(30)).await.unwrap().offset
                }
            });
            futures::future::join_all(sends).await;
        }
    }
}

/// A mock cluster with `topic` holding `parts` (one Kafka partition each).
pub async fn mock_topic(
    topic: &str,
    parts: &[Vec<Tick>],
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(topic, parts.len() as i32, 1).unwrap();
    produce_to(&mock.bootstrap_servers(), topic, parts).await;
    mock
}

/// (partition, offset) → (symbol, price, timestamp) of what was produced.
fn produced(parts: &[Vec<Tick>]) -> BTreeMap<(i64, i64), (String, f64, i64)> {
    let mut rows = BTreeMap::new();
    for (p, ticks) in parts.iter().enumerate() {
        for (offset, t) in ticks.iter().enumerate() {
            rows.insert((p as i64, offset as i64), (t.symbol.clone(), t.price, t.timestamp));
        }
    }
    rows
}

fn read_back(rows: &[Map<String, Value>]) -> BTreeMap<(i64, i64), (String, f64, i64)> {
    rows.iter()
        .map(|r| {
            (
                (r["part"].as_i64().unwrap(), r["off"].as_i64().unwrap()),
                (
                    r["symbol"].as_str().unwrap().to_string(),
                    r["price"].as_f64().unwrap(),
                    r["timestamp"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_table_reads_as_a_snapshot_of_its_topic_on_the_mock_cluster() {
    let parts = partition_by_symbol(&generate(21, 5, 2_000, 5), 3);
    let mock = mock_topic("repl.snapshot", &parts).await;
    let brokers = mock.bootstrap_servers();
    let dir = queries_dir(&format!(
        "{}{}",
        ticks_ddl("ticks", "repl.snapshot", &brokers, ""),
        ticks_ddl("later", "repl.snapshot", &brokers, ", 'scan.startup.mode' = 'latest-offset'"),
    ));
    let out = repl_ok(
        dir.path(),
        &[
            "--format",
            "json",
            "-e",
            "SELECT count(*) AS n FROM ticks; SELECT count(*) AS n FROM later",
            "-e",
            "SELECT part, off, symbol, price, \"timestamp\", ts FROM ticks",
        ],
        &[],
    );
    let rows = json_rows(&out);
    assert_eq!(rows[0]["n"], 2_000, "every message, once");
    assert_eq!(rows[1]["n"], 0, "a latest-offset table starts at the end");
    let snapshot = &rows[2..];
    assert_eq!(read_back(snapshot), produced(&parts), "contents equal what was produced");
    assert_eq!(snapshot.len(), 2_000);
    for p in 0..3 {
        let offsets: Vec<i64> = snapshot
            .iter()
            .filter(|r| r["part"] == p)
            .map(|r| r["off"].as_i64().unwrap())
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "partition {p} in offset order");
    }
    // The computed column: epoch seconds as a timestamp.
    let first = &snapshot[0];
    let ts = datafusion::arrow::temporal_conversions::timestamp_s_to_datetime(
        first["timestamp"].as_i64().unwrap(),
    )
    .unwrap();
    assert_eq!(first["ts"], ts.format("%Y-%m-%dT%H:%M:%S").to_string());

    let limited =
        repl_ok(dir.path(), &["--format", "json", "-e", "SELECT * FROM ticks LIMIT 5"], &[]);
    assert_eq!(json_rows(&limited).len(), 5);
}

/// tansu's high watermark is the start of the partition's last batch plus one: right when every
/// batch holds one message, which producing one message at a time (waiting for each) gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_table_reads_what_was_produced_to_tansu() {
    let topic = unique("repl.tansu");
    crate::servers::create_topic(&topic, 2).await;
    let producer = producer();
    let mut expected = BTreeMap::new();
    for seq in 0..40i64 {
        let partition = (seq % 2) as i32;
        let value = format!(
            r#"{{"symbol":"S{}","price":{}.5,"timestamp":{}}}"#,
            seq % 3,
            seq,
            1_714_570_200 + seq
        );
        let offset = produce(&producer, &topic, partition, "k", value.as_bytes(), 0).await;
        expected.insert(
            (i64::from(partition), offset),
            (format!("S{}", seq % 3), seq as f64 + 0.5, 1_714_570_200 + seq),
        );
    }
    let dir = queries_dir(&ticks_ddl("ticks", &topic, &crate::servers::brokers(), ""));
    let out = repl_ok(
        dir.path(),
        &["--format", "json", "-e", "SELECT part, off, symbol, price, \"timestamp\" FROM ticks"],
        &[],
    );
    assert_eq!(read_back(&json_rows(&out)), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassandra_table_reads_its_rows_with_the_partition_key_pushed_down() {
    let session = cql_session().await;
    let keyspace = create_keyspace(&session, "repl").await;
    cql(
        &session,
        &format!(
            "CREATE TABLE {keyspace}.candles (symbol text, window_start timestamp, close double, ticks bigint, \
             PRIMARY KEY ((symbol), window_start)) WITH CLUSTERING ORDER BY (window_start DESC)"
        ),
    )
    .await;
    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.candles (symbol, window_start, close, ticks) VALUES (?, ?, ?, ?)"
        ))
        .await
        .unwrap();
    let mut written = vec![];
    for symbol in ["AAA", "BBB", "CCC"] {
        for minute in 0..120i64 {
            let start = 1_714_570_200_000 + minute * 60_000;
            let close = minute as f64 / 4.0;
            let ticks = minute % 7;
            session
                .execute_unpaged(
                    &insert,
                    (symbol, scylla::value::CqlTimestamp(start), close, ticks),
                )
                .await
                .unwrap();
            written.push((symbol.to_string(), start, close, ticks));
        }
    }
    let dir = queries_dir(&format!(
        "CREATE TABLE candles WITH (connector = 'cassandra', hosts = '{}', keyspace = '{keyspace}', 'table' = 'candles');",
        cql_hosts()
    ));
    let query = |sql: &str| {
        let out = repl_ok(dir.path(), &["--format", "json", "-e", sql], &[]);
        json_rows(&out)
            .iter()
            .map(|r| {
                let start = chrono_millis(r["window_start"].as_str().unwrap());
                (
                    r["symbol"].as_str().unwrap().to_string(),
                    start,
                    r["close"].as_f64().unwrap(),
                    r["ticks"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let all = query("SELECT * FROM candles ORDER BY symbol, window_start");
    assert_eq!(all, written, "a whole-table read returns every row");
    let one = query("SELECT * FROM candles WHERE symbol = 'BBB' ORDER BY window_start");
    let want: Vec<_> = written.iter().filter(|r| r.0 == "BBB").cloned().collect();
    assert_eq!(one, want);
    let some = query(
        "SELECT * FROM candles WHERE symbol IN ('AAA', 'CCC') AND close >= 20 ORDER BY symbol, window_start",
    );
    let want: Vec<_> = written.iter().filter(|r| r.0 != "BBB" && r.2 >= 20.0).cloned().collect();
    assert_eq!(some, want, "the partition key pushed down, the rest filtered by DataFusion");
    let explained =
        repl_ok(dir.path(), &["-e", "EXPLAIN SELECT close FROM candles WHERE symbol = 'BBB'"], &[]);
    assert!(explained.contains(r#"partial_filters=[candles.symbol = Utf8("BBB")]"#), "{explained}");
}

/// Milliseconds since the epoch of an Arrow JSON timestamp (`2024-05-01T13:30:00`).
fn chrono_millis(text: &str) -> i64 {
    let parsed = datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    parsed / 1_000_000
}

#[test]
fn file_tables_views_and_file_sinks_read_fully() {
    let tmp = tempfile::tempdir().unwrap();
    let parts = partition_by_symbol(&generate(5, 3, 300, 5), 2);
    write_partitions(&tmp.path().join("ticks"), &parts);
    let sink = tmp.path().join("out/candles");
    std::fs::create_dir_all(&sink).unwrap();
    std::fs::write(
        sink.join("part-000000.jsonl"),
        "{\"symbol\":\"A\",\"close\":1.5,\"ticks\":3}\n{\"symbol\":\"B\",\"close\":2.5,\"ticks\":4}\n",
    )
    .unwrap();
    std::fs::write(
        sink.join("part-000001.jsonl"),
        "{\"symbol\":\"A\",\"close\":1.75,\"ticks\":5}\n",
    )
    .unwrap();
    std::fs::write(sink.join(".part-000002.jsonl.tmp"), "{\"half\":").unwrap();
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::copy(shipped_queries().join("00_sources.sql"), queries.join("00_sources.sql"))
        .unwrap();
    std::fs::write(
        queries.join("10_more.sql"),
        "CREATE TABLE candles WITH (connector = 'filesystem', path = '${OUTPUT_PATH}/candles', format = 'json');
         CREATE VIEW dear AS SELECT symbol, price FROM ticks WHERE price > 60;
         CREATE TABLE printed WITH (connector = 'stdout');
         CREATE TABLE broken (a BIGINT) WITH (connector = 'filesystem', path = '/nonexistent', format = 'jsonl');",
    )
    .unwrap();
    let output_path = tmp.path().join("out").display().to_string();
    let env = [("OUTPUT_PATH", output_path.as_str())];
    let replay = format!("ticks={}", tmp.path().join("ticks").display());
    let output = repl(
        &queries,
        &[
            "--replay",
            &replay,
            "--format",
            "json",
            "-e",
            "SELECT count(*) AS n, sum(off) AS offsets, min(ts) AS first FROM ticks",
            "-e",
            "SELECT count(*) AS n FROM dear",
            "-e",
            "SELECT symbol, close, ticks FROM candles ORDER BY close",
            "-e",
            "SHOW TABLES",
        ],
        &env,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("10_more.sql:4:") && stderr.contains("'format'"), "{stderr}");
    let rows = json_rows(&String::from_utf8(output.stdout).unwrap());
    let all: Vec<&Tick> = parts.iter().flatten().collect();
    assert_eq!(rows[0]["n"], all.len());
    let offsets: usize = parts.iter().map(|p| p.len() * (p.len() - 1) / 2).sum();
    assert_eq!(rows[0]["offsets"], offsets, "the offset metadata column");
    let first = all.iter().map(|t| t.timestamp).min().unwrap();
    assert_eq!(chrono_millis(rows[0]["first"].as_str().unwrap()), first * 1000, "computed ts");
    assert_eq!(rows[1]["n"], all.iter().filter(|t| t.price > 60.0).count(), "the view");
    let candles: Vec<(String, f64, i64)> = rows[2..5]
        .iter()
        .map(|r| {
            let symbol = r["symbol"].as_str().unwrap().to_string();
            (symbol, r["close"].as_f64().unwrap(), r["ticks"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        candles,
        [("A".to_string(), 1.5, 3), ("A".to_string(), 1.75, 5), ("B".to_string(), 2.5, 4)]
    );
    let tables: Vec<(&str, &str)> = rows[5..]
        .iter()
        .map(|r| (r["table"].as_str().unwrap(), r["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(tables, [("candles", "filesystem"), ("dear", "view"), ("ticks", "filesystem")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_windowed_queries_run_with_e_equal_the_batch_oracle() {
    let parts = partition_by_symbol(&generate(77, 4, 1_500, 5), 2);
    let mock = mock_topic("repl.windows", &parts).await;
    // The shipped `ticks` table as it is, on the mock cluster's topic.
    let sources = std::fs::read_to_string(shipped_queries().join("00_sources.sql")).unwrap();
    let dir = queries_dir(&sources);
    let brokers = mock.bootstrap_servers();
    let env = [("KAFKA_BROKERS", brokers.as_str()), ("TICKS_TOPIC", "repl.windows")];
    let table = ticks_table(&parts);
    let key = ["symbol", "window_start"];
    for (file, oracle_sql) in [
        ("10_candles_1m.sql", crate::oracle::CANDLES),
        ("20_vwap_5m.sql", crate::oracle::VWAP),
        ("30_activity_sessions.sql", crate::oracle::SESSIONS),
    ] {
        let text = std::fs::read_to_string(shipped_queries().join(file)).unwrap();
        let select = &text[text.find("SELECT").unwrap()..text.rfind(';').unwrap()];
        let select = select.replace("EMIT ON WINDOW CLOSE", "");
        let out = repl_ok(dir.path(), &["--format", "json", "-e", &select], &env);
        let actual = unique_rows(json_rows(&out), &key);
        let expected = oracle(oracle_sql, table.clone()).await;
        assert_tables_eq(&actual, &expected, &key, &format!("{file} at the prompt"));
    }
}

#[test]
fn errors_show_where_they_are_in_the_statement_and_the_rest_still_runs() {
    let tmp = tempfile::tempdir().unwrap();
    write_partitions(&tmp.path().join("ticks"), &partition_by_symbol(&generate(1, 2, 50, 5), 1));
    let replay = format!("ticks={}", tmp.path().join("ticks").display());
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::copy(shipped_queries().join("00_sources.sql"), queries.join("00_sources.sql"))
        .unwrap();
    let output = repl(
        &queries,
        &[
            "--replay",
            &replay,
            "--format",
            "csv",
            "-e",
            "SELECT 1 AS a; SELECT\n  price,\n  symbl\nFROM ticks; SELECT 3 AS c",
            "-e",
            "SELEC 2",
            "-e",
            "SELECT symbol, window_start, window_end, count(*) FROM TUMBLE(ticks, tss, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "a statement failed");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "a\n1\nc\n3\n", "the others ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "error at 3:3: column 'symbl' not found",
        "    symbl\n    ^",
        "error at 1:1: Expected: an SQL statement, found: SELEC",
        "error at 1:56: TUMBLE: 'ticks' has no column 'tss'",
    ] {
        assert!(stderr.contains(expected), "missing '{expected}' in:\n{stderr}");
    }
}

#[test]
fn csv_and_json_have_exact_shapes_and_piped_statements_run_like_e() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("ticks")).unwrap();
    std::fs::write(
        tmp.path().join("ticks/a.jsonl"),
        "{\"symbol\":\"X\",\"price\":1.5,\"timestamp\":1714570200}\n{\"symbol\":\"Y\",\"price\":2,\"day_volume\":7,\"timestamp\":1714570261}\n",
    )
    .unwrap();
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::copy(shipped_queries().join("00_sources.sql"), queries.join("00_sources.sql"))
        .unwrap();
    let replay = format!("ticks={}", tmp.path().join("ticks").display());
    let sql = "SELECT symbol, price, day_volume, ts FROM ticks ORDER BY off";
    let csv = repl_ok(&queries, &["--replay", &replay, "--format", "csv", "-e", sql], &[]);
    assert_eq!(
        csv,
        "symbol,price,day_volume,ts\nX,1.5,,2024-05-01T13:30:00\nY,2.0,7,2024-05-01T13:31:01\n"
    );
    let json = repl_ok(&queries, &["--replay", &replay, "--format", "json", "-e", sql], &[]);
    assert_eq!(
        json,
        "{\"symbol\":\"X\",\"price\":1.5,\"day_volume\":null,\"ts\":\"2024-05-01T13:30:00\"}\n\
         {\"symbol\":\"Y\",\"price\":2.0,\"day_volume\":7,\"ts\":\"2024-05-01T13:31:01\"}\n"
    );
    let empty = repl_ok(
        &queries,
        &["--replay", &replay, "--format", "csv", "-e", "SELECT symbol FROM ticks WHERE false"],
        &[],
    );
    assert_eq!(empty, "symbol\n", "a header even without rows");

    let mut child = engine()
        .args(["repl", "--replay", &replay, "--format", "csv", "--queries"])
        .arg(&queries)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script =
        "-- a script\nSELECT count(*) AS n\n  FROM ticks;\n\\d ticks\nSELECT 'done' AS status";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("n\n2\ncolumn,type,nullable,note\nsymbol,Utf8,NO,\n"), "{text}");
    assert!(text.contains("off,Int64,YES,metadata 'offset'\n"), "{text}");
    assert!(text.ends_with("status\ndone\n"), "{text}");
}

/// Every ```sql block of docs/repl.md runs, non-interactively, against the shipped queries over
/// generated ticks (after the shipped queries ran once, so that their sinks have files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_in_the_repl_guide_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/repl.md");
    let blocks = crate::docs::blocks(&std::fs::read_to_string(path).unwrap());
    assert!(blocks.len() >= 5, "docs/repl.md lost its examples");
    let tmp = tempfile::tempdir().unwrap();
    let mut ticks = generate(3, 4, 600, 5);
    for tick in ticks.iter_mut().filter(|t| t.symbol == "SYM1") {
        tick.symbol = "AAPL".to_string();
    }
    write_partitions(&tmp.path().join("ticks"), &partition_by_symbol(&ticks, 2));
    // A backtest of the shipped queries, then the REPL over the same redirected tables.
    let options = engine::planner::PipelineOptions {
        redirect: backtest(tmp.path()),
        ..engine::planner::PipelineOptions::default()
    };
    run_once(&shipped_queries(), &Default::default(), &options).await;
    let args: Vec<String> =
        backtest_args(tmp.path()).into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    for block in &blocks {
        assert_eq!(block.kind, "", "docs/repl.md line {}: plain ```sql blocks only", block.line);
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["-e", &block.sql]);
        let output = repl(&shipped_queries(), &all, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && !stderr.contains("warning"),
            "docs/repl.md block at line {} failed:\n{stderr}",
            block.line
        );
        assert!(!output.stdout.is_empty(), "docs/repl.md line {}: no output", block.line);
    }
}

/// The prompt through a pseudo-terminal.
mod interactive {
    use rexpect::session::{PtySession, spawn_command};

    use super::*;

    const TIMEOUT_MS: u64 = 30_000;

    struct Prompt {
        session: PtySession,
        _home: tempfile::TempDir,
    }

    impl Prompt {
        fn start(queries: &Path, ticks: &Path) -> (Self, std::path::PathBuf) {
            let home = tempfile::tempdir().unwrap();
            let mut command = engine();
            command
                .args(["repl", "--queries"])
                .arg(queries)
                .arg("--replay")
                .arg(format!("ticks={}", ticks.display()))
                .env("HOME", home.path())
                .env_remove("XDG_STATE_HOME")
                .env("TERM", "xterm");
            let mut session = spawn_command(command, Some(TIMEOUT_MS)).unwrap();
            session.exp_string("engine> ").unwrap();
            let history = home.path().join(".engine_repl_history");
            (Self { session, _home: home }, history)
        }

        /// Types `keys` and waits until the terminal shows `shown`.
        fn type_until(&mut self, keys: &str, shown: &str) {
            self.session.send(keys).unwrap();
            self.session.flush().unwrap();
            self.session
                .exp_string(shown)
                .unwrap_or_else(|e| panic!("after typing {keys:?}, no {shown:?}: {e}"));
        }
    }

    fn ticks_dir() -> (tempfile::TempDir, std::path::PathBuf, Vec<Tick>) {
        let tmp = tempfile::tempdir().unwrap();
        let ticks = generate(9, 3, 400, 5);
        write_partitions(&tmp.path().join("ticks"), &partition_by_symbol(&ticks, 2));
        let queries = tmp.path().join("queries");
        std::fs::create_dir_all(&queries).unwrap();
        std::fs::copy(shipped_queries().join("00_sources.sql"), queries.join("00_sources.sql"))
            .unwrap();
        (tmp, queries, ticks)
    }

    #[test]
    fn tab_completes_tables_and_columns_statements_span_lines_and_timing_toggles() {
        let (tmp, queries, ticks) = ticks_dir();
        let (mut prompt, history) = Prompt::start(&queries, &tmp.path().join("ticks"));
        let sym1 = ticks.iter().filter(|t| t.symbol == "SYM1").count();
        prompt.type_until("SELECT count(*) AS n FROM tic\t", "ticks");
        prompt.type_until(" WHERE symb\t", "symbol");
        // Enter without ';' continues the statement on the next line.
        prompt.type_until(" = 'SYM1'\r", "'SYM1'");
        prompt.type_until("  AND price > 0;\r", &format!("| {sym1} "));
        prompt.session.exp_string("(1 row)").unwrap();
        prompt.type_until("\\timing\r", "Timing is on.");
        prompt.type_until("SELECT 7 AS seven;\r", "| 7     |");
        prompt.session.exp_string("Time: ").unwrap();
        prompt.type_until("\\timing\r", "Timing is off.");
        prompt.type_until("\\q\r", "\\q");
        prompt.session.exp_eof().unwrap();
        let saved = std::fs::read_to_string(&history).unwrap();
        assert!(saved.contains("SELECT 7 AS seven;"), "history: {saved}");
    }

    #[test]
    fn ctrl_c_stops_a_live_windowed_query_and_the_prompt_goes_on() {
        let (tmp, queries, _) = ticks_dir();
        let (mut prompt, _) = Prompt::start(&queries, &tmp.path().join("ticks"));
        prompt
            .type_until("SET 'trigger-interval' = '200ms';\r", "for the live queries that follow");
        prompt.type_until(
            "SELECT symbol, window_start, window_end, count(*) AS n\r\
             FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end;\r",
            "Ctrl-C stops",
        );
        // Redrawn every micro-batch while it runs.
        prompt.session.exp_regex(r"· [2-9]\d* micro-batches").unwrap();
        prompt.session.send_control('c').unwrap();
        prompt.session.exp_string("stopped after").unwrap();
        prompt.session.exp_string("engine> ").unwrap();
        prompt.type_until("SELECT 42 AS answer;\r", "| 42     |");
        prompt.type_until("\\q\r", "\\q");
        prompt.session.exp_eof().unwrap();
    }
}

/// The REPL only looks: a source's dead-letter destination belongs to the running queries, so
/// neither a snapshot nor a live windowed query over the source writes to it, and both still
/// leave the bad record out of their results.
#[test]
fn snapshots_and_live_queries_leave_the_dead_letter_destination_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let ticks = generate(11, 3, 120, 0);
    let mut text: String = ticks.iter().map(|t| t.json() + "\n").collect();
    text.push_str("{\"symbol\": \"BAD\", \"price\": 1.0, \"timestamp\": -99999999999999}\n");
    std::fs::create_dir_all(tmp.path().join("ticks")).unwrap();
    std::fs::write(tmp.path().join("ticks/part-000.jsonl"), text).unwrap();
    let dead_letters = tmp.path().join("dead-letters.jsonl");
    let queries = queries_dir(&format!(
        "CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL, \"timestamp\" BIGINT NOT NULL,
             ts AS to_timestamp(\"timestamp\"), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH (connector = 'filesystem', path = '{}', format = 'json', 'dead-letter.path' = '{}');",
        tmp.path().join("ticks").display(),
        dead_letters.display()
    ));
    let live = "SELECT symbol, window_start, window_end, count(*) AS n \
                FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE) GROUP BY symbol, window_start, window_end";
    let counted = |sql: &str| -> i64 {
        let out = repl_ok(queries.path(), &["--format", "json", "-e", sql], &[]);
        json_rows(&out).iter().map(|row| row["n"].as_i64().unwrap()).sum()
    };
    assert_eq!(counted(live), ticks.len() as i64);
    assert_eq!(
        counted("SELECT count(*) AS n FROM ticks WHERE symbol <> 'BAD'"),
        ticks.len() as i64
    );
    let written = std::fs::read_to_string(&dead_letters).unwrap_or_default();
    assert!(written.is_empty(), "the REPL wrote dead letters: {written}");
}
