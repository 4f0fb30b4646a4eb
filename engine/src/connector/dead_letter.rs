//! Where a source's bad records go: the Kafka source's `dead-letter.topic`, the filesystem
//! source's `dead-letter.path`, otherwise a rate-limited log line (every record is counted in
//! `engine_malformed_total` either way).

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{ConnectorSpec, Malformed};
use crate::error::Result;

/// Keeps a source's bad records.
#[async_trait]
pub trait DeadLetterWriter: Send {
    /// Stores `records` durably; an error is retried (the micro-batch holding them is not
    /// checkpointed before this succeeds).
    async fn write(&mut self, records: &[Malformed]) -> Result<()>;
}

/// The dead-letter destination of source table `table` as read by query `query` (every record
/// says which query found it bad: two queries reading one source each judge it by their own
/// expressions).
pub fn open_dead_letter(
    table: &str,
    query: &str,
    spec: &ConnectorSpec,
) -> Result<Box<dyn DeadLetterWriter>> {
    Ok(match spec {
        ConnectorSpec::Kafka(options) => match &options.dead_letter_topic {
            Some(_) => Box::new(super::kafka::KafkaDeadLetter::new(table, query, options)?),
            None => Box::new(LogDeadLetter::new(table, query)),
        },
        ConnectorSpec::Filesystem(options) => match &options.dead_letter_path {
            Some(path) => Box::new(super::filesystem::FileDeadLetter::new(table, query, path)),
            None => Box::new(LogDeadLetter::new(table, query)),
        },
        _ => Box::new(LogDeadLetter::new(table, query)),
    })
}

/// Logs bad records, at most one line per [`LOG_EVERY`] (the metric counts them all).
#[derive(Debug)]
pub struct LogDeadLetter {
    table: String,
    query: String,
    last: Option<Instant>,
    /// Records not logged since the last line.
    unlogged: usize,
}

/// Least time between two log lines about bad records of one source.
const LOG_EVERY: Duration = Duration::from_secs(1);

impl LogDeadLetter {
    /// Logs the bad records of `table` found by `query`.
    pub fn new(table: &str, query: &str) -> Self {
        Self { table: table.to_string(), query: query.to_string(), last: None, unlogged: 0 }
    }
}

#[async_trait]
impl DeadLetterWriter for LogDeadLetter {
    async fn write(&mut self, records: &[Malformed]) -> Result<()> {
        let Some(first) = records.first() else { return Ok(()) };
        if self.last.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            self.unlogged += records.len();
            return Ok(());
        }
        self.last = Some(Instant::now());
        let also = self.unlogged + records.len() - 1;
        self.unlogged = 0;
        tracing::warn!(
            table = %self.table,
            query = %self.query,
            location = %first.location(),
            error = %first.error,
            more_records = also,
            "bad record skipped (declare a dead-letter destination to keep such records)"
        );
        Ok(())
    }
}
