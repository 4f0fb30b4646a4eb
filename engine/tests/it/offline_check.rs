//! `engine check` without a server: Cassandra sinks are checked against the CQL files the
//! deployment applies (`--schema cql/`), or noted as unchecked; `engine run` refuses a live
//! table that differs from those files.

use std::path::Path;
use std::process::Command;

use crate::cli::free_port;
use crate::harness::*;
use crate::servers::{cql_hosts, shipped_cql, shipped_env, shipped_schema, unique};

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

fn cql_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cql")
}

/// Where nothing listens: checking must not need a server.
fn closed_port() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn check_with_the_cql_files_needs_no_server() {
    let out = check_offline(&cql_dir());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 4 tables, 3 queries"));
    assert!(!stderr.contains("note:"), "{stderr}");

    // Without --schema and no server: every query still checked, each Cassandra sink noted
    // as unchecked with how to check it.
    let out = engine()
        .arg("check")
        .arg(shipped_queries())
        .env("CASSANDRA_HOSTS", closed_port())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("note:").count(), 3, "{stderr}");
    assert!(stderr.contains("10_candles_1m.sql:2:1: note: table 'candles_1m'"), "{stderr}");
    assert!(stderr.contains("check them offline with --schema DIR"), "{stderr}");
}

#[test]
fn a_column_the_cql_table_lacks_fails_with_its_position() {
    let keyspace = "market";
    let cql = shipped_cql(keyspace, |text| {
        if text.contains("TABLE IF NOT EXISTS market.candles_1m") {
            text.replace("    ticks bigint,\n", "")
        } else {
            text
        }
    });
    let query = std::fs::read_to_string(shipped_queries().join("10_candles_1m.sql")).unwrap();
    let line = query.lines().position(|l| l.starts_with("INSERT INTO")).unwrap() + 1;
    let out = check_offline(cql.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "10_candles_1m.sql:{line}:1: query column 8 'ticks' is not a column of cassandra table market.candles_1m"
    );
    assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
    assert!(stderr.contains("1 error"), "only the one query fails: {stderr}");

    // A sink the files do not create at all is named with where to add it.
    let cql = shipped_cql(keyspace, |text| text.replace("vwap_5m", "vwap_10m"));
    let out = check_offline(cql.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no file of"), "{stderr}");
    assert!(stderr.contains("creates market.vwap_5m"), "{stderr}");
}

#[test]
fn run_refuses_a_live_table_that_differs_from_the_cql_files() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let keyspace = runtime.block_on(shipped_schema("it_mismatch"));
    let tmp = tempfile::tempdir().unwrap();
    let ticks = tmp.path().join("ticks");
    write_partitions(&ticks, &partition_by_symbol(&generate(7, 2, 50, 3), 1));
    let run = |cql: &Path| {
        engine()
            .args(["run", "--once", "--queries"])
            .arg(shipped_queries())
            .arg("--replay")
            .arg(format!("ticks={}", ticks.display()))
            .arg("--schema")
            .arg(cql)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .envs(shipped_env(&unique("it.mismatch.ticks"), &keyspace))
            .env("CASSANDRA_HOSTS", cql_hosts())
            .output()
            .unwrap()
    };
    // The files the live tables were created from: accepted.
    let same = shipped_cql(&keyspace, |text| text);
    let out = run(same.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // One column's type changed in the files: that table's query is refused at start.
    let candles = format!("TABLE IF NOT EXISTS {keyspace}.candles_1m");
    let changed = shipped_cql(&keyspace, |text| {
        if text.contains(&candles) { text.replace("ticks bigint", "ticks int") } else { text }
    });
    let out = run(changed.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Cassandra table {keyspace}.candles_1m differs from its definition"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("live ticks bigint"), "{stderr}");
}

/// `engine check --schema cql queries/` (the shipped queries) with no CQL server reachable.
fn check_offline(cql: &Path) -> std::process::Output {
    engine()
        .args(["check", "--schema"])
        .arg(cql)
        .arg(shipped_queries())
        .env("CASSANDRA_HOSTS", closed_port())
        .output()
        .unwrap()
}
