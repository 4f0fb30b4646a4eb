//! Windowed queries typed at the prompt run on the streaming runtime, writing to memory. The
//! current row of every window (its group key and bounds) is kept, replaced and removed as the
//! query emits. At the prompt the table is redrawn in place after every micro-batch until
//! Ctrl-C; otherwise the query reads a snapshot of its input to the end, closes every window and
//! returns the final rows.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::Dependency;
use tokio::time::Instant;

use super::render::{Rows, table};
use super::session::Failure;
use crate::connector::ChangeKind;
use crate::connector::memory::Changes;
use crate::planner::QueryPlan;
use crate::runtime::{QueryRunner, StepOutcome};

/// At most this many windows are drawn at the prompt: the most recently updated ones.
const MAX_DRAWN: usize = 30;

/// A windowed query planned to run, and where its rows go.
pub struct LiveQuery {
    plan: QueryPlan,
    changes: Changes,
    key: Vec<usize>,
}

/// The columns that identify a window's row among the `GROUP BY` columns: all but `window_end`
/// when `window_start` is there, because a session that grows keeps its start and moves its end
/// (the engine upserts it in place, as a sink keyed by the window start expects).
fn window_identity(plan: &QueryPlan, group: &[usize]) -> Vec<usize> {
    let schema = plan.logical.schema();
    let named = |i: usize, name: &str| schema.field(i).name() == name;
    if group.iter().any(|&i| named(i, "window_start")) {
        group.iter().copied().filter(|&i| !named(i, "window_end")).collect()
    } else {
        group.to_vec()
    }
}

impl LiveQuery {
    /// Wraps `plan`, which writes to `changes`. Its output must hold every `GROUP BY` column
    /// (the window bounds among them), so that each window's row can be replaced in place.
    pub fn new(plan: QueryPlan, changes: Changes) -> Result<Self, Failure> {
        let key = plan
            .logical
            .schema()
            .functional_dependencies()
            .iter()
            .find(|d| d.mode == Dependency::Single && !d.source_indices.is_empty())
            .map(|d| window_identity(&plan, &d.source_indices))
            .ok_or_else(|| Failure {
                position: None,
                message: "select every GROUP BY column (e.g. symbol, window_start, window_end), so that each window's row can be updated in place".to_string(),
            })?;
        Ok(Self { plan, changes, key })
    }

    /// The query's plan.
    pub fn plan(&self) -> &QueryPlan {
        &self.plan
    }

    /// Reads a snapshot of the input to its end, closes every window and returns the final row
    /// of each, ordered by the group key.
    pub async fn run_to_end(self) -> Result<Rows, Failure> {
        let mut windows = Windows::new(Arc::clone(&self.plan.sink_mapping.schema), self.key)?;
        let mut runner = QueryRunner::new(self.plan, true).await?;
        loop {
            let outcome = runner.step().await?;
            windows.apply(self.changes.take())?;
            if outcome.finished {
                return Ok(windows.rows(usize::MAX)?.0);
            }
        }
    }

    /// Follows the input, redrawing the windows on `out` after every micro-batch, until `stop`
    /// completes.
    pub async fn watch(
        self,
        stop: impl Future<Output = ()>,
        out: &mut dyn Write,
    ) -> Result<(), Failure> {
        let interval = self.plan.options.trigger_interval;
        let mut windows = Windows::new(Arc::clone(&self.plan.sink_mapping.schema), self.key)?;
        let mut runner = QueryRunner::new(self.plan, false).await?;
        let mut progress = Progress::default();
        let mut drawn_lines = 0;
        tokio::pin!(stop);
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                () = &mut stop => break,
                outcome = runner.step() => outcome?,
            };
            progress.add(&outcome);
            windows.apply(self.changes.take())?;
            let frame = progress.frame(&windows)?;
            if drawn_lines > 0 {
                // Back to where the last frame started, and clear it.
                write!(out, "\x1b[{drawn_lines}A\x1b[J")?;
            }
            writeln!(out, "{frame}")?;
            out.flush()?;
            drawn_lines = frame.lines().count();
            if !outcome.more_available {
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep_until(started + interval) => {}
                }
            }
        }
        writeln!(out, "stopped after {} micro-batches", progress.batches)?;
        Ok(())
    }
}

/// What a live query did so far.
#[derive(Debug, Default)]
struct Progress {
    batches: usize,
    rows_in: usize,
}

impl Progress {
    fn add(&mut self, outcome: &StepOutcome) {
        self.batches += 1;
        self.rows_in += outcome.rows_in;
    }

    /// The windows as a table, then a status line.
    fn frame(&self, windows: &Windows) -> Result<String, ArrowError> {
        let (rows, hidden) = windows.rows(MAX_DRAWN)?;
        let shown = if hidden > 0 {
            format!("the {MAX_DRAWN} most recently updated of {} windows", windows.len())
        } else {
            format!("{} windows", windows.len())
        };
        Ok(format!(
            "{}\n{shown} · {} rows read · {} micro-batches · Ctrl-C stops",
            table(&rows)?,
            self.rows_in,
            self.batches
        ))
    }
}

/// The current row of every window, by group key.
struct Windows {
    schema: SchemaRef,
    key: Vec<usize>,
    converter: RowConverter,
    /// Per key: when it was last updated, and its row.
    rows: BTreeMap<OwnedRow, (u64, RecordBatch)>,
    updates: u64,
}

impl Windows {
    /// Rows of `schema` whose columns at `key` identify a window.
    fn new(schema: SchemaRef, key: Vec<usize>) -> Result<Self, ArrowError> {
        let fields = key.iter().map(|&i| SortField::new(schema.field(i).data_type().clone()));
        let converter = RowConverter::new(fields.collect())?;
        Ok(Self { schema, key, converter, rows: BTreeMap::new(), updates: 0 })
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    /// Applies changes in order: an upsert replaces the row with the same key, a delete
    /// removes it.
    fn apply(&mut self, changes: Vec<(ChangeKind, RecordBatch)>) -> Result<(), ArrowError> {
        for (kind, batch) in changes {
            let key: Vec<_> = self.key.iter().map(|&i| Arc::clone(batch.column(i))).collect();
            let keys = self.converter.convert_columns(&key)?;
            for row in 0..batch.num_rows() {
                let key = keys.row(row).owned();
                self.updates += 1;
                match kind {
                    ChangeKind::Upsert => {
                        self.rows.insert(key, (self.updates, batch.slice(row, 1)));
                    }
                    ChangeKind::Delete => {
                        self.rows.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    /// At most `limit` rows, the most recently updated, in key order; and how many were left out.
    fn rows(&self, limit: usize) -> Result<(Rows, usize), ArrowError> {
        let mut recent: Vec<u64> = self.rows.values().map(|(updated, _)| *updated).collect();
        recent.sort_unstable_by(|a, b| b.cmp(a));
        let oldest_shown = recent.get(limit.saturating_sub(1)).copied().unwrap_or(0);
        let shown: Vec<&RecordBatch> = self
            .rows
            .values()
            .filter(|(updated, _)| limit >= recent.len() || *updated >= oldest_shown)
            .map(|(_, row)| row)
            .collect();
        let hidden = self.rows.len() - shown.len();
        let batch = concat_batches(&self.schema, shown)?;
        Ok((Rows { schema: Arc::clone(&self.schema), batches: vec![batch] }, hidden))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn batch(rows: &[(&str, i64, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, true),
            Field::new("window", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn counts(rows: &Rows) -> Vec<i64> {
        rows.batches
            .iter()
            .flat_map(|b| b.column(2).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn upserts_replace_and_deletes_remove_by_key_and_rows_come_in_key_order() {
        let first = batch(&[("B", 1, 10), ("A", 2, 20), ("A", 1, 30)]);
        let mut windows = Windows::new(first.schema(), vec![0, 1]).unwrap();
        windows.apply(vec![(ChangeKind::Upsert, first)]).unwrap();
        windows
            .apply(vec![
                (ChangeKind::Upsert, batch(&[("B", 1, 11)])),
                (ChangeKind::Delete, batch(&[("A", 2, 20)])),
            ])
            .unwrap();
        let (rows, hidden) = windows.rows(usize::MAX).unwrap();
        assert_eq!((counts(&rows), hidden), (vec![30, 11], 0));
        let (recent, hidden) = windows.rows(1).unwrap();
        assert_eq!((counts(&recent), hidden), (vec![11], 1), "the most recently updated");
    }
}
