//! Prometheus metrics and health endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! Metrics are recorded through the `metrics` facade everywhere in the crate; [`serve`] installs the
//! Prometheus recorder and the HTTP listener. Without it, recording is a no-op (library use, tests).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Metric names (snake case, unit suffixes; labels are bounded sets, never symbols).
pub mod names {
    /// Counter, label `event`: price, subscribe_status, heartbeat, error, unknown, malformed.
    pub const WS_MESSAGES: &str = "ingest_ws_messages_received_total";
    /// Counter: WebSocket reconnect attempts.
    pub const WS_RECONNECTS: &str = "ingest_ws_reconnects_total";
    /// Gauge: 1 while a WebSocket session is open.
    pub const WS_CONNECTED: &str = "ingest_ws_connected";
    /// Counter: heartbeats sent.
    pub const WS_HEARTBEATS: &str = "ingest_ws_heartbeats_sent_total";
    /// Gauge: symbols the server accepted in the last subscribe-status.
    pub const WS_SUBSCRIBED_SYMBOLS: &str = "ingest_ws_subscribed_symbols";
    /// Gauge: symbols the server refused (not requested again until restart).
    pub const WS_REFUSED_SYMBOLS: &str = "ingest_ws_refused_symbols";
    /// Gauge: seconds since the last price event (computed at scrape time).
    pub const LAST_PRICE_AGE: &str = "ingest_last_price_age_seconds";
    /// Summary: time from receiving a WebSocket frame to handing its message to the producer.
    pub const FRAME_TO_PRODUCE: &str = "ingest_frame_to_produce_seconds";
    /// Counter: messages the broker acknowledged.
    pub const KAFKA_DELIVERED: &str = "ingest_kafka_messages_produced_total";
    /// Counter: messages that failed after librdkafka's retries.
    pub const KAFKA_DELIVERY_ERRORS: &str = "ingest_kafka_delivery_errors_total";
}

/// Liveness and readiness facts shared between the WebSocket client and the HTTP endpoints.
#[derive(Debug, Default)]
pub struct Health {
    subscribed: AtomicBool,
    last_price_unix_ms: AtomicU64,
}

impl Health {
    /// Whether the current session has at least one accepted subscription.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    /// Records whether the current session has accepted subscriptions.
    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Relaxed);
    }

    /// Records that a price event just arrived.
    pub fn price_seen(&self) {
        self.last_price_unix_ms.store(unix_ms(SystemTime::now()), Ordering::Relaxed);
    }

    /// Time since the last price event, `None` before the first.
    pub fn last_price_age(&self) -> Option<Duration> {
        match self.last_price_unix_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(unix_ms(SystemTime::now()).saturating_sub(ms))),
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Another recorder is already installed in this process.
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(#[from] metrics_exporter_prometheus::BuildError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr} for /metrics: {source}")]
    Bind {
        /// Configured address.
        addr: SocketAddr,
        /// I/O error.
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct AppState {
    handle: PrometheusHandle,
    health: Arc<Health>,
}

/// The process-wide recorder: `metrics` accepts one global recorder per process.
static RECORDER: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder on first use and returns its handle.
fn recorder() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = RECORDER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new().set_quantiles(&[0.5, 0.9, 0.99])?.install_recorder()?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Installs the Prometheus recorder (once per process) and serves `/metrics`, `/healthz`, `/readyz` on `addr` until
/// `shutdown` fires. Returns the bound address (useful with port 0) once listening.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<SocketAddr, MetricsError> {
    let handle = recorder()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
    let upkeep = handle.clone();
    let upkeep_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = upkeep_shutdown.cancelled() => break,
                _ = every.tick() => upkeep.run_upkeep(),
            }
        }
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AppState { handle, health });
    tokio::spawn(async move {
        let served =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(bound)
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(age) = state.health.last_price_age() {
        metrics::gauge!(names::LAST_PRICE_AGE).set(age.as_secs_f64());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.handle.render())
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_subscribed() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not subscribed to TwelveData\n")
    }
}
