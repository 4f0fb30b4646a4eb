//! Builds the aggregate's output rows: grouping keys and window bounds in GROUP BY order,
//! then the aggregate values.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, TimestampNanosecondArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;

use super::keys::{KeyId, KeyInterner};

/// Where each GROUP BY column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupColumn {
    /// The `n`th grouping key column.
    Key(usize),
    /// `window_start`.
    WindowStart,
    /// `window_end`.
    WindowEnd,
}

/// Assembles output batches in the aggregate's schema.
#[derive(Debug, Clone)]
pub struct OutputBuilder {
    /// Output schema: GROUP BY columns, then one column per aggregate.
    pub schema: SchemaRef,
    /// Source of each GROUP BY column, in order.
    pub group_columns: Vec<GroupColumn>,
    /// Time zone of the window bound columns.
    pub time_zone: Option<Arc<str>>,
}

/// Windows to output: one entry per row.
#[derive(Debug, Default)]
pub struct WindowRows {
    /// Grouping key of each window.
    pub keys: Vec<KeyId>,
    /// Window start, nanoseconds since the epoch.
    pub starts: Vec<i64>,
    /// Window end (exclusive), nanoseconds since the epoch.
    pub ends: Vec<i64>,
}

impl WindowRows {
    /// Adds a window.
    pub fn push(&mut self, key: KeyId, start: i64, end: i64) {
        self.keys.push(key);
        self.starts.push(start);
        self.ends.push(end);
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl OutputBuilder {
    /// One output row per window, with `aggregates` (one array per aggregate, one value per
    /// window).
    pub fn build(
        &self,
        keys: &KeyInterner,
        windows: &WindowRows,
        aggregates: Vec<ArrayRef>,
    ) -> DfResult<RecordBatch> {
        let key_columns = keys.columns(&windows.keys)?;
        let bound = |values: &[i64]| -> ArrayRef {
            Arc::new(
                TimestampNanosecondArray::from(values.to_vec())
                    .with_timezone_opt(self.time_zone.clone()),
            )
        };
        let mut columns: Vec<ArrayRef> = self
            .group_columns
            .iter()
            .map(|c| match c {
                GroupColumn::Key(i) => Arc::clone(&key_columns[*i]),
                GroupColumn::WindowStart => bound(&windows.starts),
                GroupColumn::WindowEnd => bound(&windows.ends),
            })
            .collect();
        columns.extend(aggregates);
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
