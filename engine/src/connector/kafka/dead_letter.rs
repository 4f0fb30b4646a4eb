//! A Kafka source's `dead-letter.topic`: every bad record produced there with its value, its key,
//! and headers saying where it came from (`source.topic`, `source.partition`, `source.offset`, or
//! `source.location` for a record found bad after the query computed it) and what is wrong
//! (`error`) and which query found it bad (`query`).

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::KafkaOptions;
use super::source::{REQUEST_TIMEOUT, is_client_property};
use crate::connector::dead_letter::DeadLetterWriter;
use crate::connector::{Malformed, RecordLocation};
use crate::error::{EngineError, Result};

/// Produces bad records to the dead-letter topic.
pub struct KafkaDeadLetter {
    table: String,
    query: String,
    topic: String,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaDeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDeadLetter").field("topic", &self.topic).finish()
    }
}

impl KafkaDeadLetter {
    /// A producer to the `dead-letter.topic` of `options` (an idempotent one, on the source's
    /// brokers and security settings).
    pub fn new(table: &str, query: &str, options: &KafkaOptions) -> Result<Self> {
        let topic = options.dead_letter_topic.clone().unwrap_or_default();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &options.bootstrap_servers)
            .set("enable.idempotence", "true");
        for (key, value) in options.properties.iter().filter(|(k, _)| is_client_property(k)) {
            config.set(key, value);
        }
        let producer = config.create().map_err(|e| {
            EngineError::connector(format!("kafka dead-letter topic '{topic}'"), e.to_string())
        })?;
        Ok(Self { table: table.to_string(), query: query.to_string(), topic, producer })
    }
}

#[async_trait]
impl DeadLetterWriter for KafkaDeadLetter {
    async fn write(&mut self, records: &[Malformed]) -> Result<()> {
        let sends = records.iter().map(|bad| {
            let mut texts: Vec<(&'static str, String)> = match bad.location() {
                RecordLocation::Message { topic, partition, offset } => vec![
                    ("source.topic", topic.to_string()),
                    ("source.partition", partition.to_string()),
                    ("source.offset", offset.to_string()),
                ],
                other => vec![("source.location", other.to_string())],
            };
            texts.push(("error", bad.error.clone()));
            texts.push(("query", self.query.clone()));
            let headers = texts.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header { key, value: Some(value.as_str()) })
            });
            let payload = bad.record.raw.as_deref().unwrap_or_default();
            let mut message = FutureRecord::to(&self.topic).payload(payload).headers(headers);
            if let Some(key) = &bad.record.key {
                message = message.key(key.as_str());
            }
            self.producer.send(message, REQUEST_TIMEOUT)
        });
        for sent in futures::future::join_all(sends).await {
            if let Err((err, _)) = sent {
                return Err(EngineError::connector(
                    format!("kafka dead-letter topic '{}' of table '{}'", self.topic, self.table),
                    format!("cannot write a bad record: {err}"),
                ));
            }
        }
        Ok(())
    }
}
