//! The `filesystem` connector: a directory (or one file) of JSON lines, CSV or Parquet.
//!
//! As a source every file is a partition, read incrementally; files that appear later become new
//! partitions. As a sink every micro-batch that produced rows becomes one new file.

mod dead_letter;
mod infer;
mod sink;
mod source;

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

pub use self::dead_letter::FileDeadLetter;
pub use self::infer::infer_schema;
pub use self::sink::FileSink;
pub use self::source::FileSource;
use super::ChangeKind;
use crate::error::{EngineError, Result};
use crate::options::Options;

/// The options the connector accepts.
pub const OPTIONS: &[&str] =
    &["connector", "path", "format", "csv.header", "csv.delimiter", "dead-letter.path"];

/// File format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line.
    Json,
    /// Comma (or `csv.delimiter`) separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// Validated `WITH` options of a filesystem table.
#[derive(Debug, Clone)]
pub struct FilesystemOptions {
    /// The directory or file.
    pub path: PathBuf,
    /// The format of every file.
    pub format: FileFormat,
    /// CSV files start with a header line.
    pub csv_header: bool,
    /// CSV field delimiter.
    pub csv_delimiter: u8,
    /// As a source: the file bad records are appended to (JSON lines), if any.
    pub dead_letter_path: Option<PathBuf>,
}

impl FilesystemOptions {
    /// Takes the filesystem options out of `options`.
    pub fn from_options(options: &mut Options) -> Result<Self> {
        let path = options.pull_required("path", "the directory or file to read or write")?;
        let format = match options.pull_choice("format", &["json", "csv", "parquet"])? {
            Some("json") => FileFormat::Json,
            Some("csv") => FileFormat::Csv,
            Some(_) => FileFormat::Parquet,
            None => {
                return Err(EngineError::sql(
                    options.statement_location().clone(),
                    format!(
                        "table '{}' needs option 'format' ('json', 'csv' or 'parquet')",
                        options.table()
                    ),
                ));
            }
        };
        let csv_header = options.pull_bool("csv.header")?.unwrap_or(true);
        let csv_delimiter = match options.pull_str("csv.delimiter") {
            None => b',',
            Some(o) if o.value.len() == 1 => o.value.as_bytes()[0],
            Some(o) => {
                return crate::sql_err!(
                    o.location,
                    "'csv.delimiter' must be one character, found '{}'",
                    o.value
                );
            }
        };
        let dead_letter_path = options.pull_str("dead-letter.path").map(|o| PathBuf::from(o.value));
        Ok(Self {
            path: PathBuf::from(path.value),
            format,
            csv_header,
            csv_delimiter,
            dead_letter_path,
        })
    }
}

/// The files of a table: `root` itself when it is a file, else the files of the directory
/// `root` that are not hidden (a sink's files being written are), sorted by name.
pub fn list_files(root: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    if !root.is_dir() {
        return Err(format!(
            "{} does not exist; create it or fix the table's 'path' option",
            root.display()
        ));
    }
    let listing_failed = |e: std::io::Error| format!("cannot list {}: {e}", root.display());
    let mut files = vec![];
    for entry in std::fs::read_dir(root).map_err(listing_failed)? {
        let entry = entry.map_err(listing_failed)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Appends `batch` as JSON lines to `out`; deleted rows carry `"__op":"delete"`.
pub fn json_lines(batch: &RecordBatch, kind: ChangeKind, out: &mut Vec<u8>) -> Result<()> {
    let batch = match kind {
        ChangeKind::Upsert => batch.clone(),
        ChangeKind::Delete => with_delete_marker(batch)?,
    };
    let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(out);
    writer
        .write(&batch)
        .and_then(|()| writer.finish())
        .map_err(|e| EngineError::Internal(format!("JSON encoding: {e}")))
}

fn with_delete_marker(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields: Vec<Field> =
        batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("__op", DataType::Utf8, false));
    let mut columns = batch.columns().to_vec();
    let marker: ArrayRef = std::sync::Arc::new(StringArray::from(vec!["delete"; batch.num_rows()]));
    columns.push(marker);
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .map_err(|e| EngineError::Internal(format!("delete marker: {e}")))
}
