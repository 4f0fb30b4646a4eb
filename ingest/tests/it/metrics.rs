//! `/metrics`, `/healthz` and `/readyz` while the client runs against the fake server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::client::{config, spawn};
use crate::fake_twelvedata::{FakeTwelveData, price, subscribe_status};

pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of the first sample line starting with `series`.
pub fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
}

#[tokio::test]
async fn endpoints_report_health_readiness_and_counters() {
    let mut server = FakeTwelveData::start().await;
    let mut client = spawn(config(&server.url, &["AAPL", "NOPE"]));
    let shutdown = CancellationToken::new();
    let addr = ingest::metrics::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&client.health),
        shutdown.clone(),
    )
    .await
    .unwrap();

    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 503, "ready before any subscription");

    let mut conn = server.next_connection(Duration::from_secs(10)).await;
    conn.expect_subscribe().await;
    conn.send(&subscribe_status(&["AAPL"], &[("NOPE", "Symbol not found")])).await;
    conn.send("garbage").await;
    conn.send(&price("AAPL", 1)).await;
    client.next_price().await;
    assert_eq!(get(addr, "/readyz").await.0, 200);

    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(sample(&body, "ingest_ws_messages_received_total{event=\"price\"}") >= 1.0);
    assert!(sample(&body, "ingest_ws_messages_received_total{event=\"malformed\"}") >= 1.0);
    assert!(sample(&body, "ingest_ws_messages_received_total{event=\"subscribe_status\"}") >= 1.0);
    // Gauges are process-wide and other tests run concurrently: only their presence is certain here.
    for gauge in
        ["ingest_ws_refused_symbols", "ingest_ws_subscribed_symbols", "ingest_ws_connected"]
    {
        sample(&body, gauge);
    }
    let age = sample(&body, "ingest_last_price_age_seconds");
    assert!((0.0..5.0).contains(&age), "{age}");
    assert!(body.contains("ingest_frame_to_produce_seconds{quantile=\"0.5\"}"), "{body}");
    assert!(!body.contains("AAPL"), "metrics must not carry symbols");

    client.stop().await.0.unwrap();
    shutdown.cancel();
}
