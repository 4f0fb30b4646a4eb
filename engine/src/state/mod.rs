//! Window state: grouping keys, per-window aggregate state, emission and eviction.

pub mod aggregates;
pub mod keys;
pub mod output;
pub mod session;
pub mod sliced;
pub mod snapshot;

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, new_null_array};
use datafusion::arrow::datatypes::{Field, Schema, TimestampNanosecondType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::physical_expr::PhysicalExpr;

use self::aggregates::AggregateSet;
use self::keys::KeyInterner;
use self::output::OutputBuilder;
use self::session::SessionWindows;
use self::sliced::SlicedWindows;

/// When an emission happens and what it may close.
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    /// `EMIT ON WINDOW CLOSE`: only closed windows are written, once each.
    pub on_close: bool,
    /// The watermark after the micro-batch, nanoseconds since the epoch.
    pub watermark: Option<i64>,
    /// Allowed lateness in nanoseconds: windows close this long after the watermark passes.
    pub lateness: i64,
    /// The input has ended (`--once`): every window closes.
    pub end_of_input: bool,
}

impl Trigger {
    /// Windows ending at or before this instant are closed.
    pub fn close_bound(&self) -> i64 {
        if self.end_of_input {
            i64::MAX
        } else {
            self.watermark.map_or(i64::MIN, |w| w.saturating_sub(self.lateness))
        }
    }
}

/// Rows an emission produces, in the aggregate's output schema.
#[derive(Debug, Default)]
pub struct Emitted {
    /// New or changed windows.
    pub upserts: Option<RecordBatch>,
    /// Rows written earlier that no longer exist (merged or moved sessions).
    pub deletes: Option<RecordBatch>,
}

/// How windows are kept.
#[derive(Debug)]
pub enum WindowStore {
    /// Tumbling and hopping windows.
    Sliced(SlicedWindows),
    /// Session windows.
    Session(SessionWindows),
}

/// A windowed `GROUP BY` kept incrementally across micro-batches.
#[derive(Debug)]
pub struct WindowAggregate {
    key_exprs: Vec<Arc<dyn PhysicalExpr>>,
    start_expr: Arc<dyn PhysicalExpr>,
    aggregates: AggregateSet,
    keys: KeyInterner,
    store: WindowStore,
    output: OutputBuilder,
}

impl WindowAggregate {
    /// An empty aggregate. `start_expr` reads the slice start (tumbling, hopping) or the event
    /// time (sessions) that the window assigner put in `window_start`.
    pub fn new(
        key_exprs: Vec<Arc<dyn PhysicalExpr>>,
        start_expr: Arc<dyn PhysicalExpr>,
        aggregates: AggregateSet,
        keys: KeyInterner,
        store: WindowStore,
        output: OutputBuilder,
    ) -> Self {
        Self { key_exprs, start_expr, aggregates, keys, store, output }
    }

    /// Adds a batch of the aggregate's input.
    pub fn update(&mut self, batch: &RecordBatch) -> DfResult<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let key_columns = self
            .key_exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let keys = self.keys.intern(&key_columns, rows)?;
        let starts = self.start_expr.evaluate(batch)?.into_array(rows)?;
        let starts = starts.as_primitive::<TimestampNanosecondType>().values();
        let (ids, num_groups) = match &mut self.store {
            WindowStore::Sliced(store) => (store.assign(&keys, starts), store.num_groups()),
            WindowStore::Session(store) => (store.assign(&keys, starts), store.num_groups()),
        };
        self.aggregates.update(batch, &ids, num_groups)
    }

    /// Feeds one row of nulls shaped like the input through every accumulator of a throwaway
    /// aggregate, so that aggregates that cannot handle their argument types fail at planning
    /// time rather than on the first micro-batch.
    pub fn probe(mut self, input: &Schema) -> crate::Result<()> {
        let fields: Vec<Field> =
            input.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let columns = fields.iter().map(|f| new_null_array(f.data_type(), 1)).collect();
        let row = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(DataFusionError::from)?;
        Ok(self.aggregates.update(&row, &[0], 1)?)
    }

    /// Emits changed or closed windows and evicts closed ones.
    pub fn emit(&mut self, trigger: Trigger) -> DfResult<Emitted> {
        match &mut self.store {
            WindowStore::Sliced(store) => {
                store.emit(trigger, &mut self.aggregates, &mut self.keys, &self.output)
            }
            WindowStore::Session(store) => {
                store.emit(trigger, &mut self.aggregates, &mut self.keys, &self.output)
            }
        }
    }

    /// Number of window groups held in state.
    pub fn num_groups(&self) -> usize {
        match &self.store {
            WindowStore::Sliced(store) => store.num_groups(),
            WindowStore::Session(store) => store.num_groups(),
        }
    }

    /// Approximate bytes of aggregate state.
    pub fn state_bytes(&self) -> usize {
        self.aggregates.size()
    }
}
