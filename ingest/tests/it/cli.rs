//! The `ingest` binary: help, errors, simulator output.

use std::process::{Command, Output};

fn ingest(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingest"));
    cmd.args(args)
        .env_remove("TWELVEDATA_API_KEY")
        .env_remove("KAFKA_BROKERS")
        .env_remove("SYMBOLS")
        .env_remove("TOPIC")
        .env_remove("TWELVEDATA_URL")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_documents_subcommands_environment_and_config() {
    let out = ingest(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "run",
        "simulate",
        "replay",
        "--config",
        "--record",
        "TWELVEDATA_API_KEY",
        "TWELVEDATA_URL",
        "NO_COLOR",
        "KAFKA_BROKERS",
        "SYMBOLS",
        "TOPIC",
        "heartbeat_interval",
        "/metrics",
    ] {
        assert!(help.contains(needle), "--help does not mention {needle}:\n{help}");
    }
    let out = ingest(&["simulate", "--help"], &[]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in ["--symbols", "--rate", "--duration", "--seed", "--start", "--output"] {
        assert!(help.contains(needle), "simulate --help does not mention {needle}");
    }
}

#[test]
fn run_without_symbols_or_key_fails_clearly() {
    let out = ingest(&["run"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no symbols configured"), "{}", stderr(&out));
    let out = ingest(&[], &[("SYMBOLS", "AAPL")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TWELVEDATA_API_KEY is not set"), "{}", stderr(&out));
}

#[test]
fn bad_config_file_is_refused_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ingest.toml");
    std::fs::write(&path, "[kafka]\nbrokers = \"x:1\"\ntopics = \"y\"\n").unwrap();
    let out = ingest(&["--config", path.to_str().unwrap(), "simulate", "--count", "1"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("ingest.toml") && err.contains("unknown field `topics`"), "{err}");
}

#[test]
fn simulate_to_stdout_is_deterministic_with_seed_and_start() {
    let args = [
        "simulate",
        "--symbols",
        "20",
        "--rate",
        "500",
        "--duration",
        "4s",
        "--seed",
        "42",
        "--start",
        "2024-05-01T13:30:00Z",
        "--unthrottled",
    ];
    let a = ingest(&args, &[]);
    assert!(a.status.success(), "{}", stderr(&a));
    let b = ingest(&args, &[]);
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2000);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines[1999]).unwrap();
    assert_eq!(first["timestamp"], 1_714_570_200);
    assert_eq!(last["timestamp"], 1_714_570_203);
    let other_seed = ingest(
        &[
            "simulate",
            "--symbols",
            "20",
            "--rate",
            "500",
            "--duration",
            "4s",
            "--seed",
            "43",
            "--start",
            "2024-05-01T13:30:00Z",
            "--unthrottled",
        ],
        &[],
    );
    assert_ne!(other_seed.stdout, text.as_bytes());
}

#[test]
fn replay_to_stdout_skips_garbage_and_keeps_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.jsonl");
    std::fs::write(
        &path,
        "{\"event\":\"price\",\"symbol\":\"AAPL\",\"timestamp\":1,\"price\":1.5}\nnot json\n{\"event\":\"price\",\"symbol\":\"MSFT\",\"timestamp\":2,\"price\":2.5}\n",
    )
    .unwrap();
    let out =
        ingest(&["replay", path.to_str().unwrap(), "--speed", "max", "--output", "stdout"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2);
    assert!(stderr(&out).contains("capture.jsonl:2"), "{}", stderr(&out));
}

#[test]
fn an_error_message_carrying_the_key_is_redacted() {
    let key = "5e8d1c0b9a7f6e5d4c3b2a1908f7e6d5";
    let url = format!("https://feed.example/v1/quotes/price?token={key}");
    let out = ingest(
        &["run"],
        &[("TWELVEDATA_API_KEY", key), ("TWELVEDATA_URL", &url), ("SYMBOLS", "AAPL")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("TWELVEDATA_URL") && err.contains("must start with ws://"), "{err}");
    assert!(err.contains("token=[REDACTED]") && !err.contains(key), "{err}");
}

#[test]
fn logs_to_a_pipe_have_no_colour_escapes() {
    let out = ingest(
        &["simulate", "--count", "3", "--seed", "1", "--unthrottled"],
        &[("RUST_LOG", "debug")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("simulation finished"), "no log to check: {}", stderr(&out));
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!bytes.contains(&0x1b), "escape in {name}: {}", String::from_utf8_lossy(bytes));
    }
}
