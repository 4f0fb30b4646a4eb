//! A partition's rows on their way through a micro-batch, with where each came from, and the
//! records found bad on the way (dead letters).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::json::LineDelimitedWriter;

use super::isolate::{Isolated, keep};
use crate::connector::{Malformed, Origins, Record, RecordLocation};
use crate::error::Result;
use crate::telemetry::metrics::QueryMetrics;

/// Rows of one source partition: the rows still good, and for each the row of the polled batch
/// it came from (so that its record can be found in the origins).
#[derive(Debug)]
pub struct Part {
    /// The engine partition.
    pub partition: usize,
    /// The good rows (completed with computed columns once intake is done).
    pub batch: RecordBatch,
    /// Where the polled rows came from.
    pub origins: Origins,
    /// Per row of `batch`, its row in the polled batch; `None` while no row was left out.
    pub polled_rows: Option<Vec<usize>>,
}

impl Part {
    /// The polled row of row `row`.
    fn polled_row(&self, row: usize) -> usize {
        self.polled_rows.as_ref().map_or(row, |rows| rows[row])
    }

    /// The record of row `row` (of `batch`): from the origins, or else the row's values as JSON
    /// with the partition as its location.
    pub fn record(&self, row: usize) -> Record {
        let unknown =
            Record { location: RecordLocation::Partition(self.partition), raw: None, key: None };
        self.origins.record(self.polled_row(row)).unwrap_or(unknown)
    }

    /// Keeps rows `kept` of `batch` (all when `None`), now `batch` is `evaluated` (the same rows
    /// evaluated further).
    pub fn narrow(&mut self, evaluated: RecordBatch, kept: Option<Vec<usize>>) {
        if let Some(kept) = kept {
            let rows = kept.iter().map(|&r| self.polled_row(r)).collect();
            self.polled_rows = Some(rows);
        }
        self.batch = evaluated;
    }
}

/// The records found bad in one micro-batch, to be dead-lettered before it is checkpointed.
#[derive(Debug, Default)]
pub struct DeadLetters {
    /// The records.
    pub records: Vec<Malformed>,
}

impl DeadLetters {
    /// Adds records undecodable at the source.
    pub fn undecodable(&mut self, records: Vec<Malformed>, metrics: &QueryMetrics) {
        metrics.dead_lettered("decode", records.len());
        self.records.extend(records);
    }

    /// Adds the rows of `parts` that `isolated` (an evaluation over one batch per part)
    /// rejected at `stage`; their raw bytes come from the parts' origins, or are the row's
    /// values as JSON where the source keeps none.
    pub fn rejected<T>(
        &mut self,
        stage: &'static str,
        parts: &[&Part],
        isolated: &Isolated<T>,
        metrics: &QueryMetrics,
    ) -> Result<()> {
        for &((part, row), ref error) in &isolated.rejected {
            let part = parts[part];
            let mut record = part.record(row);
            if record.raw.is_none() {
                record.raw = Some(row_json(&part.batch, row)?);
            }
            self.records.push(Malformed { record, error: error.clone() });
        }
        metrics.dead_lettered(stage, isolated.rejected.len());
        Ok(())
    }

    /// Adds the output rows of query `query` (in `batches`) that `isolated` rejected at `stage`
    /// (a window result its sink cannot take), as JSON.
    pub fn rejected_output<T>(
        &mut self,
        query: &str,
        batches: &[RecordBatch],
        isolated: &Isolated<T>,
        metrics: &QueryMetrics,
    ) -> Result<()> {
        for &((batch, row), ref error) in &isolated.rejected {
            let record = Record {
                location: RecordLocation::Output(query.to_string()),
                raw: Some(row_json(&batches[batch], row)?),
                key: None,
            };
            self.records.push(Malformed { record, error: error.clone() });
        }
        metrics.dead_lettered("sink", isolated.rejected.len());
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Row `row` of `batch` as one JSON object (without the line break).
fn row_json(batch: &RecordBatch, row: usize) -> Result<Vec<u8>> {
    let mut out = vec![];
    let mut writer = LineDelimitedWriter::new(&mut out);
    writer
        .write(&keep(batch, Some(&[row]))?)
        .and_then(|()| writer.finish())
        .map_err(|e| crate::error::EngineError::Internal(format!("a bad row as JSON: {e}")))?;
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(out)
}
