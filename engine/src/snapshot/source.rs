//! A streaming source table (Kafka, files) read once to its end through its own reader in
//! bounded mode: the rows a continuous query would read, decoded the same way, with computed and
//! metadata columns. Each partition's rows come in order; a `LIMIT` stops reading once enough
//! rows arrived.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::scan::{Batches, spawned_scan};
use crate::catalog::TableDef;
use crate::connector::kafka::KafkaOptions;
use crate::connector::{ConnectorSpec, open_source};
use crate::error::EngineError;

/// Rows per partition asked of the source at a time.
const BATCH_ROWS: usize = 65_536;

/// A source table as a bounded DataFusion table.
#[derive(Debug)]
pub struct SourceSnapshot {
    table: Arc<TableDef>,
}

impl SourceSnapshot {
    /// Reads `table`, whose connector is `kafka` or `filesystem`.
    pub fn new(table: TableDef) -> Self {
        Self { table: Arc::new(table) }
    }
}

#[async_trait]
impl TableProvider for SourceSnapshot {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.table.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let (table, indices) = (Arc::clone(&self.table), projection.cloned());
        spawned_scan(&self.table.schema, projection, limit, move |_, tx| {
            let (table, indices) = (Arc::clone(&table), indices.clone());
            async move { read(&table, indices.as_deref(), limit, &tx).await }
        })
    }
}

/// Polls the table's source in bounded mode until every partition is finished (or `limit` rows
/// were sent), sending the rows in the table's schema, projected.
async fn read(
    table: &TableDef,
    projection: Option<&[usize]>,
    limit: Option<usize>,
    tx: &Batches,
) -> Result<(), EngineError> {
    let mut remaining = limit.unwrap_or(usize::MAX);
    if remaining == 0 {
        return Ok(());
    }
    let mut source = open_source(
        &table.name,
        "repl",
        &read_only(&table.connector),
        Arc::clone(&table.raw_schema),
        table.source_columns.clone(),
        true,
    )?;
    let mut finished = BTreeSet::new();
    loop {
        let polled = source.poll(remaining.min(BATCH_ROWS)).await?;
        for bad in &polled.malformed {
            tracing::warn!(table = %table.name, location = %bad.location(), error = %bad.error, "malformed record skipped");
        }
        finished.extend(polled.finished);
        for part in polled.batches {
            let batch = table.complete(&part.batch)?;
            let batch = match projection {
                Some(indices) => batch.project(indices).map_err(DataFusionError::from)?,
                None => batch,
            };
            let batch = batch.slice(0, batch.num_rows().min(remaining));
            remaining -= batch.num_rows();
            if tx.send(Ok(batch)).await.is_err() || remaining == 0 {
                return Ok(());
            }
        }
        if finished.len() >= polled.partitions {
            return Ok(());
        }
    }
}

/// The connector as a snapshot uses it: it only reads, so malformed Kafka messages are
/// reported but not copied to the dead-letter topic (the running query does that).
fn read_only(spec: &ConnectorSpec) -> ConnectorSpec {
    match spec {
        ConnectorSpec::Kafka(options) => {
            ConnectorSpec::Kafka(KafkaOptions { dead_letter_topic: None, ..options.clone() })
        }
        other => other.clone(),
    }
}
