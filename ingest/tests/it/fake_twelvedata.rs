//! A fake TwelveData WebSocket server on 127.0.0.1:0, driven step by step by each test.
//!
//! Every accepted connection is handed to the test as a [`FakeConnection`], which reads what the client
//! sent and answers with the documented frames (subscribe-status, price, heartbeat), garbage, silence,
//! or a dropped socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// The server: its URL and the connections it accepted.
pub struct FakeTwelveData {
    /// `ws://127.0.0.1:PORT/v1/quotes/price`
    pub url: String,
    accepted: mpsc::UnboundedReceiver<FakeConnection>,
}

/// One client connection.
pub struct FakeConnection {
    /// Value of the `X-TD-APIKEY` header.
    pub api_key: Option<String>,
    /// Request path and query, as the client sent them.
    pub uri: String,
    /// When the handshake completed.
    pub accepted_at: Instant,
    ws: WebSocketStream<TcpStream>,
}

impl FakeTwelveData {
    /// Binds 127.0.0.1:0 and accepts WebSocket connections in the background.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/v1/quotes/price", listener.local_addr().unwrap());
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = Arc::new(Mutex::new((None, String::new())));
                let record = Arc::clone(&seen);
                // The handshake callback's signature is tungstenite's, large error type included.
                #[allow(clippy::result_large_err)]
                let callback = move |req: &Request, resp: Response| {
                    let key =
                        req.headers().get("x-td-apikey").map(|v| v.to_str().unwrap().to_owned());
                    *record.lock().unwrap() = (key, req.uri().to_string());
                    Ok(resp)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    continue;
                };
                let (api_key, uri) = seen.lock().unwrap().clone();
                let conn = FakeConnection { api_key, uri, accepted_at: Instant::now(), ws };
                if tx.send(conn).is_err() {
                    break;
                }
            }
        });
        Self { url, accepted }
    }

    /// The next accepted connection; panics after `within`.
    pub async fn next_connection(&mut self, within: Duration) -> FakeConnection {
        tokio::time::timeout(within, self.accepted.recv())
            .await
            .expect("the client did not connect in time")
            .expect("the accept loop stopped")
    }

    /// Whether a connection arrives within `within`.
    pub async fn connection_within(&mut self, within: Duration) -> Option<FakeConnection> {
        tokio::time::timeout(within, self.accepted.recv()).await.ok().flatten()
    }
}

/// A subscribe-status frame in the documented format.
pub fn subscribe_status(ok: &[&str], fails: &[(&str, &str)]) -> String {
    let status = if fails.is_empty() { "ok" } else { "warning" };
    json!({
        "event": "subscribe-status",
        "status": status,
        "success": ok.iter().map(|s| json!({"symbol": s, "exchange": "NASDAQ", "country": "United States", "type": "Common Stock"})).collect::<Vec<_>>(),
        "fails": fails.iter().map(|(s, m)| json!({"symbol": s, "message": m})).collect::<Vec<_>>(),
    })
    .to_string()
}

/// A price frame in the documented format; `n` makes each one unique.
pub fn price(symbol: &str, n: u64) -> String {
    format!(
        r#"{{"event":"price","symbol":"{symbol}","currency":"USD","exchange":"NASDAQ","mic_code":"XNGS","type":"Common Stock","timestamp":{},"price":{}.{:04},"day_volume":{}}}"#,
        1_700_000_000 + n,
        100 + n,
        n % 10_000,
        1_000 * n
    )
}

impl FakeConnection {
    /// The next JSON text frame the client sent; `None` once the client closed. Panics after `within`.
    pub async fn recv_json(&mut self, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("no message from the client in time");
            match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("client sent JSON"));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads the next client message and checks it is a subscribe; returns its symbols.
    pub async fn expect_subscribe(&mut self) -> Vec<String> {
        let msg = self
            .recv_json(Duration::from_secs(10))
            .await
            .expect("client closed instead of subscribing");
        assert_eq!(msg["action"], "subscribe", "expected a subscribe, got {msg}");
        msg["params"]["symbols"]
            .as_str()
            .expect("symbols is a comma-separated string")
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    /// Sends a close frame (a clean server-side close).
    pub async fn close(mut self) {
        self.ws.close(None).await.unwrap();
    }

    /// Reads until the client's close frame, skipping other frames, without answering it yet; `false` when
    /// the connection ended without one. Panics after `within`.
    pub async fn recv_close(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("no close frame from the client in time")
            {
                Some(Ok(Message::Close(_))) => return true,
                None | Some(Err(_)) => return false,
                Some(Ok(_)) => {}
            }
        }
    }

    /// After [`FakeConnection::recv_close`]: sends the close reply tungstenite queued, then waits up to
    /// `within` for the client to drop the connection.
    pub async fn answer_close(mut self, within: Duration) {
        // The next read flushes the queued reply, then ends when the client closes the TCP connection.
        let end = tokio::time::timeout(within, self.ws.next())
            .await
            .expect("the client kept the connection open after the close reply");
        assert!(matches!(end, None | Some(Err(_))), "frame after the close handshake: {end:?}");
    }

    /// Drops the TCP connection without a close frame.
    pub fn drop_connection(self) {
        drop(self);
    }
}
