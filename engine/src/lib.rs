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
//! Modules, lowest layer first; each imports only modules below it (the table in
//! docs/architecture.md, checked by `engine/tests/it/layers.rs`):
//!
//! * [`error`]: every error, and where it happened.
//! * [`options`] is the `WITH` options bag that declarations and connectors read.
//! * [`time`] and [`state`] are pure and deterministic; [`telemetry`] holds the metrics and the
//!   HTTP endpoints; [`slot`] is the plan leaf a micro-batch is put into.
//! * [`sql`] knows syntax and nothing about connectors; [`checkpoint`] keeps a query's state on
//!   disk.
//! * [`connector`] knows files and servers and nothing about SQL.
//! * [`catalog`] resolves declared tables.
//! * [`planner`] knows DataFusion and nothing about the network; [`isolate`] keeps a record
//!   that fails an evaluation from failing the records around it.
//! * [`runtime`] wires them together; [`snapshot`] reads declared tables as they are now.
//! * [`repl`] is the REPL's logic: statements, live queries, completion; it prints nothing.
//! * `demo` (feature `demo`, on by default) runs all of it in one process on embedded servers.
//! * [`cli`] parses arguments and is the only module that prints.

pub mod catalog;
pub mod checkpoint;
pub mod cli;
pub mod connector;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod isolate;
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
