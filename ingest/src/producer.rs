//! Kafka producer for price events: idempotent, compressed, key = symbol, value = the event JSON.
//!
//! librdkafka retries failed sends itself (idempotence keeps retries from duplicating or reordering);
//! a message that still fails after `kafka.delivery_timeout` is counted as a delivery error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::config::KafkaConfig;
use crate::metrics::names;

/// A producer failure that retrying the same call cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// librdkafka refused the configuration.
    #[error("cannot create the Kafka producer for {brokers}: {source}")]
    Create {
        /// Configured bootstrap servers.
        brokers: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A message could not be enqueued (too large, unknown topic, fatal producer state...).
    #[error("cannot enqueue a message for topic {topic}: {source}")]
    Enqueue {
        /// Target topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The topic could not be created.
    #[error("cannot create topic {topic} ({partitions} partitions) on {brokers}: {message}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// Partitions asked for.
        partitions: i32,
        /// Configured bootstrap servers.
        brokers: String,
        /// What the broker or client said.
        message: String,
    },
    /// Messages were still in flight when the flush timeout expired.
    #[error("{in_flight} messages still in flight after flushing for {timeout:?}: {source}")]
    Flush {
        /// Messages not yet acknowledged.
        in_flight: i32,
        /// How long the flush waited.
        timeout: Duration,
        /// librdkafka's error.
        source: KafkaError,
    },
}

/// Delivery outcomes counted by the producer's delivery callback.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl DeliveryStats {
    /// Messages the broker acknowledged.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Messages that failed after librdkafka's own retries.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// librdkafka context counting delivery reports.
struct CountingContext {
    stats: Arc<DeliveryStats>,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::KAFKA_DELIVERED).increment(1);
            }
            Err((error, _)) => {
                let failed = self.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::counter!(names::KAFKA_DELIVERY_ERRORS).increment(1);
                // The first failures and then one in a thousand: an unreachable broker fails every message.
                if failed <= 10 || failed.is_multiple_of(1000) {
                    tracing::warn!(%error, failed_total = failed, "Kafka delivery failed after retries");
                }
            }
        }
    }
}

/// Idempotent producer of price events into one topic.
pub struct TickProducer {
    inner: ThreadedProducer<CountingContext>,
    topic: String,
    stats: Arc<DeliveryStats>,
}

impl TickProducer {
    /// Creates the producer (librdkafka connects lazily, in its own threads).
    pub fn new(config: &KafkaConfig) -> Result<Self, ProducerError> {
        let stats = Arc::new(DeliveryStats::default());
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", "mdsp-ingest")
            .set("enable.idempotence", "true")
            .set("compression.type", config.compression.as_librdkafka())
            .set("message.timeout.ms", config.delivery_timeout.as_millis().to_string())
            .set("linger.ms", "5");
        for (key, value) in &config.properties {
            client.set(key, value);
        }
        let inner = client
            .create_with_context(CountingContext { stats: Arc::clone(&stats) })
            .map_err(|source| ProducerError::Create { brokers: config.brokers.clone(), source })?;
        Ok(Self { inner, topic: config.topic.clone(), stats })
    }

    /// Creates the topic first when `kafka.partitions` asks for it (an existing topic is left as
    /// it is), then the producer.
    pub async fn connect(config: &KafkaConfig) -> Result<Self, ProducerError> {
        if let Some(partitions) = config.partitions {
            create_topic(config, partitions).await?;
        }
        Self::new(config)
    }

    /// The topic messages go to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Delivery counters.
    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Enqueues one message; while librdkafka's queue is full, waits for it to drain (backpressure).
    pub async fn send(&self, key: &str, value: &[u8]) -> Result<(), ProducerError> {
        loop {
            match self.try_enqueue(key, value) {
                Ok(true) => return Ok(()),
                Ok(false) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Blocking variant of [`TickProducer::send`] for synchronous callers.
    pub fn send_blocking(&self, key: &str, value: &[u8]) -> Result<(), ProducerError> {
        loop {
            match self.try_enqueue(key, value) {
                Ok(true) => return Ok(()),
                Ok(false) => self.inner.poll(Duration::from_millis(1)),
                Err(e) => return Err(e),
            }
        }
    }

    /// `Ok(false)` when the local queue is full.
    fn try_enqueue(&self, key: &str, value: &[u8]) -> Result<bool, ProducerError> {
        let record = BaseRecord::to(&self.topic).key(key).payload(value);
        match self.inner.send(record) {
            Ok(()) => Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(false),
            Err((source, _)) => Err(ProducerError::Enqueue { topic: self.topic.clone(), source }),
        }
    }

    /// Messages enqueued but not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// [`TickProducer::flush`] on a blocking thread, for async callers.
    pub async fn flush_async(self: &Arc<Self>, timeout: Duration) -> Result<(), ProducerError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.flush(timeout))
            .await
            .expect("flushing does not panic")
    }

    /// Blocks until every enqueued message is delivered or failed, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), ProducerError> {
        self.inner.flush(timeout).map_err(|source| ProducerError::Flush {
            in_flight: self.inner.in_flight_count(),
            timeout,
            source,
        })
    }
}

/// Creates `config.topic` with `partitions` partitions unless it exists.
async fn create_topic(config: &KafkaConfig, partitions: i32) -> Result<(), ProducerError> {
    let error = |message: String| ProducerError::CreateTopic {
        topic: config.topic.clone(),
        partitions,
        brokers: config.brokers.clone(),
        message,
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .create()
        .map_err(|e| error(e.to_string()))?;
    let topic =
        NewTopic::new(&config.topic, partitions, TopicReplication::Fixed(config.replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        admin.create_topics([&topic], &options).await.map_err(|e| error(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(error(code.to_string())),
        }
    }
    Ok(())
}
