//! Connectors: where rows come from and where they go. They know the outside world and nothing
//! about SQL semantics.

pub mod blackhole;
pub mod filesystem;
pub mod stdout;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::sql::options::Options;

/// Metadata a connector can fill into a `METADATA FROM 'key'` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey {
    /// The partition the row came from (a file's index for `filesystem`).
    Partition,
    /// The row's position in its partition.
    Offset,
}

impl MetadataKey {
    /// The key as written in SQL.
    pub fn name(self) -> &'static str {
        match self {
            MetadataKey::Partition => "partition",
            MetadataKey::Offset => "offset",
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
}

/// Every connector name, for error messages.
pub const CONNECTORS: &[&str] = &["filesystem", "stdout", "blackhole"];

impl ConnectorSpec {
    /// Takes `connector` and the connector's own options from `options`.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        let connector = options.pull_required("connector", "one of filesystem, stdout, blackhole")?;
        match connector.value.to_ascii_lowercase().as_str() {
            "filesystem" => Ok(Self::Filesystem(filesystem::FilesystemOptions::from_options(options)?)),
            "stdout" => Ok(Self::Stdout),
            "blackhole" => Ok(Self::Blackhole),
            "kafka" | "cassandra" => crate::sql_err!(
                connector.location,
                "connector '{}' is not available in this build yet; use one of: {}",
                connector.value,
                CONNECTORS.join(", ")
            ),
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
            Self::Stdout | Self::Blackhole => &["connector"],
        }
    }

    /// The connector's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Filesystem(_) => "filesystem",
            Self::Stdout => "stdout",
            Self::Blackhole => "blackhole",
        }
    }

    /// Whether the connector can be read as a stream.
    pub fn is_source(&self) -> bool {
        matches!(self, Self::Filesystem(_))
    }

    /// The metadata keys the connector can fill.
    pub fn metadata(&self, key: &str) -> Option<MetadataKey> {
        match (self, key) {
            (Self::Filesystem(_), "partition") => Some(MetadataKey::Partition),
            (Self::Filesystem(_), "offset") => Some(MetadataKey::Offset),
            _ => None,
        }
    }

    /// Whether the sink can store deletions (merged session windows).
    pub fn accepts_deletes(&self) -> bool {
        match self {
            Self::Filesystem(options) => options.format != filesystem::FileFormat::Parquet,
            Self::Stdout | Self::Blackhole => true,
        }
    }
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
}

/// A record that could not be decoded.
#[derive(Debug, Clone)]
pub struct Malformed {
    /// Where it is: `file:line` or `topic/partition/offset`.
    pub location: String,
    /// What is wrong with it.
    pub error: String,
}

/// What one poll of a source returned.
#[derive(Debug, Default)]
pub struct Polled {
    /// Rows per partition.
    pub batches: Vec<PartitionBatch>,
    /// Records skipped because they could not be decoded.
    pub malformed: Vec<Malformed>,
    /// Number of partitions known so far (partitions are numbered from 0).
    pub partitions: usize,
    /// Partitions that will never deliver rows again (bounded input read to its end).
    pub finished: Vec<usize>,
}

/// Reads a source's partitions incrementally.
#[async_trait]
pub trait SourceReader: Send {
    /// Reads at most `max_rows` rows from each partition that has rows available.
    async fn poll(&mut self, max_rows: usize) -> Result<Polled>;

    /// Where reading stands, to be stored in a checkpoint: everything [`restore`](Self::restore)
    /// needs to resume right after the last row returned by [`poll`](Self::poll).
    fn position(&self) -> serde_json::Value;

    /// Resumes from a position taken by [`position`](Self::position), before the first poll.
    async fn restore(&mut self, position: &serde_json::Value) -> Result<()>;

    /// Called once a checkpoint holding `position` is durable (a Kafka source commits its
    /// offsets to the consumer group here, so lag is visible to Kafka tools).
    async fn checkpointed(&mut self, _position: &serde_json::Value) -> Result<()> {
        Ok(())
    }
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

/// Opens a sink writer for `spec` writing rows of `schema`.
pub fn open_sink(table: &str, spec: &ConnectorSpec, schema: SchemaRef) -> Result<Box<dyn SinkWriter>> {
    Ok(match spec {
        ConnectorSpec::Filesystem(options) => Box::new(filesystem::FileSink::new(table, options, schema)?),
        ConnectorSpec::Stdout => Box::<stdout::StdoutSink>::default(),
        ConnectorSpec::Blackhole => Box::new(blackhole::BlackholeSink),
    })
}
