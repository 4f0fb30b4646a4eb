//! Runs planned queries: the micro-batch loop that wires source, stages, state and sink.

pub mod isolate;
pub mod load;
pub mod partitioned;
pub mod pipeline;
pub mod prefetch;
pub mod rows;
pub mod supervisor;

pub use pipeline::{QueryRunner, RunStats, StepOutcome};
