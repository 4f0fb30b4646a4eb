//! The `engine` binary as users run it: `check` exit codes, `explain`, and `run` serving
//! metrics and health, then stopping cleanly on SIGINT with everything written.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::servers::{shipped_env, shipped_schema, unique};

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

/// `GET path` over HTTP/1.0: (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value of metric `name` for `query` in a Prometheus text body (the first series).
pub fn metric(body: &str, name: &str, query: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("query=\"{query}\"")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn check_reports_errors_with_exit_code_one_and_accepts_the_shipped_queries() {
    let broken =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/cases/errors/unknown_column.sql");
    let out = engine().arg("check").arg(&broken).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown_column.sql:11:8: column 'symbl' not found"), "{stderr}");

    // The shipped queries check against the shipped schema on the CQL server.
    let out =
        engine().arg("check").arg(shipped_queries()).envs(shipped_servers()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 queries"));

    // Without the schema, the Cassandra sinks cannot be checked: said per table, exit code 1.
    let mut env = shipped_servers();
    env.retain(|(k, _)| *k != "CASSANDRA_KEYSPACE");
    let out = engine()
        .arg("check")
        .arg(shipped_queries())
        .envs(env)
        .env("CASSANDRA_KEYSPACE", unique("it_no_such_keyspace"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("10_candles_1m.sql:2:1: table 'candles_1m'"), "{stderr}");
}

/// The shipped queries' environment for the test servers, with the shipped schema applied.
fn shipped_servers() -> Vec<(&'static str, String)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keyspace = runtime.block_on(shipped_schema("it_cli"));
    shipped_env(&unique("it.cli.ticks"), &keyspace)
}

#[test]
fn explain_shows_the_streaming_stages() {
    let out = engine()
        .arg("explain")
        .arg(shipped_queries().join("20_vwap_5m.sql"))
        .envs(shipped_servers())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "source: ticks (kafka)",
        "HOP slide 60s size 300s",
        "incremental aggregate",
        "sink: vwap_5m",
    ] {
        assert!(text.contains(expected), "missing '{expected}' in:\n{text}");
    }
}

#[test]
fn run_serves_metrics_and_health_then_stops_cleanly_on_sigint() {
    let tmp = tempfile::tempdir().unwrap();
    let ticks = generate(3, 4, 500, 5);
    write_partitions(&tmp.path().join("ticks"), &partition_by_symbol(&ticks, 2));
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = engine()
        .args(["run", "--queries"])
        .arg(shipped_queries())
        .args(["--metrics-addr", &addr, "--trigger-interval", "100ms"])
        .args(backtest_args(tmp.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        assert!(Instant::now() < deadline, "no metrics within 60 s");
        if let Some((200, body)) = http_get(&addr, "/metrics")
            && metric(&body, "engine_rows_in_total", "10_candles_1m") == Some(500.0)
        {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for name in [
        "engine_rows_out_total",
        "engine_batch_duration_seconds_bucket",
        "engine_watermark_delay_seconds",
        "engine_window_groups",
        "engine_state_bytes",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    assert_eq!(http_get(&addr, "/healthz").map(|r| r.0), Some(200));
    assert_eq!(http_get(&addr, "/readyz").map(|r| r.0), Some(200));

    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "engine did not stop within 20 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(exit.success(), "exit {exit:?}\n{stderr}");
    assert!(stderr.contains("query stopped"), "{stderr}");
    // Everything written was committed: no temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("out/candles_1m"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Without `--once`, `engine run` keeps going while a query runs, and exits non-zero once every
/// query stopped on an error retrying cannot fix (here a checkpoint it cannot restore, an
/// internal error), naming the query and the class.
#[test]
fn run_exits_non_zero_once_every_query_stopped_on_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q");
    std::fs::create_dir_all(&queries).unwrap();
    write_partitions(&dir.path().join("ticks"), &[generate(9, 2, 50, 0)]);
    let sql = format!(
        "CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL) WITH (connector = \
         'filesystem', path = '{}', format = 'json');
         CREATE TABLE copy WITH (connector = 'filesystem', path = '{}', format = 'json');
         INSERT INTO copy SELECT symbol, price FROM ticks;",
        dir.path().join("ticks").display(),
        dir.path().join("out").display()
    );
    std::fs::write(queries.join("copy.sql"), sql).unwrap();
    let state = dir.path().join("state");
    let run = |once: bool| {
        // Bounded in time: an engine that never exits fails the test (status 124) instead of
        // hanging it.
        let mut command = Command::new("timeout");
        command.arg("60").arg(env!("CARGO_BIN_EXE_engine"));
        command.args(["run", "--queries"]).arg(&queries).arg("--state-dir").arg(&state);
        command.args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
        if once {
            command.arg("--once");
        }
        command.output().unwrap()
    };
    assert!(run(true).status.success());
    let manifest = state.join("copy/manifest.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    value["watermarks"] = serde_json::json!({ "partitions": "damaged" });
    std::fs::write(&manifest, value.to_string()).unwrap();
    let output = run(false);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("checkpointed watermarks") && log.contains("internal"), "{log}");
}
