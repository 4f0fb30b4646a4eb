//! Assigns each event to its window (tumbling, hopping) slice or to its proto-session, and drops
//! late events.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, TimestampNanosecondArray,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result as DfResult;

use super::to_nanos;

/// The column names a window table function adds.
pub const WINDOW_START: &str = "window_start";
/// See [`WINDOW_START`].
pub const WINDOW_END: &str = "window_end";

/// A window table function with its sizes in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `TUMBLE(t, col, size [, offset])`: windows start at `offset + k * size`.
    Tumble {
        /// Window length.
        size: i64,
        /// Shift of the window starts from the epoch, `-size < offset < size`.
        offset: i64,
    },
    /// `HOP(t, col, slide, size [, offset])`: windows start at `offset + k * slide`.
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window length, a multiple of `slide`.
        size: i64,
        /// Shift of the window starts from the epoch, `-slide < offset < slide`.
        offset: i64,
    },
    /// `SESSION(t, col, gap)`.
    Session {
        /// Inactivity that ends a session.
        gap: i64,
    },
}

impl WindowSpec {
    /// The width of the slices state is kept in (`None` for sessions).
    pub fn slice(&self) -> Option<i64> {
        match *self {
            WindowSpec::Tumble { size, .. } => Some(size),
            WindowSpec::Hop { slide, .. } => Some(slide),
            WindowSpec::Session { .. } => None,
        }
    }

    /// The shift of the slice starts from the epoch (0 for sessions).
    pub fn offset(&self) -> i64 {
        match *self {
            WindowSpec::Tumble { offset, .. } | WindowSpec::Hop { offset, .. } => offset,
            WindowSpec::Session { .. } => 0,
        }
    }
}

/// The start of the slice of `width` holding `t`, slices starting at `offset + k * width`.
pub fn slice_start(t: i64, width: i64, offset: i64) -> i64 {
    let offset = offset.rem_euclid(width);
    t - t.saturating_sub(offset).rem_euclid(width)
}

/// What the assigner dropped from a batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Events behind the watermark by more than the allowed lateness.
    pub late: usize,
    /// Events without an event time.
    pub null_time: usize,
}

/// Adds `window_start` and `window_end` to every event of a stream.
///
/// For tumbling and hopping windows these are the bounds of the event's slice (a hopping window
/// is assembled from slices by the aggregate); for sessions they are `[t, t + gap)`.
#[derive(Debug, Clone)]
pub struct WindowAssigner {
    spec: WindowSpec,
    time_index: usize,
    time_zone: Option<Arc<str>>,
    schema: SchemaRef,
}

impl WindowAssigner {
    /// An assigner for batches of `input` whose event time is column `time_index`.
    pub fn new(spec: WindowSpec, input: &Schema, time_index: usize) -> Self {
        let time_zone = match input.field(time_index).data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let schema = Arc::new(windowed_schema(input, time_zone.clone()));
        Self { spec, time_index, time_zone, schema }
    }

    /// The schema of assigned batches: the input's columns, then the window bounds.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The window spec.
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Drops events earlier than `drop_before` (and those without a time), then adds the
    /// window bound columns.
    pub fn assign(
        &self,
        batch: &RecordBatch,
        drop_before: Option<i64>,
    ) -> DfResult<(RecordBatch, Dropped)> {
        let times = to_nanos(batch.column(self.time_index))?;
        let mut dropped = Dropped { late: 0, null_time: times.null_count() };
        let threshold = drop_before.unwrap_or(i64::MIN);
        let keep: BooleanArray =
            times.iter().map(|t| Some(t.is_some_and(|t| t >= threshold))).collect();
        let kept = keep.true_count();
        dropped.late = batch.num_rows() - kept - dropped.null_time;
        let (batch, times) = if kept == batch.num_rows() {
            (batch.clone(), times)
        } else {
            let filtered = filter_record_batch(batch, &keep)?;
            let times = to_nanos(filtered.column(self.time_index))?;
            (filtered, times)
        };
        let offset = self.spec.offset();
        let (starts, ends): (Vec<i64>, Vec<i64>) = times
            .values()
            .iter()
            .map(|&t| match self.spec.slice() {
                Some(width) => {
                    let start = slice_start(t, width, offset);
                    (start, start + width)
                }
                None => match self.spec {
                    WindowSpec::Session { gap } => (t, t.saturating_add(gap)),
                    _ => unreachable!("only sessions have no slice"),
                },
            })
            .unzip();
        let bound = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampNanosecondArray::from(v).with_timezone_opt(self.time_zone.clone()))
        };
        let mut columns = batch.columns().to_vec();
        columns.push(bound(starts));
        columns.push(bound(ends));
        Ok((RecordBatch::try_new(Arc::clone(&self.schema), columns)?, dropped))
    }
}

/// `input`'s fields followed by non-null `window_start` and `window_end` timestamps.
pub fn windowed_schema(input: &Schema, time_zone: Option<Arc<str>>) -> Schema {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    let ty = DataType::Timestamp(TimeUnit::Nanosecond, time_zone);
    fields.push(Field::new(WINDOW_START, ty.clone(), false));
    fields.push(Field::new(WINDOW_END, ty, false));
    Schema::new(fields)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::TimestampNanosecondType;

    use super::*;

    const S: i64 = 1_000_000_000;

    fn batch(times: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("v", DataType::Int64, false),
        ]));
        let n = times.len() as i64;
        let ts = datafusion::arrow::array::TimestampSecondArray::from(times);
        RecordBatch::try_new(
            schema,
            vec![Arc::new(ts), Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap()
    }

    fn bounds(b: &RecordBatch) -> Vec<(i64, i64)> {
        let s = b.column(2).as_primitive::<TimestampNanosecondType>();
        let e = b.column(3).as_primitive::<TimestampNanosecondType>();
        s.values().iter().zip(e.values()).map(|(s, e)| (*s / S, *e / S)).collect()
    }

    #[test]
    fn tumble_aligns_to_epoch_including_negative_times() {
        let input = batch(vec![Some(0), Some(59), Some(60), Some(-1)]);
        let a =
            WindowAssigner::new(WindowSpec::Tumble { size: 60 * S, offset: 0 }, &input.schema(), 0);
        let (out, dropped) = a.assign(&input, None).unwrap();
        assert_eq!(bounds(&out), vec![(0, 60), (0, 60), (60, 120), (-60, 0)]);
        assert_eq!(dropped, Dropped::default());
    }

    #[test]
    fn offsets_shift_the_slice_starts_either_way() {
        let input = batch(vec![Some(0), Some(14), Some(15), Some(-46), Some(-45)]);
        for offset in [15, -45] {
            let spec = WindowSpec::Tumble { size: 60 * S, offset: offset * S };
            let a = WindowAssigner::new(spec, &input.schema(), 0);
            assert_eq!(
                bounds(&a.assign(&input, None).unwrap().0),
                vec![(-45, 15), (-45, 15), (15, 75), (-105, -45), (-45, 15)],
                "offset {offset}"
            );
        }
        let spec = WindowSpec::Hop { slide: 60 * S, size: 300 * S, offset: 15 * S };
        let a = WindowAssigner::new(spec, &input.schema(), 0);
        assert_eq!(bounds(&a.assign(&input, None).unwrap().0)[2], (15, 75));
    }

    #[test]
    fn hop_assigns_slices() {
        let input = batch(vec![Some(61), Some(119)]);
        let a = WindowAssigner::new(
            WindowSpec::Hop { slide: 60 * S, size: 300 * S, offset: 0 },
            &input.schema(),
            0,
        );
        assert_eq!(bounds(&a.assign(&input, None).unwrap().0), vec![(60, 120), (60, 120)]);
    }

    #[test]
    fn late_and_timeless_events_are_dropped_and_counted() {
        let input = batch(vec![Some(10), None, Some(4), Some(5)]);
        let a = WindowAssigner::new(WindowSpec::Session { gap: 3 * S }, &input.schema(), 0);
        let (out, dropped) = a.assign(&input, Some(5 * S)).unwrap();
        assert_eq!(bounds(&out), vec![(10, 13), (5, 8)]);
        assert_eq!(dropped, Dropped { late: 1, null_time: 1 });
        let values: Vec<i64> = out
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(values, vec![0, 3]);
    }
}
