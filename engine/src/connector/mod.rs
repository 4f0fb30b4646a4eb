//! Connectors: where rows come from and where they go. They know the outside world and nothing
//! about SQL semantics.

pub mod blackhole;
pub mod cassandra;
pub mod dead_letter;
pub mod filesystem;
pub mod flat_json;
pub mod kafka;
pub mod memory;
pub mod stdout;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::options::Options;

/// Metadata a connector can fill into a `METADATA FROM 'key'` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey {
    /// The partition the row came from (a file's index for `filesystem`).
    Partition,
    /// The row's position in its partition.
    Offset,
    /// The record's timestamp (Kafka: create or log-append time).
    Timestamp,
    /// The record's key as text (Kafka).
    Key,
}

impl MetadataKey {
    /// The key as written in SQL.
    pub fn name(self) -> &'static str {
        match self {
            MetadataKey::Partition => "partition",
            MetadataKey::Offset => "offset",
            MetadataKey::Timestamp => "timestamp",
            MetadataKey::Key => "key",
        }
    }

    /// Whether a column of type `data_type` can hold this metadata.
    pub fn accepts(self, data_type: &DataType) -> bool {
        match self {
            MetadataKey::Partition | MetadataKey::Offset => data_type == &DataType::Int64,
            MetadataKey::Timestamp => {
                matches!(
                    data_type,
                    DataType::Int64 | DataType::Timestamp(TimeUnit::Millisecond, None)
                )
            }
            MetadataKey::Key => data_type == &DataType::Utf8,
        }
    }

    /// The SQL types [`accepts`](Self::accepts) allows, for error messages.
    pub fn sql_types(self) -> &'static str {
        match self {
            MetadataKey::Partition | MetadataKey::Offset => "BIGINT",
            MetadataKey::Timestamp => "TIMESTAMP(3) or BIGINT (milliseconds since the epoch)",
            MetadataKey::Key => "TEXT",
        }
    }
}

/// A table's connector with its options, validated.
#[derive(Debug, Clone)]
pub enum ConnectorSpec {
    /// Files: JSON lines, CSV or Parquet.
    Filesystem(filesystem::FilesystemOptions),
    /// Rows printed as JSON lines.
    Stdout,
    /// Rows counted and dropped.
    Blackhole,
    /// A Kafka topic of JSON messages.
    Kafka(kafka::KafkaOptions),
    /// A Cassandra table.
    Cassandra(cassandra::CassandraOptions),
    /// Rows handed to the process running the query (the REPL's live results); not declarable
    /// in SQL.
    Memory(memory::Changes),
}

/// Every connector name, for error messages.
pub const CONNECTORS: &[&str] = &["filesystem", "kafka", "cassandra", "stdout", "blackhole"];

impl ConnectorSpec {
    /// Takes `connector` and the connector's own options from `options`.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        let connector = options
            .pull_required("connector", "one of filesystem, kafka, cassandra, stdout, blackhole")?;
        match connector.value.to_ascii_lowercase().as_str() {
            "filesystem" => {
                Ok(Self::Filesystem(filesystem::FilesystemOptions::from_options(options)?))
            }
            "stdout" => Ok(Self::Stdout),
            "blackhole" => Ok(Self::Blackhole),
            "kafka" => Ok(Self::Kafka(kafka::KafkaOptions::from_options(options)?)),
            "cassandra" => Ok(Self::Cassandra(cassandra::CassandraOptions::from_options(options)?)),
            other => crate::sql_err!(
                connector.location,
                "unknown connector '{other}'; expected one of: {}",
                CONNECTORS.join(", ")
            ),
        }
    }

    /// The options this connector accepts, for the "unknown option" message.
    pub fn accepted_options(&self) -> &'static [&'static str] {
        match self {
            Self::Filesystem(_) => filesystem::OPTIONS,
            Self::Kafka(_) => kafka::OPTIONS,
            Self::Cassandra(_) => cassandra::OPTIONS,
            Self::Stdout | Self::Blackhole | Self::Memory(_) => &["connector"],
        }
    }

    /// The connector's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Filesystem(_) => "filesystem",
            Self::Stdout => "stdout",
            Self::Blackhole => "blackhole",
            Self::Kafka(_) => "kafka",
            Self::Cassandra(_) => "cassandra",
            Self::Memory(_) => "memory",
        }
    }

    /// Whether the connector can be read as a stream.
    pub fn is_source(&self) -> bool {
        matches!(self, Self::Filesystem(_) | Self::Kafka(_))
    }

    /// Whether the connector can be written.
    pub fn is_sink(&self) -> bool {
        !matches!(self, Self::Kafka(_))
    }

    /// The metadata keys the connector can fill.
    pub fn metadata(&self, key: &str) -> Option<MetadataKey> {
        match (self, key) {
            (Self::Filesystem(_), "partition") => Some(MetadataKey::Partition),
            (Self::Filesystem(_), "offset") => Some(MetadataKey::Offset),
            (Self::Kafka(_), "partition") => Some(MetadataKey::Partition),
            (Self::Kafka(_), "offset") => Some(MetadataKey::Offset),
            (Self::Kafka(_), "timestamp") => Some(MetadataKey::Timestamp),
            (Self::Kafka(_), "key") => Some(MetadataKey::Key),
            _ => None,
        }
    }

    /// What the connector accepts as a sink; `None` when it can only be read.
    pub fn sink_capabilities(&self) -> Option<SinkCapabilities> {
        let all = SinkCapabilities { deletes: true, partition_tasks: true };
        match self {
            Self::Filesystem(options) => Some(SinkCapabilities {
                deletes: options.format != filesystem::FileFormat::Parquet,
                partition_tasks: false,
            }),
            Self::Stdout | Self::Blackhole | Self::Cassandra(_) | Self::Memory(_) => Some(all),
            Self::Kafka(_) => None,
        }
    }

    /// Whether the source's partitions are split between replicas (and read by one task each)
    /// rather than all read here.
    pub fn splits_partitions(&self) -> bool {
        matches!(self, Self::Kafka(k) if k.assignment == kafka::Assignment::Group)
    }

    /// The columns of the table as the store it lives in describes them (a Cassandra table,
    /// once described), written by name.
    pub fn store_table(&self) -> Option<(String, &cassandra::CassandraTable)> {
        match self {
            Self::Cassandra(options) => {
                options.columns.as_deref().map(|table| (options.qualified_name(), table))
            }
            _ => None,
        }
    }

    /// Whether the table's columns live in the store rather than in the query files, so that
    /// they are described before planning.
    pub fn columns_in_store(&self) -> bool {
        matches!(self, Self::Cassandra(_))
    }
}

/// What a sink accepts, for the planner's checks. Every sink accepts writes from several
/// queries (file sinks name their files per query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCapabilities {
    /// Deletions (session windows merged in upsert mode are retracted).
    pub deletes: bool,
    /// Writes from the partition tasks of one query, on several replicas at once.
    pub partition_tasks: bool,
}

/// A column the source produces: read from the data or filled from metadata.
#[derive(Debug, Clone)]
pub enum SourceColumn {
    /// Read from the record by name.
    Physical,
    /// Filled by the connector.
    Metadata(MetadataKey),
}

/// Rows read from one partition.
#[derive(Debug)]
pub struct PartitionBatch {
    /// The partition.
    pub partition: usize,
    /// Rows in the source's raw schema (physical and metadata columns, declared order).
    pub batch: RecordBatch,
    /// Where each row came from, so that a row found bad later can be dead-lettered.
    pub origins: Origins,
}

impl PartitionBatch {
    /// Rows of `partition` whose origins the source does not keep.
    pub fn new(partition: usize, batch: RecordBatch) -> Self {
        let origins = Origins::unknown(batch.num_rows());
        Self { partition, batch, origins }
    }
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordLocation {
    /// A line of a file, 1-based.
    Line {
        /// The file.
        path: Arc<PathBuf>,
        /// The line.
        line: u64,
    },
    /// A row of a file without lines (Parquet), 0-based.
    Row {
        /// The file.
        path: Arc<PathBuf>,
        /// The row.
        row: u64,
    },
    /// A Kafka message.
    Message {
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
    },
    /// Somewhere the source does not say (a partition of a source without positions).
    Partition(usize),
    /// A row a query computed (a window's result its sink cannot take).
    Output(String),
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Row { path, row } => write!(f, "{} row {row}", path.display()),
            Self::Message { topic, partition, offset } => write!(f, "{topic}/{partition}/{offset}"),
            Self::Partition(partition) => write!(f, "partition {partition}"),
            Self::Output(query) => write!(f, "output of query {query}"),
        }
    }
}

/// One record as its source holds it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where it is.
    pub location: RecordLocation,
    /// Its bytes as read (a line, a message's value); `None` where the source does not keep
    /// them (Parquet rows): the dead letter then holds the decoded row as JSON.
    pub raw: Option<Vec<u8>>,
    /// The message key (Kafka).
    pub key: Option<String>,
}

/// A record found bad (undecodable, or failing a computed column, the watermark, the query or a
/// sink cast), with what the dead-letter destination keeps of it.
#[derive(Debug, Clone)]
pub struct Malformed {
    /// The record.
    pub record: Record,
    /// What is wrong with it.
    pub error: String,
}

impl Malformed {
    /// Where the record is.
    pub fn location(&self) -> &RecordLocation {
        &self.record.location
    }
}

/// Where the rows of a run of a batch came from.
pub trait RowOrigins: Send + Sync + fmt::Debug {
    /// How many rows it describes.
    fn len(&self) -> usize;
    /// Whether it describes no row.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `row`'s record, where the source keeps it.
    fn record(&self, row: usize) -> Option<Record>;
}

/// Rows of a partition whose records the source does not keep.
#[derive(Debug)]
struct Unknown {
    rows: usize,
}

impl RowOrigins for Unknown {
    fn len(&self) -> usize {
        self.rows
    }

    fn record(&self, _row: usize) -> Option<Record> {
        None
    }
}

/// Where each row of a batch came from: runs of rows, each described by its source. Kept with
/// the batch (the raw bytes stay alive by reference, per-row ranges into them) and consulted only
/// for rows found bad.
#[derive(Debug, Clone, Default)]
pub struct Origins(Vec<Arc<dyn RowOrigins>>);

impl Origins {
    /// Rows described by `origins`.
    pub fn of(origins: impl RowOrigins + 'static) -> Self {
        Self(vec![Arc::new(origins)])
    }

    /// `rows` rows from nowhere known.
    pub fn unknown(rows: usize) -> Self {
        Self::of(Unknown { rows })
    }

    /// Appends the origins of rows appended to the batch.
    pub fn extend(&mut self, other: Origins) {
        self.0.extend(other.0);
    }

    /// Row `row`'s record, where its source keeps it.
    pub fn record(&self, mut row: usize) -> Option<Record> {
        for run in &self.0 {
            if row < run.len() {
                return run.record(row);
            }
            row -= run.len();
        }
        None
    }
}

/// What one poll of a source returned.
#[derive(Debug, Default)]
pub struct Polled {
    /// Rows per partition.
    pub batches: Vec<PartitionBatch>,
    /// Records skipped because they could not be decoded (the runtime dead-letters them).
    pub malformed: Vec<Malformed>,
    /// Number of partitions known so far (partitions are numbered from 0).
    pub partitions: usize,
    /// Partitions that will never deliver rows again (bounded input read to its end).
    pub finished: Vec<usize>,
    /// The earliest record time among the rows returned, in milliseconds since the epoch, where
    /// the connector has one (Kafka: the message timestamp): the start of the end-to-end
    /// latency.
    pub earliest_record_ms: Option<i64>,
    /// More rows are waiting right now, beyond what this poll could take in its time: the next
    /// micro-batch should start at once rather than at the next trigger.
    pub more_available: bool,
}

/// Reads a source's partitions incrementally.
#[async_trait]
pub trait SourceReader: Send {
    /// Reads at most `max_rows` rows in all, shared fairly among the partitions still being read
    /// (each takes at most its share, `max_rows` divided by their number, rounded up), so that a
    /// micro-batch's size is bounded whatever the number of partitions.
    async fn poll(&mut self, max_rows: usize) -> Result<Polled>;

    /// Where reading stands, to be stored in a checkpoint: everything [`restore`](Self::restore)
    /// needs to resume right after the last row returned by [`poll`](Self::poll).
    fn position(&self) -> serde_json::Value;

    /// Resumes from a position taken by [`position`](Self::position), before the first poll.
    async fn restore(&mut self, position: &serde_json::Value) -> Result<()>;

    /// Messages each partition holds beyond what [`poll`](Self::poll) returned, where the
    /// source knows it (Kafka: the high watermark minus the next offset): `(partition, lag)`.
    fn lag(&self) -> Vec<(usize, i64)> {
        vec![]
    }

    /// Releases what the reader holds (clients, tasks) before the query is reported stopped.
    async fn close(&mut self) {}

    /// Called once a checkpoint holding `position` is durable (a Kafka source commits its
    /// offsets to the consumer group here, so lag is visible to Kafka tools).
    async fn checkpointed(&mut self, _position: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// Opens a reader for source `table` producing rows of `raw` (columns described by `columns`)
/// for query `query` (a Kafka source commits to its consumer group). `bounded` input is read
/// once to its end: files as they are, Kafka partitions up to their high watermarks when
/// reading starts.
pub fn open_source(
    table: &str,
    query: &str,
    spec: &ConnectorSpec,
    raw: SchemaRef,
    columns: Vec<SourceColumn>,
    bounded: bool,
) -> Result<Box<dyn SourceReader>> {
    Ok(match spec {
        ConnectorSpec::Filesystem(options) => {
            Box::new(filesystem::FileSource::new(table, options, raw, columns, bounded))
        }
        ConnectorSpec::Kafka(options) => {
            let group = options.group_for(query);
            Box::new(kafka::KafkaSource::new(table, &group, options, raw, columns, bounded)?)
        }
        other => {
            return Err(crate::error::EngineError::connector(
                format!("{} table '{table}'", other.name()),
                format!("the {} connector cannot be read as a stream", other.name()),
            ));
        }
    })
}

/// Whether a sink row is new or changed, or no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Insert, or overwrite the row with the same key.
    Upsert,
    /// Remove the row with the same key.
    Delete,
}

/// Writes a query's output; an epoch is one micro-batch.
#[async_trait]
pub trait SinkWriter: Send {
    /// Writes rows (already in the sink's schema) as part of `epoch`.
    async fn write(&mut self, epoch: u64, batch: &RecordBatch, kind: ChangeKind) -> Result<()>;
    /// Makes everything written for `epoch` durable.
    async fn commit(&mut self, epoch: u64) -> Result<()>;
}

/// Opens a sink writer for `spec` writing rows of `schema` for query `writer` (several queries
/// may write one table).
pub fn open_sink(
    table: &str,
    writer: &str,
    spec: &ConnectorSpec,
    schema: SchemaRef,
) -> Result<Box<dyn SinkWriter>> {
    Ok(match spec {
        ConnectorSpec::Filesystem(options) => {
            Box::new(filesystem::FileSink::new(table, writer, options, schema)?)
        }
        ConnectorSpec::Stdout => Box::<stdout::StdoutSink>::default(),
        ConnectorSpec::Blackhole => Box::new(blackhole::BlackholeSink),
        ConnectorSpec::Cassandra(options) => {
            Box::new(cassandra::CassandraSink::new(table, options, schema)?)
        }
        ConnectorSpec::Memory(changes) => Box::new(memory::MemorySink::new(changes)),
        ConnectorSpec::Kafka(_) => {
            return Err(crate::error::EngineError::connector(
                format!("kafka table '{table}'"),
                "the kafka connector can only be read",
            ));
        }
    })
}
