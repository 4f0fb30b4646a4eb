//! The engine's error type: who is at fault, where, and whether a retry can help.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::error::DataFusionError;

/// A position in a query file, 1-based, as editors show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file the statement came from.
    pub file: Arc<PathBuf>,
    /// Line, starting at 1.
    pub line: u64,
    /// Column, starting at 1.
    pub column: u64,
}

impl Location {
    /// A location in `file` at `line`:`column`.
    pub fn new(file: &Arc<PathBuf>, line: u64, column: u64) -> Self {
        Self { file: Arc::clone(file), line: line.max(1), column: column.max(1) }
    }

    /// The first character of `file`.
    pub fn start_of(file: &Path) -> Self {
        Self { file: Arc::new(file.to_path_buf()), line: 1, column: 1 }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Everything that can go wrong in the engine.
///
/// Variants say who is at fault: the user's SQL or configuration ([`EngineError::Sql`],
/// [`EngineError::Config`]), the outside world ([`EngineError::Io`], [`EngineError::Connector`]) or
/// the engine itself ([`EngineError::Internal`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A mistake in a query file, with its position.
    #[error("{location}: {message}")]
    Sql {
        /// Where the mistake is.
        location: Location,
        /// What is wrong, and what to do about it.
        message: String,
    },
    /// Wrong process configuration (flags, environment).
    #[error("configuration: {0}")]
    Config(String),
    /// Another replica took over this work (a Kafka partition); this one must stop.
    #[error("taken over: {0}")]
    Fenced(String),
    /// A connector could not read or write.
    #[error("{connector}: {message}")]
    Connector {
        /// The connector, with the table it serves (`filesystem source ticks`).
        connector: String,
        /// What failed.
        message: String,
    },
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// DataFusion failed while executing a plan that had been accepted.
    #[error("query execution: {0}")]
    Execution(#[from] DataFusionError),
    /// A broken invariant: a bug in the engine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// A mistake in a query file.
    pub fn sql(location: Location, message: impl Into<String>) -> Self {
        Self::Sql { location, message: message.into() }
    }

    /// A connector failure.
    pub fn connector(connector: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Connector { connector: connector.into(), message: message.into() }
    }

    /// An I/O failure with what the engine was doing at the time.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    /// Whether trying again later can help: not for the user's mistakes, nor for work another
    /// replica took over.
    pub fn is_transient(&self) -> bool {
        !self.is_user_error() && !matches!(self, Self::Fenced(_))
    }

    /// Whether the user can fix this by editing a query file or a flag.
    pub fn is_user_error(&self) -> bool {
        matches!(self, Self::Sql { .. } | Self::Config(_))
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// `return Err(EngineError::sql(location, format!(...)))`.
#[macro_export]
macro_rules! sql_err {
    ($location:expr, $($arg:tt)*) => {{
        #[allow(unused_qualifications)]
        let err = $crate::error::EngineError::sql($location.clone(), format!($($arg)*));
        Err(err)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        // Errors travel through every Result in the hot path; keep them a few words wide.
        assert!(size_of::<EngineError>() <= 72, "{}", size_of::<EngineError>());
    }

    #[test]
    fn sql_error_reads_file_line_column() {
        let location = Location::new(&Arc::new(PathBuf::from("q/a.sql")), 3, 7);
        let err = EngineError::sql(location, "unknown column 'x'");
        assert_eq!(err.to_string(), "q/a.sql:3:7: unknown column 'x'");
    }
}
