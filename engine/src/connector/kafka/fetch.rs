//! Taking fetched messages from librdkafka: one consumer's share of a source's partitions, on
//! a blocking thread of its own, so the shares are read and decoded in parallel.
//!
//! Every partition is split onto a queue of its own. A partition whose micro-batch is full is
//! simply not read any further: its messages wait in librdkafka, which stops fetching it once
//! its local queue holds `queued.min.messages`, while the other partitions go on. (Pausing the
//! partition instead would make librdkafka drop everything it had fetched ahead for it.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use rdkafka::Timestamp;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, DefaultConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};

use super::decode::{BadRecord, Chunk, JsonDecoder};

/// How long a poll waits for the first message.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long a poll keeps taking messages once they flow.
const POLL_BUDGET: Duration = Duration::from_millis(250);

/// What every share is asked for in one poll.
pub struct Request {
    /// Most messages taken per partition.
    pub max_rows: usize,
    /// Whether message keys are wanted (a column reads them).
    pub keys: bool,
    /// Bounded reading: per partition, the offset where reading ends.
    pub ends: Option<BTreeMap<i32, i64>>,
    /// Decodes what was taken.
    pub decoder: Arc<JsonDecoder>,
}

/// One partition's messages of a poll, decoded.
pub struct FetchedPartition {
    /// The Kafka partition.
    pub partition: i32,
    /// The offset after the last message taken.
    pub next: i64,
    /// The earliest message timestamp, milliseconds since the epoch.
    pub earliest: Option<i64>,
    /// The good messages as one batch, and the bad ones.
    pub decoded: Result<(RecordBatch, Vec<BadRecord>), ArrowError>,
    /// The messages, kept for the dead letters (a row found bad after decoding is copied from
    /// them).
    pub chunk: Chunk,
}

/// What one poll took.
#[derive(Default)]
pub struct Fetched {
    /// The partitions that had messages.
    pub partitions: Vec<FetchedPartition>,
    /// Partitions whose end (a bounded source's end, or the end of the log) was reached.
    pub at_end: Vec<i32>,
    /// Fetch errors; librdkafka retries them.
    pub errors: Vec<String>,
    /// The time budget ran out while messages were still coming.
    pub cut_short: bool,
}

impl Fetched {
    /// Adds what another share took.
    pub fn absorb(&mut self, other: Fetched) {
        self.partitions.extend(other.partitions);
        self.at_end.extend(other.at_end);
        self.errors.extend(other.errors);
        self.cut_short |= other.cut_short;
    }
}

/// Set when a partition queue receives messages, to wake a poll waiting for the first one.
#[derive(Default)]
struct Wake {
    /// Set since the last reset; checked first so that librdkafka's thread only locks and
    /// signals once per wait.
    set: AtomicBool,
    lock: Mutex<()>,
    signal: Condvar,
}

impl Wake {
    fn reset(&self) {
        self.set.store(false, Ordering::SeqCst);
    }

    fn notify(&self) {
        if !self.set.swap(true, Ordering::SeqCst) {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.signal.notify_all();
        }
    }

    /// Waits until notified or `deadline`; whether it was notified.
    fn wait_until(&self, deadline: Instant) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.set.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .signal
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// One consumer and the queues of the partitions assigned to it.
pub struct Share {
    consumer: Arc<BaseConsumer>,
    queues: Vec<(i32, PartitionQueue<DefaultConsumerContext>)>,
    wake: Arc<Wake>,
}

impl Share {
    /// Splits `partitions` of `topic`, just assigned to `consumer`, onto queues of their own
    /// (an assignment undoes the split, so this follows every `assign`).
    pub fn new(
        consumer: &Arc<BaseConsumer>,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Self, String> {
        let wake = Arc::new(Wake::default());
        let mut queues = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let mut queue = consumer.split_partition_queue(topic, partition).ok_or_else(|| {
                format!("cannot read partition {partition} of '{topic}' on a queue of its own")
            })?;
            let wake = Arc::clone(&wake);
            queue.set_nonempty_callback(move || wake.notify());
            queues.push((partition, queue));
        }
        Ok(Self { consumer: Arc::clone(consumer), queues, wake })
    }

    /// Takes what is available: waits up to [`POLL_WAIT`] for a first message, then takes for at
    /// most [`POLL_BUDGET`] until every partition has `max_rows` or nothing more is there; then
    /// decodes every partition's messages.
    pub fn fetch(&self, request: &Request) -> Fetched {
        let started = Instant::now();
        let deadline = started + POLL_BUDGET;
        let mut taking = Taking { request, chunks: BTreeMap::new(), fetched: Fetched::default() };
        let mut taken = 0u64;
        'rounds: loop {
            self.wake.reset();
            let before = taken;
            // Events, and messages fetched before the partitions were split off.
            while let Some(result) = self.consumer.poll(Duration::ZERO) {
                taking.take(result);
                taken += 1;
            }
            let mut full = 0;
            for (partition, queue) in &self.queues {
                while taking.rows(*partition) < request.max_rows {
                    let Some(result) = queue.poll(Duration::ZERO) else { break };
                    taking.take(result);
                    taken += 1;
                    // Reading the clock costs about as much as taking a message.
                    if taken.is_multiple_of(64) && Instant::now() >= deadline {
                        taking.fetched.cut_short = true;
                        break 'rounds;
                    }
                }
                if taking.rows(*partition) >= request.max_rows {
                    full += 1;
                }
            }
            if full == self.queues.len() {
                break;
            }
            if taken > before {
                if Instant::now() >= deadline {
                    taking.fetched.cut_short = true;
                    break;
                }
                continue;
            }
            if taken > 0 || !self.wake.wait_until(started + POLL_WAIT) {
                break;
            }
        }
        taking.finish()
    }
}

/// The messages of one fetch as they are taken.
struct Taking<'r> {
    request: &'r Request,
    chunks: BTreeMap<i32, Chunk>,
    fetched: Fetched,
}

impl Taking<'_> {
    fn rows(&self, partition: i32) -> usize {
        self.chunks.get(&partition).map_or(0, Chunk::len)
    }

    fn take(&mut self, result: KafkaResult<BorrowedMessage<'_>>) {
        let message = match result {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(partition)) => {
                self.fetched.at_end.push(partition);
                return;
            }
            Err(err) => {
                self.fetched.errors.push(err.to_string());
                return;
            }
        };
        let partition = message.partition();
        let ends = self.request.ends.as_ref();
        if ends.and_then(|e| e.get(&partition)).is_some_and(|&end| message.offset() >= end) {
            self.fetched.at_end.push(partition);
            return;
        }
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
            Timestamp::NotAvailable => None,
        };
        let key = match self.request.keys {
            true => message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            false => None,
        };
        let value = message.payload().unwrap_or_default();
        self.chunks.entry(partition).or_default().push(message.offset(), timestamp, key, value);
    }

    /// Decodes every partition's messages.
    fn finish(self) -> Fetched {
        let Taking { request, chunks, mut fetched } = self;
        for (partition, chunk) in chunks {
            let Some(last) = chunk.records.last().map(|r| r.offset) else { continue };
            let earliest = chunk.records.iter().filter_map(|r| r.timestamp).min();
            let decoded = request.decoder.decode(partition, &chunk);
            fetched.partitions.push(FetchedPartition {
                partition,
                next: last + 1,
                earliest,
                decoded,
                chunk,
            });
        }
        fetched
    }
}
