//! `ingest`: the TwelveData WebSocket feed into Kafka, plus a market-data simulator.
//!
//! ```text
//!  TwelveData WS ──▶ twelvedata::client ──▶ sink::PriceSink ──▶ producer (Kafka, key = symbol)
//!   (subscribe, heartbeat,      │                  └──────▶ capture file (--record) ──▶ replay
//!    reconnect with backoff)    └── metrics (/metrics, /healthz, /readyz)
//!  simulate::TickGenerator ──▶ JSON lines (stdout) or producer
//!  logging (stderr: log lines, the final error, panics) ──▶ redact::Redactor (the API key never shows)
//! ```
//!
//! The binary (`ingest run | simulate | replay`) is a thin CLI over these modules; the engine's demo and
//! benchmarks use [`simulate::TickGenerator`] directly.

pub mod backoff;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod producer;
pub mod redact;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod sink;
pub mod twelvedata;
