//! The `ingest run` binary at `RUST_LOG=trace`, text and JSON logs, for a whole session against the fake
//! TwelveData server and the test broker: connect, prices, an error frame echoing the key, a dropped
//! connection and a reconnect, a `/metrics` scrape, SIGTERM. The API key must appear nowhere in stdout,
//! stderr or `/metrics`; the server must receive a close frame; no colour escapes go to a pipe.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::fake_twelvedata::{FakeTwelveData, price, subscribe_status};
use crate::kafka::{brokers, unique_topic};
use crate::metrics::{get, sample};

/// Looks like a TwelveData key (32 hex digits); appears in no log line by chance.
const KEY: &str = "9f3c2b7a5d4e6f8091a2b3c4d5e6f7a8";
const SECOND: Duration = Duration::from_secs(1);

/// Collects a child's output stream on a thread.
struct Captured {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Captured {
    fn start(mut stream: impl Read + Send + 'static) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = stream.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Self { bytes, reader }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// Everything, once the stream ended.
    fn finish(self) -> Vec<u8> {
        self.reader.join().unwrap();
        Arc::try_unwrap(self.bytes).unwrap().into_inner().unwrap()
    }
}

/// The address `ingest` logged for its metrics endpoint (it listens on port 0).
async fn metrics_addr(stderr: &Captured, child: &mut Child) -> SocketAddr {
    for _ in 0..600 {
        let text = stderr.text();
        if let Some(line) = text.lines().find(|l| l.contains("serving /metrics")) {
            let at = line.find("127.0.0.1:").expect("metrics address in the log line");
            let addr: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return addr.parse().unwrap();
        }
        assert!(child.try_wait().unwrap().is_none(), "ingest exited early:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ingest did not log its metrics address:\n{}", stderr.text());
}

async fn full_session_never_shows_the_key(log_format: &str) {
    let mut server = FakeTwelveData::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ingest.toml");
    std::fs::write(
        &config,
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[twelvedata.backoff]\ninitial = \"100ms\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(["--log-format", log_format, "--config", config.to_str().unwrap(), "run"])
        .env("TWELVEDATA_API_KEY", KEY)
        .env("TWELVEDATA_URL", &server.url)
        .env("SYMBOLS", "AAPL,MSFT")
        .env("KAFKA_BROKERS", brokers())
        .env("TOPIC", unique_topic(&format!("secrets-{log_format}")))
        .env("TOPIC_PARTITIONS", "1")
        .env("RUST_LOG", "trace")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Captured::start(child.stdout.take().unwrap());
    let stderr = Captured::start(child.stderr.take().unwrap());
    let metrics = metrics_addr(&stderr, &mut child).await;

    // Session 1: the key goes out in the header; the server echoes it in an error and in garbage.
    let mut conn = server.next_connection(30 * SECOND).await;
    assert_eq!(conn.api_key.as_deref(), Some(KEY));
    assert_eq!(conn.expect_subscribe().await, ["AAPL", "MSFT"]);
    conn.send(&subscribe_status(&["AAPL", "MSFT"], &[])).await;
    conn.send(&price("AAPL", 1)).await;
    conn.send(&format!(r#"{{"status":"error","messages":["apikey {KEY} is over its limit"]}}"#))
        .await;
    conn.send(&format!("not json, key={KEY}")).await;
    conn.drop_connection();

    // Session 2 after the reconnect, then a scrape and SIGTERM.
    let mut conn = server.next_connection(30 * SECOND).await;
    assert_eq!(conn.api_key.as_deref(), Some(KEY));
    conn.expect_subscribe().await;
    conn.send(&subscribe_status(&["AAPL", "MSFT"], &[])).await;
    conn.send(&price("MSFT", 2)).await;
    let prices = "ingest_ws_messages_received_total{event=\"price\"}";
    let mut scrapes = 0;
    let body = loop {
        let (status, body) = get(metrics, "/metrics").await;
        assert_eq!(status, 200);
        if body.contains(prices) && sample(&body, prices) >= 2.0 {
            break body;
        }
        scrapes += 1;
        assert!(scrapes < 300, "the two prices were not counted in 30 s:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sample(&body, "ingest_ws_reconnects_total") >= 1.0, "{body}");
    assert!(!body.contains(KEY), "the key is in /metrics:\n{body}");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(conn.recv_close(10 * SECOND).await, "the server received no close frame on SIGTERM");
    conn.answer_close(10 * SECOND).await;
    let mut exited = None;
    for _ in 0..600 {
        exited = child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.unwrap_or_else(|| {
        child.kill().unwrap();
        panic!("ingest did not stop within 30 s of SIGTERM:\n{}", stderr.text())
    });
    let (stdout, stderr) = (stdout.finish(), stderr.finish());
    let log = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "ingest failed ({status}):\n{log}");

    let key = KEY.as_bytes();
    for (name, bytes) in [("stdout", &stdout), ("stderr", &stderr)] {
        let found = bytes.windows(key.len()).position(|w| w == key);
        assert!(found.is_none(), "the key is in {name} at byte {found:?}:\n{log}");
        assert!(!bytes.contains(&0x1b), "colour escape in {name}, which is a pipe:\n{log}");
    }
    // The test means something only if the key was there to redact: tungstenite's trace dump of the
    // handshake (both sessions), the echoed error frame and the garbage excerpt.
    assert!(log.contains("tungstenite::handshake::client"), "no trace output:\n{log}");
    let redacted = log.matches("[REDACTED]").count();
    assert!(redacted >= 4, "expected the key redacted at least 4 times, found {redacted}:\n{log}");
    if log_format == "json" {
        for line in log.lines().filter(|l| !l.is_empty()) {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_in_no_text_log_at_trace_level() {
    full_session_never_shows_the_key("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_in_no_json_log_at_trace_level() {
    full_session_never_shows_the_key("json").await;
}
