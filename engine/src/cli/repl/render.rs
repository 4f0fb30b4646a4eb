//! How results and errors look: tables for people, CSV and JSON lines for programs.

use std::io::Write;
use std::time::Duration;

use clap::ValueEnum;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::LineDelimited;
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;

use crate::repl::{Failure, Rows};

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns in a box, then the number of rows.
    Table,
    /// A header line, then one line per row.
    Csv,
    /// One JSON object per row and line; nulls written as `null`.
    Json,
}

/// Writes `rows` to `out` in `format`.
pub fn write_rows(out: &mut dyn Write, rows: &Rows, format: Format) -> Result<(), ArrowError> {
    match format {
        Format::Table => {
            let count = rows.count();
            writeln!(out, "{}", table(rows)?)?;
            writeln!(out, "({count} row{})", if count == 1 { "" } else { "s" })?;
        }
        Format::Csv => {
            let mut writer =
                datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(out);
            // An empty batch still writes the header.
            writer.write(&RecordBatch::new_empty(rows.schema.clone()))?;
            for batch in &rows.batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(out);
            for batch in &rows.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

/// The rows as a boxed table.
pub fn table(rows: &Rows) -> Result<String, ArrowError> {
    Ok(pretty_format_batches_with_schema(rows.schema.clone(), &rows.batches)?.to_string())
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Self { position: None, message: format!("cannot write the results: {err}") }
    }
}

/// `Time: 12.345 ms`.
pub fn timing(elapsed: Duration) -> String {
    format!("Time: {:.3} ms", elapsed.as_secs_f64() * 1_000.0)
}

/// A failed statement as printed on standard error: `error at LINE:COL: message`, then the
/// statement's line with a caret under the column, when the position is known.
pub fn error_report(statement: &str, failure: &Failure) -> String {
    let Some((line, column)) = failure.position else {
        return format!("error: {}", failure.message);
    };
    let mut report = format!("error at {line}:{column}: {}", failure.message);
    let text = usize::try_from(line).ok().and_then(|l| statement.lines().nth(l.saturating_sub(1)));
    if let Some(text) = text {
        let pad = usize::try_from(column).unwrap_or(1).saturating_sub(1);
        let indent: String =
            text.chars().take(pad).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        report.push_str(&format!("\n  {text}\n  {indent}^"));
    }
    report
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows() -> Rows {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("A"), None])),
                Arc::new(Int64Array::from(vec![Some(1), Some(2)])),
            ],
        )
        .unwrap();
        Rows { schema, batches: vec![batch] }
    }

    fn text(rows: &Rows, format: Format) -> String {
        let mut out = vec![];
        write_rows(&mut out, rows, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(text(&rows(), Format::Csv), "symbol,n\nA,1\n,2\n");
        assert_eq!(
            text(&rows(), Format::Json),
            "{\"symbol\":\"A\",\"n\":1}\n{\"symbol\":null,\"n\":2}\n"
        );
        let table = text(&rows(), Format::Table);
        assert!(table.contains("| symbol | n |") && table.ends_with("(2 rows)\n"), "{table}");
        let empty = Rows { schema: rows().schema, batches: vec![] };
        assert_eq!(text(&empty, Format::Csv), "symbol,n\n");
        assert_eq!(text(&empty, Format::Json), "");
    }

    #[test]
    fn errors_point_at_their_column() {
        let failure = Failure { position: Some((2, 8)), message: "no such column".into() };
        assert_eq!(
            error_report("SELECT\n  1 AS x, y", &failure),
            "error at 2:8: no such column\n    1 AS x, y\n         ^"
        );
        let nowhere = Failure { position: None, message: "broken".into() };
        assert_eq!(error_report("SELECT", &nowhere), "error: broken");
    }
}
