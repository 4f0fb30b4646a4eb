//! The REPL's logic, apart from the terminal: the tables and views of the query files registered
//! in a DataFusion session ([`Session`]), each statement turned into rows, a message or a live
//! windowed query ([`Outcome`], [`LiveQuery`]), and the names a prompt completes
//! ([`Completions`]). Nothing here prints: `cli/repl` reads the input and shows the results.

mod complete;
mod live;
mod session;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;

pub use self::complete::{Completions, Names};
pub use self::live::{Following, LiveQuery};
pub use self::session::Session;
use crate::catalog::{df_message, df_position};
use crate::error::EngineError;

/// A statement that failed: what went wrong, and where in the statement (line, column from 1)
/// when DataFusion or sqlparser said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Line and column in the statement.
    pub position: Option<(u64, u64)>,
    /// What went wrong.
    pub message: String,
}

impl From<DataFusionError> for Failure {
    fn from(err: DataFusionError) -> Self {
        Self { position: df_position(&err), message: df_message(&err) }
    }
}

impl From<datafusion::arrow::error::ArrowError> for Failure {
    fn from(err: datafusion::arrow::error::ArrowError) -> Self {
        DataFusionError::from(err).into()
    }
}

impl From<EngineError> for Failure {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Sql { location, message } => {
                Self { position: Some((location.line, location.column)), message }
            }
            EngineError::Execution(err) => err.into(),
            other => Self { position: None, message: other.to_string() },
        }
    }
}

/// The rows a statement produced.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Their columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl Rows {
    /// How many rows there are.
    pub fn count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// What a statement did.
pub enum Outcome {
    /// It produced rows.
    Rows(Rows),
    /// It changed something and has no rows (`CREATE VIEW`, `SET`).
    Done(String),
    /// It is a windowed query: it runs as a stream.
    Live(Box<LiveQuery>),
}
