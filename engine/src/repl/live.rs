//! Windowed queries typed at the prompt run on the streaming runtime, writing to memory. The
//! current row of every window (its group key and bounds) is kept, replaced and removed as the
//! query emits. A query either reads a snapshot of its input to the end, closes every window and
//! returns the final rows ([`LiveQuery::run_to_end`]), or follows its input one micro-batch at a
//! time ([`Following`]) for the prompt to redraw.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::Dependency;
use tokio::time::Instant;

use super::{Failure, Rows};
use crate::connector::ChangeKind;
use crate::connector::memory::Changes;
use crate::planner::QueryPlan;
use crate::runtime::QueryRunner;

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
    pub(super) fn new(mut plan: QueryPlan, changes: Changes) -> Result<Self, Failure> {
        // A live query only looks: the source's dead-letter destination belongs to the
        // running queries, so its bad records are counted and logged instead.
        plan.source = Arc::new(plan.source.read_only());
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
    pub(super) fn plan(&self) -> &QueryPlan {
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

    /// Starts following the input: unbounded, a micro-batch per [`Following::step`].
    pub async fn follow(self) -> Result<Following, Failure> {
        let interval = self.plan.options.trigger_interval;
        let windows = Windows::new(Arc::clone(&self.plan.sink_mapping.schema), self.key)?;
        let runner = QueryRunner::new(self.plan, false).await?;
        Ok(Following {
            runner,
            changes: self.changes,
            windows,
            interval,
            idle_until: None,
            micro_batches: 0,
            rows_read: 0,
        })
    }
}

/// A live query following its input, and its windows as of the last micro-batch.
pub struct Following {
    runner: QueryRunner,
    changes: Changes,
    windows: Windows,
    interval: Duration,
    /// The last micro-batch found no more input: the next starts no earlier than this.
    idle_until: Option<Instant>,
    micro_batches: usize,
    rows_read: usize,
}

impl Following {
    /// Runs the next micro-batch and applies what it emitted to the windows. When the previous
    /// one found no more input, it first waits for the trigger interval since that one started.
    /// Dropping the future stops the query where it is.
    pub async fn step(&mut self) -> Result<(), Failure> {
        if let Some(at) = self.idle_until {
            tokio::time::sleep_until(at).await;
        }
        let started = Instant::now();
        let outcome = self.runner.step().await?;
        self.micro_batches += 1;
        self.rows_read += outcome.rows_in;
        self.windows.apply(self.changes.take())?;
        self.idle_until = (!outcome.more_available).then(|| started + self.interval);
        Ok(())
    }

    /// Micro-batches run so far.
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// Input rows read so far.
    pub fn rows_read(&self) -> usize {
        self.rows_read
    }

    /// How many windows have a row.
    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// The rows of at most `limit` windows, the most recently updated, in key order; and how
    /// many were left out.
    pub fn recent_windows(&self, limit: usize) -> Result<(Rows, usize), Failure> {
        Ok(self.windows.rows(limit)?)
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
