//! Reads a Kafka topic as a stream: every partition of the topic is assigned to this consumer
//! and is one engine partition (index = Kafka partition number). A source made
//! [`for_partition`](KafkaSource::for_partition) reads that one partition only (engine partition
//! 0) and commits through the replica's consumer group member.
//!
//! Reading every partition, the partitions are shared among up to [`MAX_FETCHERS`] consumers
//! (one per core), polled in parallel: librdkafka keeps one fetch request in flight per
//! connection, so one consumer waits on round trips long before the cores are busy.
//!
//! A poll takes what librdkafka has fetched within a short timeout, at most its share of
//! `max_rows` per partition ([`fetch`](super::fetch)). The position is the next offset of every partition that
//! returned rows: restoring it seeks exactly there. The partitions are learnt
//! when reading starts; partitions added to the topic later are read after a restart.
//!
//! A bounded source reads a snapshot: every partition up to its high
//! watermark as fetched when reading starts (the offset after the last message Kafka will
//! return), then reports the partition finished. A partition is also finished when the consumer
//! reaches its end (partition EOF), which covers partitions that end with control records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};

use super::decode::{Chunk, JsonDecoder};
use super::fetch::{Fetched, Request, Share};
use super::group::GroupMember;
use super::{KafkaOptions, StartupMode};
use crate::connector::{
    Malformed, Origins, PartitionBatch, Polled, Record, RecordLocation, RowOrigins, SourceColumn,
    SourceReader,
};
use crate::error::{EngineError, Result};

/// How often the high watermarks (for the consumer lag) are read from the broker.
const HIGH_WATERMARK_REFRESH: Duration = Duration::from_secs(5);
/// Most consumers one source reads with.
const MAX_FETCHERS: usize = 4;
/// Timeout of metadata, offset and commit requests.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams the messages of a Kafka topic.
pub struct KafkaSource {
    table: String,
    /// The consumer group offsets are committed to.
    group: String,
    options: KafkaOptions,
    /// Reads metadata, commits, and fetches the first share of the partitions.
    consumer: Arc<BaseConsumer>,
    /// Consumers fetching the other shares, made like `consumer` from `config`.
    fetchers: Vec<Arc<BaseConsumer>>,
    /// Every consumer with the partitions it fetches, once assigned.
    shares: Vec<Arc<Share>>,
    config: ClientConfig,
    decoder: Arc<JsonDecoder>,
    /// The topic's name, shared by the origins of every row read.
    topic: Arc<str>,
    /// The one partition read, when not all of them.
    only: Option<i32>,
    /// Commits go through this group member rather than through `consumer`.
    member: Option<Arc<GroupMember>>,
    /// The partitions read, once known, in order: engine partition `i` is `read[i]`.
    read: Vec<i32>,
    /// Whether the consumer is assigned to every known partition.
    assigned: bool,
    /// Per partition: the offset after the last message returned by `poll`.
    next: BTreeMap<i32, i64>,
    /// A read of the high watermarks going on in the background.
    high_reading: Option<tokio::task::JoinHandle<KafkaResult<BTreeMap<i32, i64>>>>,
    /// Per partition: the high watermark, as of `high_read`.
    high: BTreeMap<i32, i64>,
    /// When `high` was last asked of the broker.
    high_read: Option<Instant>,
    /// Bounded: the high watermark of every partition when reading started.
    ends: Option<BTreeMap<i32, i64>>,
    /// Bounded: partitions whose end the consumer reached.
    at_end: BTreeSet<i32>,
    /// Bounded: partitions reported finished.
    finished: BTreeSet<i32>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("table", &self.table)
            .field("topic", &self.options.topic)
            .field("next", &self.next)
            .finish()
    }
}

/// The checkpointed position: the topic and the next offset of each partition.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Position {
    topic: String,
    offsets: BTreeMap<i32, i64>,
}

impl KafkaSource {
    /// A source for `table` producing rows of `raw` (whose columns are described by `columns`),
    /// committing to consumer group `group`. Nothing is fetched before the first poll. A
    /// `bounded` source reads every partition up to its high watermark at the first poll and
    /// then reports it finished; otherwise the topic is followed as it grows.
    pub fn new(
        table: &str,
        group: &str,
        options: &KafkaOptions,
        raw: SchemaRef,
        columns: Vec<SourceColumn>,
        bounded: bool,
    ) -> Result<Self> {
        let error = |e: KafkaError| {
            EngineError::connector(format!("kafka source '{table}'"), e.to_string())
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &options.bootstrap_servers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka stops fetching for this long once a partition's local queue is full;
            // its default (1 s) idles the consumer between micro-batches that drain the queue.
            .set("fetch.queue.backoff.ms", "10")
            // A caught-up consumer's fetch waits at the broker at most this long for new
            // messages; brokers that answer only when it expires add it to the latency.
            .set("fetch.wait.max.ms", "100");
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        if bounded {
            // The end of a partition is reported: control records at its end have offsets but
            // no messages, so its last offset may never be delivered.
            config.set("enable.partition.eof", "true");
        }
        let consumer: BaseConsumer = config.create().map_err(error)?;
        Ok(Self {
            table: table.to_string(),
            group: group.to_string(),
            options: options.clone(),
            consumer: Arc::new(consumer),
            fetchers: vec![],
            shares: vec![],
            config,
            decoder: Arc::new(JsonDecoder::new(raw, columns)),
            topic: Arc::from(options.topic.as_str()),
            only: None,
            member: None,
            read: vec![],
            assigned: false,
            next: BTreeMap::new(),
            high: BTreeMap::new(),
            high_read: None,
            high_reading: None,
            ends: bounded.then(BTreeMap::new),
            at_end: BTreeSet::new(),
            finished: BTreeSet::new(),
        })
    }

    /// A source reading partition `partition` only, as a task of a replica that `member` keeps
    /// in the consumer group; offsets are committed through `member`.
    pub fn for_partition(
        table: &str,
        options: &KafkaOptions,
        raw: SchemaRef,
        columns: Vec<SourceColumn>,
        partition: i32,
        member: Arc<GroupMember>,
    ) -> Result<Self> {
        let mut source = Self::new(table, member.group(), options, raw, columns, false)?;
        source.only = Some(partition);
        source.member = Some(member);
        Ok(source)
    }

    /// Following the topic: whether some partition had messages beyond the next offset when the
    /// high watermarks were last read (so a backlog is being worked off).
    fn behind(&self) -> bool {
        self.ends.is_none()
            && self.next.iter().any(|(p, &next)| self.high.get(p).is_some_and(|&high| high > next))
    }

    /// The engine partition of Kafka partition `partition`.
    fn engine_partition(&self, partition: i32) -> Option<usize> {
        self.read.binary_search(&partition).ok()
    }

    /// Asks the broker for every partition's high watermark (for the lag). A failure only
    /// leaves the lag stale.
    ///
    /// The read runs in the background (one request per partition, each a round trip to the
    /// broker), so no micro-batch waits for it: a poll takes the last finished read and starts
    /// the next one when [`HIGH_WATERMARK_REFRESH`] has passed.
    async fn refresh_high_watermarks(&mut self) {
        if self.high_reading.as_ref().is_some_and(tokio::task::JoinHandle::is_finished) {
            let read = self.high_reading.take().expect("checked above").await;
            match read {
                Ok(Ok(high)) => self.high = high,
                Ok(Err(error)) => {
                    tracing::debug!(table = %self.table, %error, "cannot read high watermarks")
                }
                Err(error) => {
                    tracing::debug!(table = %self.table, %error, "watermark task failed")
                }
            }
        }
        let due = self.high_read.is_none_or(|at| at.elapsed() >= HIGH_WATERMARK_REFRESH);
        if due && self.high_reading.is_none() {
            self.high_read = Some(Instant::now());
            let consumer = Arc::clone(&self.consumer);
            let topic = self.options.topic.clone();
            let partitions = self.read.clone();
            self.high_reading = Some(tokio::task::spawn_blocking(move || {
                high_watermarks(&consumer, &topic, &partitions)
            }));
        }
    }

    fn error(&self, message: impl Into<String>) -> EngineError {
        EngineError::connector(format!("kafka source '{}'", self.table), message)
    }

    /// Learns the topic's partitions and assigns them all (or the only one), each at its restored
    /// offset or where the startup mode says.
    async fn assign(&mut self) -> Result<()> {
        let consumer = Arc::clone(&self.consumer);
        let mut fetchers = std::mem::take(&mut self.fetchers);
        let config = self.config.clone();
        let topic = self.options.topic.clone();
        let startup = self.options.startup;
        let next = self.next.clone();
        let only = self.only;
        // A bounded source fixes where it ends when it first starts reading.
        let fetch_ends = self.ends.as_ref().is_some_and(BTreeMap::is_empty);
        type Assigned = (Vec<i32>, BTreeMap<i32, i64>, Vec<Arc<BaseConsumer>>, Vec<Arc<Share>>);
        // The old queues go before the partitions are assigned again.
        self.shares.clear();
        let (assigned, ends, fetchers, shares) =
            tokio::task::spawn_blocking(move || -> Result<Assigned, String> {
                let metadata = consumer
                    .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
                    .map_err(|e| format!("cannot read the metadata of topic '{topic}': {e}"))?;
                let partitions = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| (t.error(), t.partitions().len()));
                let count = match partitions {
                    Some((None, n)) if n > 0 => n,
                    Some((Some(e), _)) => return Err(format!("topic '{topic}': {e:?}")),
                    _ => {
                        return Err(format!("topic '{topic}' does not exist or has no partitions"));
                    }
                };
                let read: Vec<i32> = match only {
                    Some(p) if (0..count as i32).contains(&p) => vec![p],
                    Some(p) => return Err(format!("topic '{topic}' has no partition {p}")),
                    None => (0..count as i32).collect(),
                };
                let mut list = TopicPartitionList::new();
                let mut by_time = TopicPartitionList::new();
                for &p in &read {
                    let offset = match (next.get(&p), startup) {
                        (Some(&o), _) => Offset::Offset(o),
                        (None, StartupMode::Earliest) => Offset::Beginning,
                        (None, StartupMode::Latest) => Offset::End,
                        (None, StartupMode::GroupOffsets) => Offset::Stored,
                        (None, StartupMode::Timestamp(millis)) => {
                            by_time
                                .add_partition_offset(&topic, p, Offset::Offset(millis))
                                .map_err(|e| e.to_string())?;
                            continue;
                        }
                    };
                    list.add_partition_offset(&topic, p, offset).map_err(|e| e.to_string())?;
                }
                if by_time.count() > 0 {
                    let found =
                        consumer.offsets_for_times(by_time, REQUEST_TIMEOUT).map_err(|e| {
                            format!("cannot look up offsets by timestamp in '{topic}': {e}")
                        })?;
                    let found: Vec<(i32, Offset)> =
                        found.elements().iter().map(|e| (e.partition(), e.offset())).collect();
                    for (p, offset) in found {
                        // No message at or after the timestamp: start at the end.
                        let offset =
                            if matches!(offset, Offset::Offset(_)) { offset } else { Offset::End };
                        list.add_partition_offset(&topic, p, offset).map_err(|e| e.to_string())?;
                    }
                }
                let ends = match fetch_ends {
                    true => high_watermarks(&consumer, &topic, &read).map_err(|e| {
                        format!("cannot read the high watermarks of '{topic}': {e}")
                    })?,
                    false => BTreeMap::new(),
                };
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let shares = read.len().min(cores).clamp(1, MAX_FETCHERS);
                while fetchers.len() + 1 < shares {
                    let fetcher: BaseConsumer =
                        config.create().map_err(|e| format!("cannot create a consumer: {e}"))?;
                    fetchers.push(Arc::new(fetcher));
                }
                fetchers.truncate(shares - 1);
                let mut lists = vec![TopicPartitionList::new(); shares];
                for element in list.elements() {
                    let share = share_of(&read, element.partition(), shares);
                    lists[share]
                        .add_partition_offset(&topic, element.partition(), element.offset())
                        .map_err(|e| e.to_string())?;
                }
                let mut shares = Vec::with_capacity(lists.len());
                for (fetcher, list) in std::iter::once(&consumer).chain(&fetchers).zip(&lists) {
                    fetcher
                        .assign(list)
                        .map_err(|e| format!("cannot assign the partitions of '{topic}': {e}"))?;
                    let partitions: Vec<i32> =
                        list.elements().iter().map(|e| e.partition()).collect();
                    shares.push(Arc::new(Share::new(fetcher, &topic, &partitions)?));
                }
                Ok((read, ends, fetchers, shares))
            })
            .await
            .map_err(|e| self.error(format!("assignment task failed: {e}")))?
            .map_err(|e| self.error(e))?;
        self.fetchers = fetchers;
        self.shares = shares;
        if assigned != self.read {
            tracing::debug!(table = %self.table, topic = %self.options.topic, partitions = ?assigned, ends = ?ends, "reading partitions");
        }
        if fetch_ends {
            self.ends = Some(ends);
        }
        self.read = assigned;
        self.assigned = true;
        Ok(())
    }

    /// Bounded: the partitions read to their end since the last call. A partition is at its end
    /// once the offset after its last returned message reaches the end fixed at the start, or the
    /// consumer reached the end of the partition.
    fn newly_finished(&mut self) -> Vec<usize> {
        let Some(ends) = &self.ends else { return vec![] };
        let mut finished = vec![];
        for (index, &partition) in self.read.iter().enumerate() {
            if self.finished.contains(&partition) {
                continue;
            }
            let end = ends.get(&partition).copied().unwrap_or(i64::MAX);
            let read = self.next.get(&partition).is_some_and(|&next| next >= end);
            if read || self.at_end.contains(&partition) {
                self.finished.insert(partition);
                finished.push(index);
            }
        }
        finished
    }
}

/// Properties a producer understands too (connection and security), for the dead-letter producer.
pub(super) fn is_client_property(key: &str) -> bool {
    ["security.", "ssl.", "sasl.", "client.id", "socket.", "broker.", "metadata."]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

/// Where each row of a partition's batch came from: the messages it was decoded from.
#[derive(Debug)]
struct MessageOrigins {
    topic: Arc<str>,
    partition: i32,
    chunk: Chunk,
    /// The messages the rows were decoded from, when some messages were not (else all).
    good: Option<Vec<usize>>,
}

impl MessageOrigins {
    /// Message `index` of the chunk.
    fn message(&self, index: usize) -> Record {
        let meta = &self.chunk.records[index];
        let location = RecordLocation::Message {
            topic: Arc::clone(&self.topic),
            partition: self.partition,
            offset: meta.offset,
        };
        Record { location, raw: Some(self.chunk.value(index).to_vec()), key: meta.key.clone() }
    }
}

impl RowOrigins for MessageOrigins {
    fn len(&self) -> usize {
        self.good.as_ref().map_or(self.chunk.len(), Vec::len)
    }

    fn record(&self, row: usize) -> Option<Record> {
        let index = match &self.good {
            Some(good) => *good.get(row)?,
            None => row,
        };
        (index < self.chunk.len()).then(|| self.message(index))
    }
}

/// The indexes of a chunk of `len` messages not among `bad` (in index order).
fn good_records(len: usize, bad: &[super::decode::BadRecord]) -> Vec<usize> {
    let bad: BTreeSet<usize> = bad.iter().map(|b| b.index).collect();
    (0..len).filter(|i| !bad.contains(i)).collect()
}

/// Which of `shares` consumers fetches `partition`, one of `read`.
fn share_of(read: &[i32], partition: i32, shares: usize) -> usize {
    read.binary_search(&partition).map_or(0, |index| index % shares.max(1))
}

#[async_trait]
impl SourceReader for KafkaSource {
    async fn poll(&mut self, max_rows: usize) -> Result<Polled> {
        if !self.assigned {
            self.assign().await?;
        }
        let reading = self.read.iter().filter(|p| !self.finished.contains(p)).count();
        let request = Arc::new(Request {
            max_rows: max_rows.div_ceil(reading.max(1)).max(1),
            keys: self.decoder.wants_keys(),
            ends: self.ends.clone(),
            decoder: Arc::clone(&self.decoder),
        });
        // Every consumer takes its share of the partitions, in parallel.
        let fetches = self.shares.iter().map(|share| {
            let (share, request) = (Arc::clone(share), Arc::clone(&request));
            tokio::task::spawn_blocking(move || share.fetch(&request))
        });
        // From here on messages are consumed: nothing may fail without returning them.
        let mut fetched = Fetched::default();
        for result in futures::future::join_all(fetches).await {
            fetched.absorb(result.map_err(|e| self.error(format!("fetch task failed: {e}")))?);
        }
        self.at_end.extend(fetched.at_end);
        for error in fetched.errors {
            tracing::warn!(table = %self.table, topic = %self.options.topic, %error, "kafka fetch error; librdkafka retries");
        }

        let mut polled = Polled {
            partitions: self.read.len(),
            more_available: fetched.cut_short || self.behind(),
            ..Polled::default()
        };
        fetched.partitions.sort_by_key(|p| p.partition);
        for part in fetched.partitions {
            let partition = part.partition;
            polled.earliest_record_ms =
                polled.earliest_record_ms.min(part.earliest).or(part.earliest);
            let (batch, bad) = part
                .decoded
                .map_err(|e| self.error(format!("decoding partition {partition}: {e}")))?;
            let origins = MessageOrigins {
                topic: Arc::clone(&self.topic),
                partition,
                good: (!bad.is_empty()).then(|| good_records(part.chunk.len(), &bad)),
                chunk: part.chunk,
            };
            for bad in bad {
                let record = origins.message(bad.index);
                polled.malformed.push(Malformed { record, error: bad.error });
            }
            self.next.insert(partition, part.next);
            if batch.num_rows() > 0 {
                let index = self.engine_partition(partition).ok_or_else(|| {
                    self.error(format!("message of unread partition {partition}"))
                })?;
                let origins = Origins::of(origins);
                polled.batches.push(PartitionBatch { partition: index, batch, origins });
            }
        }
        self.refresh_high_watermarks().await;
        polled.finished = self.newly_finished();
        Ok(polled)
    }

    fn lag(&self) -> Vec<(usize, i64)> {
        self.next
            .iter()
            .filter_map(|(&partition, &next)| {
                let high = *self.high.get(&partition)?;
                Some((usize::try_from(partition).ok()?, (high - next).max(0)))
            })
            .collect()
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!(Position {
            topic: self.options.topic.clone(),
            offsets: self.next.clone()
        })
    }

    async fn restore(&mut self, position: &serde_json::Value) -> Result<()> {
        let position: Position = serde_json::from_value(position.clone())
            .map_err(|e| self.error(format!("unreadable checkpoint position: {e}")))?;
        if position.topic != self.options.topic {
            return Err(self.error(format!(
                "the checkpoint is for topic '{}', the table now reads '{}'",
                position.topic, self.options.topic
            )));
        }
        self.next = position.offsets;
        self.at_end.clear();
        self.assigned = false;
        Ok(())
    }

    async fn checkpointed(&mut self, position: &serde_json::Value) -> Result<()> {
        let position: Position = serde_json::from_value(position.clone())
            .map_err(|e| self.error(format!("unreadable checkpoint position: {e}")))?;
        if position.offsets.is_empty() {
            return Ok(());
        }
        if let Some(member) = self.member.clone() {
            let (topic, offsets): (String, Vec<(i32, i64)>) =
                (position.topic, position.offsets.into_iter().collect());
            return tokio::task::spawn_blocking(move || member.commit(&topic, &offsets))
                .await
                .map_err(|e| self.error(format!("commit task failed: {e}")))?
                .map_err(|e| {
                    self.error(format!("cannot commit offsets to group '{}': {e}", self.group))
                });
        }
        let mut list = TopicPartitionList::new();
        for (&partition, &offset) in &position.offsets {
            list.add_partition_offset(&position.topic, partition, Offset::Offset(offset))
                .map_err(|e| self.error(e.to_string()))?;
        }
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| self.error(format!("commit task failed: {e}")))?
            .map_err(|e| {
                self.error(format!("cannot commit offsets to group '{}': {e}", self.group))
            })
    }
}

/// The high watermark of `partitions` of `topic` (one blocking request each).
fn high_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
) -> KafkaResult<BTreeMap<i32, i64>> {
    partitions
        .iter()
        .map(|&p| consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT).map(|(_, high)| (p, high)))
        .collect()
}
