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

    /// Who is at fault and what the engine does about it, decided by where the error was
    /// raised (the variant) and, for DataFusion, by its cause ([`datafusion_class`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Sql { .. } | Self::Config(_) => ErrorClass::User,
            Self::Fenced(_) => ErrorClass::Superseded,
            Self::Connector { .. } | Self::Io { .. } => ErrorClass::Transient,
            Self::Execution(err) => datafusion_class(err),
            Self::Internal(_) => ErrorClass::Internal,
        }
    }

    /// Whether trying again later can help: an outage of the outside world.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Whether the user can fix this by editing a query file or a flag.
    pub fn is_user_error(&self) -> bool {
        matches!(self, Self::Sql { .. } | Self::Config(_))
    }
}

/// What kind of failure an error is, which decides what the engine does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The outside world is unavailable (network, timeouts, a broker or Cassandra down, a file
    /// system error): retried with backoff, forever; the query shows as not ready meanwhile.
    Transient,
    /// One record cannot be processed (decoding, a cast or function failing on its values): the
    /// record goes to the dead-letter destination and the micro-batch goes on without it.
    Data,
    /// The query or the configuration is wrong: the query stops with the position to fix.
    User,
    /// A broken invariant, a bug: the query stops with the error and `/readyz` turns unready;
    /// never retried.
    Internal,
    /// Another replica took the work over: this one stops quietly.
    Superseded,
}

impl ErrorClass {
    /// The class's name as metrics and `/readyz` show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Data => "data",
            Self::User => "user",
            Self::Internal => "internal",
            Self::Superseded => "superseded",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The class of a DataFusion error by its cause: evaluating a value (a cast, arithmetic, a
/// function's own error) is data; I/O inside DataFusion is transient; anything else (a plan
/// that no longer fits its input, exhausted resources, a bug) is internal.
pub fn datafusion_class(err: &DataFusionError) -> ErrorClass {
    use datafusion::arrow::error::ArrowError;
    match err {
        DataFusionError::Context(_, inner) => datafusion_class(inner),
        DataFusionError::Shared(inner) => datafusion_class(inner),
        DataFusionError::Diagnostic(_, inner) => datafusion_class(inner),
        DataFusionError::Execution(_) => ErrorClass::Data,
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::CastError(_)
            | ArrowError::ComputeError(_)
            | ArrowError::DivideByZero
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::ParseError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::JsonError(_)
            | ArrowError::CsvError(_) => ErrorClass::Data,
            ArrowError::IoError(..) => ErrorClass::Transient,
            _ => ErrorClass::Internal,
        },
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => ErrorClass::Transient,
        DataFusionError::External(inner) => match inner.downcast_ref::<std::io::Error>() {
            Some(_) => ErrorClass::Transient,
            None => ErrorClass::Internal,
        },
        _ => ErrorClass::Internal,
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
