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

/// `engine run` over a replayed backtest with its logs going to a file, or to a terminal (a
/// pseudo-terminal, with and without `NO_COLOR`): escape sequences only on the terminal.
#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    let ticks = generate(5, 3, 200, 5);
    // A command over its own copy of the input and output (kept alive as long as it runs).
    let run = || {
        let tmp = tempfile::tempdir().unwrap();
        write_partitions(&tmp.path().join("ticks"), &partition_by_symbol(&ticks, 2));
        let mut command = engine();
        command
            .args(["run", "--once", "--queries"])
            .arg(shipped_queries())
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(backtest_args(tmp.path()))
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        (command, tmp)
    };

    let (mut command, tmp) = run();
    let log = tmp.path().join("engine.log");
    let status = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let written = std::fs::read(&log).unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&written));
    let text = String::from_utf8_lossy(&written);
    assert!(
        text.contains("INFO") && text.contains("engine::"),
        "no log lines in the file:\n{text}"
    );
    assert!(!written.contains(&0x1b), "escape sequences in a log file:\n{text:?}");

    let on_terminal = |no_color: bool| {
        let (mut command, _tmp) = run();
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let mut session = rexpect::session::spawn_command(command, Some(60_000)).unwrap();
        let shown = session.exp_eof().unwrap();
        assert!(shown.contains("INFO"), "no log lines on the terminal:\n{shown}");
        shown.contains('\u{1b}')
    };
    assert!(on_terminal(false), "a terminal gets colour");
    assert!(!on_terminal(true), "NO_COLOR turns colour off on a terminal too");
}

/// `engine repl -e` over a Cassandra table without RUST_LOG: standard output is the result
/// alone, and standard error holds no line from a dependency (the CQL driver logs its
/// connection set-up at INFO).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repl_over_cassandra_prints_its_result_and_no_dependency_chatter() {
    let session = crate::servers::cql_session().await;
    let keyspace = crate::servers::create_keyspace(&session, "cli_quiet").await;
    crate::servers::cql(
        &session,
        &format!(
            "CREATE TABLE {keyspace}.quotes (symbol text, seq bigint, price double, \
             PRIMARY KEY ((symbol), seq))"
        ),
    )
    .await;
    let rows = [("AAA", 1i64, 1.25), ("AAA", 2, 1.5), ("BBB", 1, 7.0)];
    for (symbol, seq, price) in rows {
        session
            .query_unpaged(
                format!("INSERT INTO {keyspace}.quotes (symbol, seq, price) VALUES (?, ?, ?)"),
                (symbol, seq, price),
            )
            .await
            .unwrap();
    }
    let dir = crate::repl::queries_dir(&format!(
        "CREATE TABLE quotes WITH (connector = 'cassandra', hosts = '{}', keyspace = '{keyspace}', 'table' = 'quotes');",
        crate::servers::cql_hosts()
    ));
    let output = engine()
        .args(["repl", "--format", "csv", "--queries"])
        .arg(dir.path())
        .args(["-e", "SELECT symbol, seq, price FROM quotes ORDER BY symbol, seq"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let expected: String = std::iter::once("symbol,seq,price\n".to_string())
        .chain(rows.iter().map(|(s, q, p)| format!("{s},{q},{p:?}\n")))
        .collect();
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    let foreign: Vec<&str> = stderr
        .lines()
        .filter(|line| match log_target(line) {
            Some(target) => target != "engine" && !target.starts_with("engine::"),
            None => !line.trim().is_empty(),
        })
        .collect();
    assert!(foreign.is_empty(), "standard error holds more than the engine's messages:\n{stderr}");
}

/// The target of a text log line (`2024-05-01T13:30:00.000000Z  INFO scylla::network: ...`).
fn log_target(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let (_time, level, target) = (words.next()?, words.next()?, words.next()?);
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
        .contains(&level)
        .then(|| target.trim_end_matches(':'))
}
