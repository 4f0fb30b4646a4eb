//! Membership of a consumer group, for replicas that split a topic (`'scan.partition-assignment'
//! = 'group'`).
//!
//! The member joins the group and learns which partitions the group gives this replica, but
//! reads nothing itself: every partition it is given is paused at once and read by a source of
//! its own ([`KafkaSource::for_partition`](super::KafkaSource::for_partition)). Offsets are
//! committed through the member, as a broker only takes commits from the group's members.
//!
//! Rebalances are eager: when partitions are taken away, the group waits in
//! [`Change::Revoked`] until this replica says it stopped reading them and saved their last
//! checkpoint, so the next owner restores exactly where this one stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use tokio::sync::mpsc;

use super::KafkaOptions;
use crate::error::{EngineError, Result};

/// How long a rebalance waits for this replica to stop reading revoked partitions.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the member serves the group's callbacks.
const SERVE_INTERVAL: Duration = Duration::from_millis(100);

/// A change of the partitions this replica reads.
#[derive(Debug)]
pub enum Change {
    /// The group gave these partitions to this replica.
    Assigned(Vec<i32>),
    /// The group takes these partitions away; send on `stopped` once they are no longer read
    /// and their last checkpoint is saved.
    Revoked {
        /// The partitions taken away.
        partitions: Vec<i32>,
        /// Acknowledges the revocation.
        stopped: std_mpsc::Sender<()>,
    },
}

/// Passes the group's rebalances on as [`Change`]s.
struct MemberContext {
    topic: String,
    changes: mpsc::UnboundedSender<Change>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else { return };
        let partitions = partitions_of(list, &self.topic);
        let (stopped, acknowledged) = std_mpsc::channel();
        if partitions.is_empty()
            || self
                .changes
                .send(Change::Revoked { partitions: partitions.clone(), stopped })
                .is_err()
        {
            return;
        }
        if acknowledged.recv_timeout(REVOKE_TIMEOUT).is_err() {
            tracing::warn!(topic = %self.topic, ?partitions, "partitions handed over before their reading stopped");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // The member only holds the partitions; their own sources read them.
                if let Err(error) = consumer.pause(list) {
                    tracing::warn!(topic = %self.topic, %error, "cannot pause the member's partitions");
                }
                let partitions = partitions_of(list, &self.topic);
                if !partitions.is_empty()
                    && self.changes.send(Change::Assigned(partitions)).is_err()
                {
                    tracing::debug!(topic = %self.topic, "partitions assigned while leaving");
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => {
                tracing::warn!(topic = %self.topic, %error, "consumer group rebalance failed");
            }
        }
    }
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    let mut partitions: Vec<i32> =
        list.elements_for_topic(topic).iter().map(|e| e.partition()).collect();
    partitions.sort_unstable();
    partitions
}

/// This replica's membership in a consumer group.
pub struct GroupMember {
    group: String,
    consumer: Arc<BaseConsumer<MemberContext>>,
    stop: Arc<AtomicBool>,
    serving: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember").field("group", &self.group).finish()
    }
}

impl GroupMember {
    /// Joins `group` for the topic of `options` (table `table`). The changes of this replica's
    /// partitions arrive on the returned channel, the first once the group assigned them.
    pub fn join(
        table: &str,
        group: &str,
        options: &KafkaOptions,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Change>)> {
        let error = |e: rdkafka::error::KafkaError| {
            EngineError::connector(
                format!("kafka source '{table}'"),
                format!("joining group '{group}': {e}"),
            )
        };
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &options.bootstrap_servers);
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let (changes, received) = mpsc::unbounded_channel();
        let context = MemberContext { topic: options.topic.clone(), changes };
        let consumer: BaseConsumer<MemberContext> =
            config.create_with_context(context).map_err(error)?;
        consumer.subscribe(&[options.topic.as_str()]).map_err(error)?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let serving = {
            let (consumer, stop) = (Arc::clone(&consumer), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("group-{group}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // Only callbacks are served here: the member's partitions are paused.
                        if let Some(Err(error)) = consumer.poll(SERVE_INTERVAL) {
                            tracing::debug!(%error, "consumer group member");
                        }
                    }
                })
                .map_err(|e| EngineError::Internal(format!("cannot start the group member: {e}")))?
        };
        let member =
            Self { group: group.to_string(), consumer, stop, serving: Mutex::new(Some(serving)) };
        Ok((member, received))
    }

    /// Commits `offsets` (partition, next offset) of `topic` to the group.
    pub fn commit(&self, topic: &str, offsets: &[(i32, i64)]) -> KafkaResult<()> {
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in offsets {
            list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))?;
        }
        self.consumer.commit(&list, CommitMode::Sync)
    }

    /// The consumer group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Leaves the group (blocking: run it off the async threads). Drop the receiver of
    /// [`Change`]s first: the revocation that leaving causes is then not waited for.
    pub fn leave(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let serving = self.serving.lock().map(|mut s| s.take()).unwrap_or_default();
        if let Some(serving) = serving
            && serving.join().is_err()
        {
            tracing::warn!(group = %self.group, "the group member's thread panicked");
        }
        self.consumer.unsubscribe();
        // Serve the revocation that leaving causes; nothing is listening any more.
        for _ in 0..10 {
            if self.consumer.assignment().map_or(true, |a| a.count() == 0) {
                break;
            }
            let _ = self.consumer.poll(SERVE_INTERVAL);
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
