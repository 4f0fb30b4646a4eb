//! The `kafka` connector (source): JSON messages of one topic, every Kafka partition an engine
//! partition.
//!
//! ```sql
//! CREATE TABLE ticks (
//!     symbol TEXT NOT NULL, price DOUBLE NOT NULL, "timestamp" BIGINT NOT NULL,
//!     off BIGINT METADATA FROM 'offset',
//!     ts AS to_timestamp("timestamp"),
//!     WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
//! ) WITH (
//!     connector = 'kafka', topic = 'market.ticks', 'bootstrap.servers' = 'localhost:9092',
//!     format = 'json', 'scan.startup.mode' = 'earliest-offset',
//!     'properties.group.id' = 'candles', 'dead-letter.topic' = 'market.ticks.dlq'
//! );
//! ```
//!
//! By default (`'scan.partition-assignment' = 'all'`) the engine assigns itself every partition
//! of the topic: where it resumes comes from its own checkpoint, and the offsets it checkpoints
//! are also committed to the consumer group `properties.group.id` (default `engine.<query>`: one
//! group per query, as every query reads the topic on its own), so lag shows in Kafka tools and
//! `'scan.startup.mode' = 'group-offsets'` can start from them.
//!
//! With `'scan.partition-assignment' = 'group'` the replicas of the engine join that consumer
//! group and split the partitions between them ([`group`]); each partition then runs with state
//! of its own, which the replica that takes it over restores.

mod dead_letter;
mod decode;
mod fetch;
pub mod group;
mod source;

pub use self::dead_letter::KafkaDeadLetter;
pub use self::source::KafkaSource;
use crate::error::Result;
use crate::options::Options;

/// The options the connector accepts (`properties.*` is passed to librdkafka).
pub const OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "bootstrap.servers",
    "format",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.partition-assignment",
    "dead-letter.topic",
    "properties.*",
];

/// librdkafka properties the engine sets itself: overriding them would break delivery.
const RESERVED: &[&str] = &["bootstrap.servers", "enable.auto.commit", "enable.auto.offset.store"];

/// Where a partition without a checkpointed position starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupMode {
    /// The first retained message.
    Earliest,
    /// Only messages produced after the start.
    Latest,
    /// The offsets committed to the consumer group; `properties.auto.offset.reset` (default
    /// `earliest`) where the group has none.
    GroupOffsets,
    /// The first message whose timestamp is at or after this many milliseconds since the epoch.
    Timestamp(i64),
}

/// Which partitions a replica reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Every partition of the topic, with one window state for all.
    All,
    /// The partitions the consumer group gives this replica, each with a window state of its
    /// own: replicas in the group split the topic.
    Group,
}

/// Validated `WITH` options of a Kafka table.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// The topic read.
    pub topic: String,
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `properties.group.id`, if given; see [`KafkaOptions::group_for`].
    pub group_id: Option<String>,
    /// Where reading starts without a checkpoint.
    pub startup: StartupMode,
    /// Which partitions this replica reads.
    pub assignment: Assignment,
    /// Where malformed messages are copied, if anywhere.
    pub dead_letter_topic: Option<String>,
    /// Every `properties.*` option, prefix removed, for librdkafka (without `group.id`).
    pub properties: Vec<(String, String)>,
}

impl KafkaOptions {
    /// The consumer group the query `query` commits its offsets to: `properties.group.id`, or
    /// `engine.<query>`.
    pub fn group_for(&self, query: &str) -> String {
        self.group_id.clone().unwrap_or_else(|| format!("engine.{query}"))
    }

    /// Takes the Kafka options out of `options`.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        let topic = options.pull_required("topic", "the Kafka topic to read")?.value;
        let bootstrap_servers =
            options.pull_required("bootstrap.servers", "the brokers, e.g. 'localhost:9092'")?.value;
        options.pull_choice("format", &["json"])?;
        let mode = options.pull_choice(
            "scan.startup.mode",
            &["earliest-offset", "latest-offset", "group-offsets", "timestamp"],
        )?;
        let timestamp = options.pull_str("scan.startup.timestamp-millis");
        let startup = match (mode, timestamp) {
            (Some("timestamp"), Some(t)) => match t.value.trim().parse::<i64>() {
                Ok(millis) if millis >= 0 => StartupMode::Timestamp(millis),
                _ => {
                    return crate::sql_err!(
                        t.location,
                        "'scan.startup.timestamp-millis' must be milliseconds since the epoch, found '{}'",
                        t.value
                    );
                }
            },
            (Some("timestamp"), None) => {
                return crate::sql_err!(
                    options.statement_location(),
                    "table '{}': 'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'",
                    options.table()
                );
            }
            (_, Some(t)) => {
                return crate::sql_err!(
                    t.location,
                    "'scan.startup.timestamp-millis' only applies with 'scan.startup.mode' = 'timestamp'"
                );
            }
            (Some("latest-offset"), None) => StartupMode::Latest,
            (Some("group-offsets"), None) => StartupMode::GroupOffsets,
            (Some(_) | None, None) => StartupMode::Earliest,
        };
        let assignment =
            match options.pull_choice("scan.partition-assignment", &["all", "group"])? {
                Some("group") => Assignment::Group,
                _ => Assignment::All,
            };
        let strategy = options.pull_str("properties.partition.assignment.strategy");
        if let Some(strategy) = &strategy
            && assignment == Assignment::Group
            && strategy.value.contains("cooperative")
        {
            return crate::sql_err!(
                strategy.location,
                "'scan.partition-assignment' = 'group' hands partitions over in eager rebalances; use 'range' or 'roundrobin' instead of '{}'",
                strategy.value
            );
        }
        let dead_letter_topic = options.pull_str("dead-letter.topic").map(|o| o.value);
        let reserved =
            RESERVED.iter().find_map(|key| options.pull_str(&format!("properties.{key}")));
        if let Some(option) = reserved {
            return crate::sql_err!(
                option.location,
                "'{}' is set by the engine and cannot be overridden{}",
                option.key,
                if option.key.ends_with("servers") { "; use 'bootstrap.servers'" } else { "" }
            );
        }
        let mut properties = options.pull_prefixed("properties.");
        properties.extend(strategy.map(|s| ("partition.assignment.strategy".to_string(), s.value)));
        let group_id =
            properties.iter().position(|(k, _)| k == "group.id").map(|i| properties.remove(i).1);
        Ok(Self {
            topic,
            bootstrap_servers,
            group_id,
            startup,
            assignment,
            dead_letter_topic,
            properties,
        })
    }
}
