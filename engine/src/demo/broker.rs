//! The demo's Kafka-protocol broker: librdkafka's in-process mock cluster.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::{EngineError, Result};

/// A one-broker mock cluster listening on 127.0.0.1, alive until dropped.
///
/// Its admin API never answers, so topics are created through the mock's own interface. The
/// cluster is not `Send`: keep it in the task that created it.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts the cluster with `topics` (name, partitions).
    pub fn start(topics: &[(&str, i32)]) -> Result<Self> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            EngineError::connector("demo broker", format!("{what}: {e}"))
        };
        let cluster = MockCluster::new(1)
            .map_err(|e| failed("cannot start librdkafka's mock cluster", &e))?;
        for (topic, partitions) in topics {
            cluster
                .create_topic(topic, *partitions, 1)
                .map_err(|e| failed(&format!("cannot create topic {topic}"), &e))?;
        }
        Ok(Self { cluster })
    }

    /// The `bootstrap.servers` of the cluster (`127.0.0.1:PORT`).
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
