//! `ingest run`: the TwelveData feed into Kafka, optionally recorded to a JSON-lines capture.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{ApiKey, IngestConfig};
use crate::metrics::Health;
use crate::producer::{ProducerError, TickProducer};
use crate::sink::{KafkaSink, LineSink, Recording};
use crate::twelvedata::client::{ClientError, ClientStats, TwelveDataClient};

/// How long a shutdown waits for in-flight messages (inside Kubernetes' default 30 s grace period).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(25);

/// Why `ingest run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration has no symbols.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The producer could not be created or flushed.
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// The WebSocket client stopped.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The capture file could not be created or written.
    #[error("capture file {path}: {source}")]
    Record {
        /// Capture path.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// WebSocket counters.
    pub client: ClientStats,
    /// Symbols the server refused.
    pub refused: Vec<String>,
    /// Messages the broker acknowledged.
    pub delivered: u64,
    /// Messages that failed after retries.
    pub delivery_errors: u64,
}

/// Streams TwelveData price events into Kafka until `shutdown`, then flushes everything in flight.
pub async fn run(
    config: &IngestConfig,
    api_key: ApiKey,
    record: Option<&Path>,
    health: Arc<Health>,
    shutdown: &CancellationToken,
) -> Result<RunSummary, RunError> {
    config.require_symbols()?;
    let producer = Arc::new(TickProducer::connect(&config.kafka).await?);
    let mut client = TwelveDataClient::new(config.twelvedata.clone(), api_key, health);
    let kafka = KafkaSink(Arc::clone(&producer));
    let streamed = match record {
        None => client.run(&mut kafka.clone(), shutdown).await,
        Some(path) => {
            let record_err = |source| RunError::Record { path: path.to_owned(), source };
            let file = std::fs::File::create(path).map_err(record_err)?;
            let mut sink =
                Recording { inner: kafka.clone(), capture: LineSink::new(BufWriter::new(file)) };
            let streamed = client.run(&mut sink, shutdown).await;
            sink.capture.flush().map_err(record_err)?;
            streamed
        }
    };
    tracing::info!(in_flight = producer.in_flight(), "flushing the Kafka producer");
    let flushed = producer.flush_async(FLUSH_TIMEOUT).await;
    streamed?;
    flushed?;
    Ok(RunSummary {
        client: client.stats().clone(),
        refused: client.refused_symbols().iter().cloned().collect(),
        delivered: producer.stats().delivered(),
        delivery_errors: producer.stats().failed(),
    })
}
