//! Event time: window assignment and watermarks. Pure and deterministic.

pub mod watermark;
pub mod window;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampNanosecondType};
use datafusion::error::Result as DfResult;

/// A timestamp column as nanoseconds since the epoch (nulls stay null).
pub fn to_nanos(column: &ArrayRef) -> DfResult<datafusion::arrow::array::TimestampNanosecondArray> {
    let zone = match column.data_type() {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    let cast = cast(column, &DataType::Timestamp(TimeUnit::Nanosecond, zone))?;
    Ok(cast.as_primitive::<TimestampNanosecondType>().clone())
}
