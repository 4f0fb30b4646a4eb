//! `/metrics`, `/healthz` and `/readyz` on the admin address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::error::{EngineError, Result};

/// Whether the engine is ready to serve (all queries started).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the engine ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Binds `addr` and serves the endpoints until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<SocketAddr> {
    let handle = super::metrics::install();
    let app = Router::new()
        .route(
            "/metrics",
            get(move || async move {
                ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                if readiness.get() {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        EngineError::io(format!("cannot listen on {addr} for /metrics (use --metrics-addr)"), e)
    })?;
    let bound = listener.local_addr().map_err(|e| EngineError::io("metrics listener", e))?;
    tokio::spawn(async move {
        let served =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(err) = served {
            tracing::error!(%err, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}
