//! The demo's market feed: `ingest simulate` as a library, producing TwelveData-shaped price
//! events to the embedded broker in real time, key = symbol.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ingest::config::KafkaConfig;
use ingest::producer::TickProducer;
use ingest::simulate::{GeneratorConfig, Pacing, TickGenerator, produce};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{EngineError, Result};

/// How long stopping waits for produced events to be acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The simulator, running on its own task until [`Feed::stop`].
pub struct Feed {
    producer: Arc<TickProducer>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<u64>>,
}

fn feed_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::connector("demo feed", e.to_string())
}

impl Feed {
    /// Starts producing `rate` events per second over `symbols` instruments to `topic`, with
    /// event times starting now.
    pub fn start(brokers: &str, topic: &str, symbols: usize, rate: f64) -> Result<Self> {
        let start = SystemTime::now();
        let seed = start.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut generator = TickGenerator::new(&GeneratorConfig { symbols, rate, seed, start })
            .map_err(|e| EngineError::Config(e.to_string()))?;
        let config = KafkaConfig {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            ..KafkaConfig::default()
        };
        let producer = Arc::new(TickProducer::new(&config).map_err(feed_error)?);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let producer = Arc::clone(&producer);
            let shutdown = shutdown.clone();
            async move {
                let pacing = Pacing::Realtime(rate);
                let sent = produce(&mut generator, &producer, None, pacing, &shutdown)
                    .await
                    .map_err(feed_error)?;
                producer.flush_async(FLUSH_TIMEOUT).await.map_err(feed_error)?;
                Ok(sent)
            }
        });
        Ok(Self { producer, shutdown, task })
    }

    /// Events the broker has acknowledged.
    pub fn delivered(&self) -> u64 {
        self.producer.stats().delivered()
    }

    /// Whether the simulator is still producing (it stops by itself only on an error).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops producing, waits for what was produced to be acknowledged, and returns how many
    /// events were produced.
    pub async fn stop(self) -> Result<u64> {
        self.shutdown.cancel();
        self.task.await.map_err(|e| EngineError::Internal(format!("demo feed panicked: {e}")))?
    }
}
