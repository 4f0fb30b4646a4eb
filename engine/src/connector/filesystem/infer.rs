//! The columns of a filesystem table that declares none (a sink that takes its query's
//! columns), read from the files it wrote.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{FileFormat, FilesystemOptions, list_files};
use crate::error::{EngineError, Result};

/// Records of each file looked at to find the types of JSON and CSV columns.
const RECORDS_PER_FILE: usize = 1_000;

/// The columns of every file of `options.path` merged, in the order they first appear (for JSON,
/// the order of the keys of each file's first record): JSON and CSV from their first records,
/// Parquet from the file's own schema. Every column is nullable. An error when there is no file
/// yet.
pub fn infer_schema(table: &str, options: &FilesystemOptions) -> Result<SchemaRef> {
    let error =
        |message: String| EngineError::connector(format!("filesystem table '{table}'"), message);
    let files = list_files(&options.path).map_err(error)?;
    if files.is_empty() {
        return Err(error(format!(
            "{} holds no file yet, so its columns are unknown",
            options.path.display()
        )));
    }
    let mut schemas = vec![];
    let mut key_order = vec![];
    for path in &files {
        let failed = |e: &dyn std::fmt::Display| error(format!("{}: {e}", path.display()));
        let file = File::open(path).map_err(|e| failed(&e))?;
        let schema = match options.format {
            FileFormat::Json => {
                let mut reader = BufReader::new(file);
                let mut first = String::new();
                reader.read_line(&mut first).map_err(|e| failed(&e))?;
                for key in json_keys(&first) {
                    if !key_order.contains(&key) {
                        key_order.push(key);
                    }
                }
                let rest = first.as_bytes().chain(reader);
                datafusion::arrow::json::reader::infer_json_schema(
                    BufReader::new(rest),
                    Some(RECORDS_PER_FILE),
                )
                .map_err(|e| failed(&e))?
                .0
            }
            FileFormat::Csv => {
                datafusion::arrow::csv::reader::Format::default()
                    .with_header(options.csv_header)
                    .with_delimiter(options.csv_delimiter)
                    .infer_schema(file, Some(RECORDS_PER_FILE))
                    .map_err(|e| failed(&e))?
                    .0
            }
            FileFormat::Parquet => ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| failed(&e))?
                .schema()
                .as_ref()
                .clone(),
        };
        schemas.push(schema);
    }
    let merged = Schema::try_merge(schemas).map_err(|e| error(e.to_string()))?;
    let mut fields: Vec<_> =
        merged.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    // Arrow orders inferred JSON columns by name; keep the order they are written in.
    fields.sort_by_key(|f| key_order.iter().position(|k| k == f.name()).unwrap_or(usize::MAX));
    Ok(Arc::new(Schema::new(fields)))
}

/// The keys of the JSON object `line`, in the order written (none when it is not an object).
fn json_keys(line: &str) -> Vec<String> {
    use serde::Deserializer;
    use serde::de::{IgnoredAny, MapAccess, Visitor};

    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = vec![];
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(line.trim()).deserialize_map(Keys).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;

    use super::*;

    fn options(path: &std::path::Path, format: FileFormat) -> FilesystemOptions {
        FilesystemOptions {
            path: path.to_path_buf(),
            format,
            csv_header: true,
            csv_delimiter: b',',
            dead_letter_path: None,
        }
    }

    #[test]
    fn json_columns_are_merged_over_the_files_and_hidden_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-0.jsonl"), "{\"symbol\":\"A\",\"close\":1.5}\n")
            .unwrap();
        std::fs::write(dir.path().join("part-1.jsonl"), "{\"symbol\":\"A\",\"ticks\":3}\n")
            .unwrap();
        std::fs::write(dir.path().join(".part-2.jsonl.tmp"), "{\"hidden\":true}\n").unwrap();
        let schema = infer_schema("t", &options(dir.path(), FileFormat::Json)).unwrap();
        let columns: Vec<(&str, &DataType)> =
            schema.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
        assert_eq!(
            columns,
            [
                ("symbol", &DataType::Utf8),
                ("close", &DataType::Float64),
                ("ticks", &DataType::Int64)
            ]
        );
    }

    #[test]
    fn an_empty_directory_has_no_columns_yet() {
        let dir = tempfile::tempdir().unwrap();
        let err = infer_schema("t", &options(dir.path(), FileFormat::Csv)).unwrap_err();
        assert!(err.to_string().contains("holds no file yet"), "{err}");
    }
}
