//! Window state as one Arrow record batch, for checkpoints.
//!
//! One row per group: the grouping key columns (`k0`, `k1`, ...), the group's `__start` and
//! `__end` (slice start and end, or session first and last event), for sessions the row last
//! written (`__written_start`, `w0`, `w1`, ...), then every aggregate's state columns
//! (`s0_0`, `s0_1`, `s1_0`, ...). The close bound reached so far travels in the metadata.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{Field, Int64Type, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};

use super::aggregates::TakenState;
use super::session::Session;
use super::{WindowAggregate, WindowStore};

/// Checkpointed window state.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The groups, one per row; `None` when there are none.
    pub groups: Option<RecordBatch>,
    /// Windows ending at or before this are closed.
    pub closed_through: i64,
}

fn int64(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(values))
}

impl WindowAggregate {
    /// The whole state, leaving it in place. Call right after [`emit`](Self::emit).
    pub fn snapshot(&mut self) -> DfResult<Snapshot> {
        let n = self.num_groups();
        let (keys, starts, ends, sessions, closed_through) = match &self.store {
            WindowStore::Sliced(store) => {
                let (slices, closed) = store.export();
                let slide = store.slide();
                let keys = slices.iter().map(|s| s.0).collect::<Vec<_>>();
                let starts = slices.iter().map(|s| s.1).collect::<Vec<_>>();
                let ends: Vec<i64> = starts.iter().map(|s| s + slide).collect();
                (keys, starts, ends, None, closed)
            }
            WindowStore::Session(store) => {
                let sessions = store.export();
                let keys = sessions.iter().map(|s| s.key).collect();
                let starts = sessions.iter().map(|s| s.start).collect();
                let ends = sessions.iter().map(|s| s.last).collect();
                (keys, starts, ends, Some(sessions), i64::MIN)
            }
        };
        if n == 0 {
            return Ok(Snapshot { groups: None, closed_through });
        }
        let state = self.aggregates.take_state(n)?;
        let identity: Vec<u32> = (0..n as u32).collect();
        let targets: Vec<usize> = (0..n).collect();
        self.aggregates.restore(&state, &identity, &targets, n)?;

        let mut fields = vec![];
        let mut columns: Vec<ArrayRef> = vec![];
        for (i, column) in self.keys.columns(&keys)?.into_iter().enumerate() {
            fields.push(Field::new(format!("k{i}"), column.data_type().clone(), true));
            columns.push(column);
        }
        fields.push(Field::new("__start", datafusion::arrow::datatypes::DataType::Int64, false));
        columns.push(int64(starts.into_iter().map(Some)));
        fields.push(Field::new("__end", datafusion::arrow::datatypes::DataType::Int64, false));
        columns.push(int64(ends.into_iter().map(Some)));
        if let Some(sessions) = &sessions {
            fields.push(Field::new(
                "__written_start",
                datafusion::arrow::datatypes::DataType::Int64,
                true,
            ));
            columns.push(int64(sessions.iter().map(|s| s.written.as_ref().map(|w| w.0))));
            for (i, field) in self.output.schema.fields().iter().enumerate() {
                let null = ScalarValue::try_from(field.data_type())?;
                let values = sessions
                    .iter()
                    .map(|s| s.written.as_ref().map_or(null.clone(), |w| w.1[i].clone()));
                fields.push(Field::new(format!("w{i}"), field.data_type().clone(), true));
                columns.push(ScalarValue::iter_to_array(values)?);
            }
        }
        for (a, aggregate) in state.columns().iter().enumerate() {
            for (j, column) in aggregate.iter().enumerate() {
                fields.push(Field::new(format!("s{a}_{j}"), column.data_type().clone(), true));
                columns.push(Arc::clone(column));
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(Snapshot { groups: Some(batch), closed_through })
    }

    /// Replaces the (empty) state with a snapshot taken by [`snapshot`](Self::snapshot).
    pub fn restore(&mut self, snapshot: &Snapshot) -> DfResult<()> {
        let Some(batch) = &snapshot.groups else {
            if let WindowStore::Sliced(store) = &mut self.store {
                store.import(vec![], snapshot.closed_through, &mut self.keys);
            }
            return Ok(());
        };
        let n = batch.num_rows();
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| DataFusionError::Internal(format!("checkpoint lacks column {name}")))
        };
        let key_columns: Vec<ArrayRef> = (0..self.key_exprs.len())
            .map(|i| column(&format!("k{i}")).cloned())
            .collect::<DfResult<_>>()?;
        let keys = self.keys.intern(&key_columns, n)?;
        let starts = column("__start")?.as_primitive::<Int64Type>().values().to_vec();
        let ends = column("__end")?.as_primitive::<Int64Type>().values().to_vec();
        match &mut self.store {
            WindowStore::Sliced(store) => {
                store.import(
                    keys.into_iter().zip(starts).collect(),
                    snapshot.closed_through,
                    &mut self.keys,
                );
            }
            WindowStore::Session(store) => {
                let written_start = column("__written_start")?.as_primitive::<Int64Type>().clone();
                let written: Vec<ArrayRef> = (0..self.output.schema.fields().len())
                    .map(|i| column(&format!("w{i}")).cloned())
                    .collect::<DfResult<_>>()?;
                let mut sessions = Vec::with_capacity(n);
                for row in 0..n {
                    let written = if written_start.is_null(row) {
                        None
                    } else {
                        let values = written
                            .iter()
                            .map(|c| ScalarValue::try_from_array(c, row))
                            .collect::<DfResult<Vec<_>>>()?;
                        Some((written_start.value(row), values))
                    };
                    sessions.push(Session {
                        key: keys[row],
                        start: starts[row],
                        last: ends[row],
                        dirty: false,
                        written,
                    });
                }
                store.import(sessions, &mut self.keys);
            }
        }
        let mut state = vec![];
        for (a, fields) in self.aggregates.state_fields()?.iter().enumerate() {
            state.push(
                (0..fields.len())
                    .map(|j| column(&format!("s{a}_{j}")).cloned())
                    .collect::<DfResult<Vec<_>>>()?,
            );
        }
        let identity: Vec<u32> = (0..n as u32).collect();
        let targets: Vec<usize> = (0..n).collect();
        self.aggregates.restore(&TakenState::from_columns(state), &identity, &targets, n)
    }
}
