//! Metrics and the HTTP endpoints that expose them.

pub mod health;
pub mod http;
pub mod metrics;
