//! A streaming SQL engine for market data on Apache DataFusion.
//!
//! Query files declare sources and sinks (`CREATE TABLE ... WITH (connector = ...)`) and
//! continuous queries (`INSERT INTO ... SELECT`). Each query runs in micro-batches of Arrow
//! record batches:
//!
//! ```text
//!  files ─▶ sql (parse, ${VAR}) ─▶ catalog (tables) ─▶ planner (DataFusion plan, split into stages)
//!                                                          │
//!  runtime:  source ─▶ computed columns ─▶ watermark ─▶ window assigner ─▶ pre-plan
//!            ─▶ state (incremental aggregate) ─▶ emit ─▶ post-plan ─▶ sink ─▶ commit
//! ```
//!
//! * [`sql`] knows syntax and nothing about connectors.
//! * [`planner`] knows DataFusion and nothing about the network.
//! * [`connector`] knows files and servers and nothing about SQL.
//! * [`time`] and [`state`] are pure and deterministic.
//! * [`runtime`] wires them together.
//! * [`snapshot`] reads declared tables as they are now, for the REPL.
//! * `demo` (feature `demo`, on by default) runs all of it in one process on embedded servers.

pub mod catalog;
pub mod checkpoint;
pub mod cli;
pub mod connector;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod options;
pub mod planner;
pub mod repl;
pub mod runtime;
pub mod slot;
pub mod snapshot;
pub mod sql;
pub mod state;
pub mod telemetry;
pub mod time;

pub use error::{EngineError, Result};
