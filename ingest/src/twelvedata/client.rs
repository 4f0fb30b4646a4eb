//! The TwelveData WebSocket client: connect → subscribe → heartbeat + read loop → reconnect.
//!
//! Reconnect policy:
//! - every session end is followed by a reconnect: a clean close, a WebSocket or TCP error, a failed
//!   handshake, or a socket silent for `idle_timeout` (no frame at all, not even a heartbeat answer);
//! - the delay before each attempt comes from [`Backoff`]: exponential, capped, jittered; a session that
//!   stayed up for `backoff.reset_after` resets it;
//! - every new session subscribes again to the configured symbols, minus those the server refused
//!   (`subscribe-status` `fails`): refused symbols are reported once and not requested again until the
//!   process restarts; if every symbol is refused, [`TwelveDataClient::run`] stops with an error.
//!
//! Shutdown sends a close frame and waits up to [`CLOSE_REPLY_TIMEOUT`] for the server's close reply.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    ClientMessage, ServerEvent, SubscribeStatus, parse_server_message, truncate_for_log,
};
use crate::backoff::Backoff;
use crate::config::{ApiKey, TwelveDataConfig};
use crate::metrics::{Health, names};
use crate::sink::{PriceSink, SinkError};

/// Header carrying the API key, so it never appears in a URL.
pub const API_KEY_HEADER: &str = "X-TD-APIKEY";

/// How long a shutdown waits for the server's reply to the client's close frame.
pub const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest excerpt of an unexpected frame written to the log.
const LOG_EXCERPT_BYTES: usize = 256;

/// Makes `ring` the process's TLS crypto provider for `wss://`, unless one is installed already.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is in place either way.
        let raced = rustls::crypto::ring::default_provider().install_default().is_err();
        tracing::debug!(raced, "installed the ring TLS crypto provider");
    }
}

/// Why the client stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or API key cannot form a WebSocket request.
    #[error("invalid TwelveData request: {0}")]
    Request(String),
    /// The server refused every configured symbol.
    #[error("TwelveData refused every configured symbol: {}", refused.iter().cloned().collect::<Vec<_>>().join(","))]
    AllSymbolsRefused {
        /// The refused symbols.
        refused: BTreeSet<String>,
    },
    /// The price sink failed.
    #[error("price sink failed: {0}")]
    Sink(#[source] SinkError),
}

/// Why one session ended (each leads to a reconnect, except shutdown and sink failures).
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("shutdown requested")]
    Shutdown,
    #[error("connect failed: {0}")]
    Connect(tungstenite::Error),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("WebSocket error: {0}")]
    Socket(tungstenite::Error),
    #[error("server closed the connection{0}")]
    Closed(String),
    #[error("no frame for {0:?}: socket considered dead")]
    Idle(Duration),
    #[error(transparent)]
    Fatal(ClientError),
}

/// Counts kept across sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// Sessions that completed the WebSocket handshake.
    pub connections: u64,
    /// Reconnect attempts scheduled.
    pub reconnects: u64,
    /// Price events handed to the sink.
    pub prices: u64,
    /// Frames that could not be parsed.
    pub malformed: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
}

/// A TwelveData WebSocket client that keeps a subscription alive.
pub struct TwelveDataClient {
    config: TwelveDataConfig,
    api_key: ApiKey,
    health: Arc<Health>,
    refused: BTreeSet<String>,
    stats: ClientStats,
}

impl TwelveDataClient {
    /// A client for `config.symbols` at `config.url`.
    pub fn new(config: TwelveDataConfig, api_key: ApiKey, health: Arc<Health>) -> Self {
        Self { config, api_key, health, refused: BTreeSet::new(), stats: ClientStats::default() }
    }

    /// Symbols the server refused so far.
    pub fn refused_symbols(&self) -> &BTreeSet<String> {
        &self.refused
    }

    /// Counters since the client was created.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Runs sessions until `shutdown` fires (`Ok`) or a fatal error occurs.
    pub async fn run<S: PriceSink>(
        &mut self,
        sink: &mut S,
        shutdown: &CancellationToken,
    ) -> Result<(), ClientError> {
        install_crypto_provider();
        let mut backoff = Backoff::new(self.config.backoff.clone());
        loop {
            let symbols: Vec<String> = self
                .config
                .symbols
                .iter()
                .filter(|s| !self.refused.contains(*s))
                .cloned()
                .collect();
            if symbols.is_empty() {
                return Err(ClientError::AllSymbolsRefused { refused: self.refused.clone() });
            }
            let mut connected_at = None;
            let end = self.session(&symbols, sink, shutdown, &mut connected_at).await;
            self.health.set_subscribed(false);
            metrics::gauge!(names::WS_CONNECTED).set(0.0);
            match end {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Fatal(error) => return Err(error),
                other => tracing::warn!(reason = %other, "TwelveData session ended"),
            }
            if let Some(at) = connected_at {
                backoff.connection_ended(Instant::now().duration_since(at));
            }
            let delay = backoff.next_delay(rand::rng().random::<f64>());
            self.stats.reconnects += 1;
            metrics::counter!(names::WS_RECONNECTS).increment(1);
            tracing::info!(
                delay_ms = delay.as_millis(),
                attempt = backoff.attempt(),
                "reconnecting to TwelveData"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn request(&self) -> Result<tungstenite::handshake::client::Request, ClientError> {
        let mut request = self
            .config
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Request(format!("url {:?}: {e}", self.config.url)))?;
        let mut key = HeaderValue::from_str(self.api_key.expose()).map_err(|_| {
            ClientError::Request("the API key has characters not allowed in a header".into())
        })?;
        key.set_sensitive(true);
        request.headers_mut().insert(API_KEY_HEADER, key);
        Ok(request)
    }

    async fn session<S: PriceSink>(
        &mut self,
        symbols: &[String],
        sink: &mut S,
        shutdown: &CancellationToken,
        connected_at: &mut Option<Instant>,
    ) -> SessionEnd {
        let request = match self.request() {
            Ok(r) => r,
            Err(e) => return SessionEnd::Fatal(e),
        };
        let connect_timeout = self.config.connect_timeout;
        let connect =
            tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(request));
        let ws = tokio::select! {
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            connected = connect => match connected {
                Err(_) => return SessionEnd::ConnectTimeout(connect_timeout),
                Ok(Err(e)) => return SessionEnd::Connect(e),
                Ok(Ok((ws, _response))) => ws,
            },
        };
        *connected_at = Some(Instant::now());
        self.stats.connections += 1;
        metrics::gauge!(names::WS_CONNECTED).set(1.0);
        tracing::info!(url = %self.config.url, symbols = %symbols.join(","), "connected to TwelveData, subscribing");
        let (mut write, mut read) = ws.split();

        let subscribe = ClientMessage::Subscribe(symbols).to_json();
        if let Err(e) = write.send(Message::text(subscribe)).await {
            return SessionEnd::Socket(e);
        }

        let hb_every = self.config.heartbeat_interval;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + hb_every, hb_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let idle_timeout = self.config.idle_timeout;
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);

        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return self.close(&mut write, &mut read, symbols, sink).await,
                _ = &mut idle => return SessionEnd::Idle(idle_timeout),
                _ = heartbeat.tick() => {
                    if let Err(e) = write.send(Message::text(ClientMessage::Heartbeat.to_json())).await {
                        return SessionEnd::Socket(e);
                    }
                    self.stats.heartbeats += 1;
                    metrics::counter!(names::WS_HEARTBEATS).increment(1);
                }
                frame = read.next() => {
                    idle.as_mut().reset(Instant::now() + idle_timeout);
                    if let Err(end) = self.handle_frame(frame, symbols, sink).await {
                        return end;
                    }
                }
            }
        }
    }

    /// The closing handshake on shutdown: sends a close frame, then reads on (prices still reach the
    /// sink) until the server's close reply or the end of the stream, for at most [`CLOSE_REPLY_TIMEOUT`].
    /// Dropping the socket earlier, with frames unread, would make the kernel reset the connection.
    async fn close<S: PriceSink>(
        &mut self,
        write: &mut (impl futures::Sink<Message, Error = tungstenite::Error> + Unpin),
        read: &mut (impl futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin),
        symbols: &[String],
        sink: &mut S,
    ) -> SessionEnd {
        if let Err(error) = write.send(Message::Close(None)).await {
            tracing::debug!(%error, "close frame not sent");
            return SessionEnd::Shutdown;
        }
        let reply = async {
            loop {
                if let Err(end) = self.handle_frame(read.next().await, symbols, sink).await {
                    return end;
                }
            }
        };
        match tokio::time::timeout(CLOSE_REPLY_TIMEOUT, reply).await {
            Ok(SessionEnd::Closed(_)) => tracing::debug!("TwelveData connection closed cleanly"),
            Ok(SessionEnd::Fatal(error)) => return SessionEnd::Fatal(error),
            Ok(other) => tracing::debug!(reason = %other, "connection ended while closing"),
            Err(_) => tracing::warn!(
                timeout = ?CLOSE_REPLY_TIMEOUT,
                "TwelveData did not answer the close frame in time; dropping the connection"
            ),
        }
        SessionEnd::Shutdown
    }

    /// Handles one item of the read stream; `Err` ends the session.
    async fn handle_frame<S: PriceSink>(
        &mut self,
        frame: Option<Result<Message, tungstenite::Error>>,
        symbols: &[String],
        sink: &mut S,
    ) -> Result<(), SessionEnd> {
        let received = Instant::now();
        let text = match frame {
            None => return Err(SessionEnd::Closed(String::new())),
            Some(Err(e)) => return Err(SessionEnd::Socket(e)),
            Some(Ok(Message::Close(close))) => {
                return Err(SessionEnd::Closed(close.map_or_else(String::new, |c| {
                    format!(" (code {}, reason {:?})", c.code, c.reason.as_str())
                })));
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(bytes))) => match tungstenite::Utf8Bytes::try_from(bytes) {
                Ok(text) => text,
                Err(_) => {
                    self.malformed("binary frame that is not UTF-8", "");
                    return Ok(());
                }
            },
            // Pings are answered by tungstenite; any frame proves the socket alive.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => return Ok(()),
        };
        self.handle_text(text.as_str(), symbols, sink, received).await.map_err(SessionEnd::Fatal)
    }

    async fn handle_text<S: PriceSink>(
        &mut self,
        text: &str,
        requested: &[String],
        sink: &mut S,
        received: Instant,
    ) -> Result<(), ClientError> {
        let event = match parse_server_message(text) {
            Ok(event) => event,
            Err(error) => {
                self.malformed(&error.to_string(), text);
                return Ok(());
            }
        };
        metrics::counter!(names::WS_MESSAGES, "event" => event.kind()).increment(1);
        match event {
            ServerEvent::Price(price) => {
                self.health.price_seen();
                self.stats.prices += 1;
                sink.on_price(&price.symbol, text, received).await.map_err(ClientError::Sink)?;
                metrics::histogram!(names::FRAME_TO_PRODUCE)
                    .record(received.elapsed().as_secs_f64());
            }
            ServerEvent::SubscribeStatus(status) => self.on_subscribe_status(status, requested),
            ServerEvent::Heartbeat { status } => {
                if status.as_deref().is_some_and(|s| s != "ok") {
                    tracing::warn!(status = ?status, "heartbeat answered with a non-ok status");
                }
            }
            ServerEvent::Error { messages } => {
                tracing::warn!(messages = ?messages, "TwelveData reported an error");
            }
            ServerEvent::Unknown { event } => {
                tracing::warn!(
                    event = %truncate_for_log(&event, 64),
                    frame = %truncate_for_log(text, LOG_EXCERPT_BYTES),
                    "unexpected event type from TwelveData"
                );
            }
        }
        Ok(())
    }

    fn malformed(&mut self, error: &str, text: &str) {
        self.stats.malformed += 1;
        metrics::counter!(names::WS_MESSAGES, "event" => "malformed").increment(1);
        // A stream of garbage must not flood the log: the first ones, then one in a thousand.
        let n = self.stats.malformed;
        if n <= 20 || n.is_multiple_of(1000) {
            tracing::warn!(
                error,
                frame = %truncate_for_log(text, LOG_EXCERPT_BYTES),
                malformed_total = n,
                "ignoring malformed frame from TwelveData"
            );
        }
    }

    fn on_subscribe_status(&mut self, status: SubscribeStatus, requested: &[String]) {
        let accepted: Vec<&str> = status.success.iter().map(|s| s.symbol.as_str()).collect();
        let mut newly_refused = Vec::new();
        for fail in &status.fails {
            let echoed = fail.symbol.trim().to_ascii_uppercase();
            // The server may echo `RY` for a requested `RY:TSX`: refuse what we actually asked for.
            let matched = requested
                .iter()
                .filter(|r| **r == echoed || r.split(':').next() == Some(echoed.as_str()));
            for symbol in matched {
                if self.refused.insert(symbol.clone()) {
                    newly_refused.push(format!(
                        "{symbol} ({})",
                        fail.message.as_deref().unwrap_or("no reason given")
                    ));
                }
            }
        }
        if !newly_refused.is_empty() {
            tracing::warn!(
                refused = %newly_refused.join(", "),
                "TwelveData refused symbols; they will not be requested again until restart"
            );
        }
        if status.status == "error" || !status.messages.is_empty() {
            tracing::warn!(status = %status.status, messages = ?status.messages, "subscribe answered with an error");
        }
        tracing::info!(status = %status.status, accepted = %accepted.join(","), "subscribe-status received");
        self.health.set_subscribed(!accepted.is_empty());
        metrics::gauge!(names::WS_SUBSCRIBED_SYMBOLS).set(accepted.len() as f64);
        metrics::gauge!(names::WS_REFUSED_SYMBOLS).set(self.refused.len() as f64);
    }
}
