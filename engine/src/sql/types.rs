//! SQL column types to Arrow types.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, ExactNumberInfo, TimezoneInfo};

/// The Arrow type of a declared SQL column type, or a message saying why it has none.
pub fn arrow_type(sql: &ast::DataType) -> Result<DataType, String> {
    use ast::DataType as S;
    Ok(match sql {
        S::Boolean | S::Bool => DataType::Boolean,
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) | S::Int2(_) => DataType::Int16,
        S::Int(_) | S::Integer(_) | S::Int4(_) => DataType::Int32,
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        S::Real | S::Float4 | S::Float(_) => DataType::Float32,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Text | S::String(_) | S::Varchar(_) | S::CharVarying(_) | S::Char(_) => DataType::Utf8,
        S::Date => DataType::Date32,
        S::Timestamp(precision, tz) => {
            let unit = match precision {
                None | Some(9) => TimeUnit::Nanosecond,
                Some(6) => TimeUnit::Microsecond,
                Some(3) => TimeUnit::Millisecond,
                Some(0) => TimeUnit::Second,
                Some(p) => return Err(format!("TIMESTAMP({p}): precision must be 0, 3, 6 or 9")),
            };
            let zone = match tz {
                TimezoneInfo::None | TimezoneInfo::WithoutTimeZone => None,
                _ => Some("+00:00".into()),
            };
            DataType::Timestamp(unit, zone)
        }
        S::Decimal(info) | S::Numeric(info) => match info {
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                let p = u8::try_from(*p).map_err(|_| "DECIMAL precision too large".to_string())?;
                let s = i8::try_from(*s).map_err(|_| "DECIMAL scale too large".to_string())?;
                DataType::Decimal128(p, s)
            }
            ExactNumberInfo::Precision(p) => DataType::Decimal128(
                u8::try_from(*p).map_err(|_| "DECIMAL precision too large")?,
                0,
            ),
            ExactNumberInfo::None => DataType::Decimal128(38, 10),
        },
        S::Bytea | S::Binary(_) | S::Varbinary(_) | S::Blob(_) => DataType::Binary,
        other => {
            return Err(format!(
                "type {other} is not supported; use BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, DECIMAL, TEXT, DATE, TIMESTAMP or BYTEA"
            ));
        }
    })
}
