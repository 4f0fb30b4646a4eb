//! `/metrics`, `/healthz` and `/readyz` on the admin address.

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use super::health::Readiness;
use crate::error::{EngineError, Result};

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
                match readiness.status() {
                    (true, text) => (StatusCode::OK, text).into_response(),
                    (false, text) => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
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
