//! The WebSocket client against the fake TwelveData server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ingest::backoff::BackoffPolicy;
use ingest::config::{ApiKey, TwelveDataConfig};
use ingest::metrics::Health;
use ingest::sink::{PriceSink, SinkError};
use ingest::twelvedata::client::{CLOSE_REPLY_TIMEOUT, ClientError, ClientStats, TwelveDataClient};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fake_twelvedata::{FakeTwelveData, price, subscribe_status};

const SECOND: Duration = Duration::from_secs(1);

/// Forwards every price event to the test; with a gate, the first one waits until the test opens it.
struct ChannelSink {
    prices: mpsc::UnboundedSender<(String, String)>,
    gate: Option<oneshot::Receiver<()>>,
}

impl PriceSink for ChannelSink {
    async fn on_price(&mut self, symbol: &str, raw: &str, _: Instant) -> Result<(), SinkError> {
        if let Some(gate) = self.gate.take() {
            gate.await.expect("the test dropped the gate");
        }
        self.prices.send((symbol.to_owned(), raw.to_owned()))?;
        Ok(())
    }
}

pub type Outcome = (Result<(), ClientError>, ClientStats, BTreeSet<String>);

pub struct Running {
    pub task: JoinHandle<Outcome>,
    pub shutdown: CancellationToken,
    pub prices: mpsc::UnboundedReceiver<(String, String)>,
    pub health: Arc<Health>,
}

impl Running {
    pub async fn stop(self) -> Outcome {
        self.shutdown.cancel();
        tokio::time::timeout(10 * SECOND, self.task)
            .await
            .expect("client did not stop on shutdown")
            .unwrap()
    }

    pub async fn next_price(&mut self) -> (String, String) {
        tokio::time::timeout(10 * SECOND, self.prices.recv())
            .await
            .expect("no price event reached the sink")
            .unwrap()
    }
}

pub fn config(url: &str, symbols: &[&str]) -> TwelveDataConfig {
    TwelveDataConfig {
        url: url.to_owned(),
        symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
        heartbeat_interval: 10 * SECOND,
        idle_timeout: 30 * SECOND,
        connect_timeout: 5 * SECOND,
        backoff: BackoffPolicy {
            initial: Duration::from_millis(50),
            max: SECOND,
            multiplier: 2.0,
            jitter: 0.0,
            reset_after: 60 * SECOND,
        },
    }
}

pub fn spawn(config: TwelveDataConfig) -> Running {
    spawn_gated(config, None)
}

/// Like [`spawn`]; the first price event waits in the sink until `gate` opens.
fn spawn_gated(config: TwelveDataConfig, gate: Option<oneshot::Receiver<()>>) -> Running {
    let (tx, prices) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::default());
    let mut client = TwelveDataClient::new(config, ApiKey::new("test-key"), Arc::clone(&health));
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let result = client.run(&mut ChannelSink { prices: tx, gate }, &token).await;
        (result, client.stats().clone(), client.refused_symbols().clone())
    });
    Running { task, shutdown, prices, health }
}

#[tokio::test]
async fn subscribes_with_the_key_in_a_header_and_again_after_a_drop() {
    let mut server = FakeTwelveData::start().await;
    let mut client = spawn(config(&server.url, &["AAPL", "EUR/USD", "RY:TSX"]));

    let mut conn = server.next_connection(10 * SECOND).await;
    assert_eq!(conn.api_key.as_deref(), Some("test-key"));
    assert_eq!(conn.uri, "/v1/quotes/price", "the key must not be in the URL");
    assert_eq!(conn.expect_subscribe().await, ["AAPL", "EUR/USD", "RY:TSX"]);
    conn.send(&subscribe_status(&["AAPL", "EUR/USD", "RY"], &[])).await;
    let sent = [price("AAPL", 1), price("EUR/USD", 2)];
    for p in &sent {
        conn.send(p).await;
    }
    assert_eq!(client.next_price().await, ("AAPL".into(), sent[0].clone()));
    assert_eq!(client.next_price().await, ("EUR/USD".into(), sent[1].clone()));
    assert!(client.health.is_subscribed());
    conn.drop_connection();

    let mut conn = server.next_connection(10 * SECOND).await;
    assert_eq!(conn.expect_subscribe().await, ["AAPL", "EUR/USD", "RY:TSX"]);
    conn.send(&subscribe_status(&["AAPL", "EUR/USD", "RY"], &[])).await;
    let third = price("RY:TSX", 3);
    conn.send(&third).await;
    assert_eq!(client.next_price().await, ("RY:TSX".into(), third));

    let (result, stats, refused) = client.stop().await;
    result.unwrap();
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.reconnects, 1);
    assert_eq!(stats.prices, 3);
    assert!(refused.is_empty());
}

#[tokio::test]
async fn a_clean_server_close_also_reconnects() {
    let mut server = FakeTwelveData::start().await;
    let client = spawn(config(&server.url, &["AAPL"]));
    let mut conn = server.next_connection(10 * SECOND).await;
    conn.expect_subscribe().await;
    conn.close().await;
    let mut conn = server.next_connection(10 * SECOND).await;
    assert_eq!(conn.expect_subscribe().await, ["AAPL"]);
    let (result, stats, _) = client.stop().await;
    result.unwrap();
    assert_eq!(stats.reconnects, 1);
}

#[tokio::test]
async fn refused_symbols_are_reported_and_not_requested_again() {
    let mut server = FakeTwelveData::start().await;
    let client = spawn(config(&server.url, &["AAPL", "1211:XHKG", "NOPE"]));

    let mut conn = server.next_connection(10 * SECOND).await;
    assert_eq!(conn.expect_subscribe().await, ["AAPL", "1211:XHKG", "NOPE"]);
    conn.send(&subscribe_status(
        &["AAPL"],
        &[("1211", "You are not authorized to access XHKG data."), ("NOPE", "Symbol not found")],
    ))
    .await;
    // The refusal causes no new subscribe on this connection: the next message is a heartbeat or nothing.
    let quiet =
        tokio::time::timeout(Duration::from_millis(300), conn.recv_json(Duration::from_secs(3600)))
            .await;
    assert!(quiet.is_err(), "client sent {quiet:?} after the refusal");
    conn.drop_connection();

    let mut conn = server.next_connection(10 * SECOND).await;
    assert_eq!(conn.expect_subscribe().await, ["AAPL"]);
    let (result, _, refused) = client.stop().await;
    result.unwrap();
    assert_eq!(refused, BTreeSet::from(["1211:XHKG".to_owned(), "NOPE".to_owned()]));
}

#[tokio::test]
async fn when_every_symbol_is_refused_the_client_stops_instead_of_looping() {
    let mut server = FakeTwelveData::start().await;
    let client = spawn(config(&server.url, &["NOPE"]));
    let mut conn = server.next_connection(10 * SECOND).await;
    conn.expect_subscribe().await;
    conn.send(&subscribe_status(&[], &[("NOPE", "Symbol not found")])).await;
    conn.drop_connection();
    let (result, stats, _) = tokio::time::timeout(10 * SECOND, client.task).await.unwrap().unwrap();
    assert!(
        matches!(&result, Err(ClientError::AllSymbolsRefused { refused }) if refused.contains("NOPE")),
        "{result:?}"
    );
    assert_eq!(stats.connections, 1);
    assert!(server.connection_within(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn garbage_and_unexpected_frames_are_counted_and_survived() {
    let mut server = FakeTwelveData::start().await;
    let mut client = spawn(config(&server.url, &["AAPL"]));
    let mut conn = server.next_connection(10 * SECOND).await;
    conn.expect_subscribe().await;
    let garbage = [
        "not json at all".to_owned(),
        "[1,2,3]".to_owned(),
        "{}".to_owned(),
        r#"{"event":"price","price":1.0,"timestamp":1}"#.to_owned(),
        r#"{"event":"price","symbol":"AAPL","price":"n/a","timestamp":1}"#.to_owned(),
        format!("{{\"junk\":\"{}\"}}", "x".repeat(200_000)),
    ];
    for g in &garbage {
        conn.send(g).await;
    }
    conn.send_binary(&[0xff, 0xfe, 0x00]).await;
    // Well-formed but unexpected: counted by kind, not as malformed.
    conn.send(r#"{"event":"news","headline":"x"}"#).await;
    conn.send(r#"{"status":"error","messages":["Cant parse message"]}"#).await;
    let good = price("AAPL", 42);
    conn.send(&good).await;
    assert_eq!(client.next_price().await, ("AAPL".into(), good));
    assert!(client.prices.try_recv().is_err(), "garbage reached the sink");
    let (result, stats, _) = client.stop().await;
    result.unwrap();
    assert_eq!(stats.malformed, garbage.len() as u64 + 1);
    assert_eq!(stats.connections, 1, "garbage must not cost a reconnect");
    assert_eq!(stats.prices, 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_every_ten_seconds_and_a_silent_socket_is_dead() {
    let mut server = FakeTwelveData::start().await;
    let client = spawn(config(&server.url, &["AAPL"]));
    let mut conn = server.next_connection(10 * SECOND).await;
    conn.expect_subscribe().await;
    let subscribed_at = Instant::now();
    conn.send(&subscribe_status(&["AAPL"], &[])).await;

    // The server answers the heartbeats: the connection stays up well past the idle timeout.
    let mut at = Vec::new();
    for _ in 0..5 {
        let msg = conn.recv_json(60 * SECOND).await.unwrap();
        assert_eq!(msg, json!({"action": "heartbeat"}));
        at.push(Instant::now().duration_since(subscribed_at));
        conn.send(r#"{"event":"heartbeat","status":"ok"}"#).await;
    }
    for (i, t) in at.iter().enumerate() {
        let expected = 10 * SECOND * (i as u32 + 1);
        let skew = t.abs_diff(expected);
        assert!(skew < Duration::from_millis(100), "heartbeat {i} at {t:?}, expected {expected:?}");
    }

    // Now the server goes silent (heartbeats unanswered, socket open): dead after idle_timeout.
    let silent_since = Instant::now();
    let dropped_at = loop {
        match conn.recv_json(120 * SECOND).await {
            Some(msg) => {
                assert_eq!(msg, json!({"action": "heartbeat"}), "unexpected frame while silent")
            }
            None => break Instant::now(),
        }
    };
    let silence = dropped_at.duration_since(silent_since);
    assert!(
        silence >= 30 * SECOND && silence < 31 * SECOND,
        "the client gave up after {silence:?} of silence (idle timeout 30 s)"
    );
    let reconnected = server.next_connection(10 * SECOND).await;
    let delay = reconnected.accepted_at.duration_since(dropped_at);
    assert!(delay < SECOND, "reconnected {delay:?} after dropping (backoff 50 ms)");
    let (result, stats, _) = client.stop().await;
    result.unwrap();
    assert_eq!(stats.reconnects, 1);
    assert!(stats.heartbeats >= 7, "{stats:?}");
}

#[tokio::test]
async fn reconnect_delays_grow_then_reset_after_a_stable_connection() {
    let mut server = FakeTwelveData::start().await;
    let mut cfg = config(&server.url, &["AAPL"]);
    cfg.backoff = BackoffPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(800),
        multiplier: 2.0,
        jitter: 0.0,
        reset_after: Duration::from_millis(600),
    };
    let client = spawn(cfg);

    // Five connections dropped at once: delays 100, 200, 400, 800 (capped), 800 ms.
    let mut conn = server.next_connection(10 * SECOND).await;
    let mut gaps = Vec::new();
    for _ in 0..5 {
        conn.expect_subscribe().await;
        let dropped = Instant::now();
        conn.drop_connection();
        conn = server.next_connection(10 * SECOND).await;
        gaps.push(conn.accepted_at.duration_since(dropped));
    }
    for (gap, expected_ms) in gaps.iter().zip([100u64, 200, 400, 800, 800]) {
        let expected = Duration::from_millis(expected_ms);
        assert!(
            *gap >= expected && *gap < expected + Duration::from_millis(350),
            "gaps {gaps:?}: expected about {expected:?}"
        );
    }

    // A connection that stays up longer than reset_after resets the delay to the initial one.
    conn.expect_subscribe().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let dropped = Instant::now();
    conn.drop_connection();
    let conn = server.next_connection(10 * SECOND).await;
    let gap = conn.accepted_at.duration_since(dropped);
    assert!(
        gap >= Duration::from_millis(100) && gap < Duration::from_millis(450),
        "after a stable connection the delay should be back to 100 ms, got {gap:?}"
    );
    let (result, stats, _) = client.stop().await;
    result.unwrap();
    assert_eq!(stats.reconnects, 6);
}

/// `wss://` goes through rustls: a TLS failure is a reconnect, not a panic (no crypto provider once was).
#[tokio::test]
async fn a_failing_tls_handshake_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://{}/v1/quotes/price", listener.local_addr().unwrap());
    let client = spawn(config(&url, &["AAPL"]));
    for _ in 0..2 {
        let (tcp, _) = tokio::time::timeout(10 * SECOND, listener.accept()).await.unwrap().unwrap();
        drop(tcp);
    }
    assert!(!client.task.is_finished());
    let (result, stats, _) = client.stop().await;
    result.unwrap();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_eq!(stats.connections, 0);
}

#[tokio::test]
async fn shutdown_sends_a_close_frame_and_reads_until_the_reply() {
    let mut server = FakeTwelveData::start().await;
    let (open, gate) = oneshot::channel();
    let mut client = spawn_gated(config(&server.url, &["AAPL"]), Some(gate));
    let mut conn = server.next_connection(10 * SECOND).await;
    conn.expect_subscribe().await;
    conn.send(&subscribe_status(&["AAPL"], &[])).await;
    let sent: Vec<String> = (0..100).map(|n| price("AAPL", n)).collect();
    for p in &sent {
        conn.send(p).await;
    }
    // The first price waits in the sink, so at least 99 are still unread when shutdown comes.
    client.shutdown.cancel();
    open.send(()).unwrap();
    assert!(conn.recv_close(10 * SECOND).await, "the server received no close frame");
    tokio::time::sleep(SECOND / 2).await;
    assert!(!client.task.is_finished(), "the client left before the server answered its close");
    conn.answer_close(5 * SECOND).await;
    let (result, stats, _) = tokio::time::timeout(SECOND, client.task)
        .await
        .expect("the close reply did not end the wait")
        .unwrap();
    result.unwrap();
    let mut got = Vec::new();
    while let Ok((_, raw)) = client.prices.try_recv() {
        got.push(raw);
    }
    assert_eq!(got, sent, "price frames read while closing reach the sink");
    assert_eq!(stats.prices, 100);
}

#[tokio::test]
async fn an_unanswered_close_is_given_up_after_the_timeout() {
    let mut server = FakeTwelveData::start().await;
    let client = spawn(config(&server.url, &["AAPL"]));
    let mut conn = server.next_connection(10 * SECOND).await;
    conn.expect_subscribe().await;
    let started = Instant::now();
    let stopping = tokio::spawn(client.stop());
    assert!(conn.recv_close(10 * SECOND).await, "the server received no close frame");
    // The reply stays queued: `conn` is not read again.
    stopping.await.unwrap().0.unwrap();
    let took = started.elapsed();
    assert!(
        took >= CLOSE_REPLY_TIMEOUT && took < CLOSE_REPLY_TIMEOUT + SECOND,
        "stopping took {took:?} with a server that never answers the close"
    );
    drop(conn);
}
