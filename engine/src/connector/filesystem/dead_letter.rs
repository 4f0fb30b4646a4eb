//! A filesystem source's `dead-letter.path`: bad records appended as JSON lines
//! (`{"query", "location", "error", "raw"}`), synced before the micro-batch is checkpointed.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::connector::Malformed;
use crate::connector::dead_letter::DeadLetterWriter;
use crate::error::{EngineError, Result};

/// Appends bad records to one file.
#[derive(Debug)]
pub struct FileDeadLetter {
    table: String,
    query: String,
    path: PathBuf,
}

impl FileDeadLetter {
    /// Appends the bad records of `table` found by `query` to `path` (created with its
    /// directory when missing).
    pub fn new(table: &str, query: &str, path: &Path) -> Self {
        Self { table: table.to_string(), query: query.to_string(), path: path.to_path_buf() }
    }
}

/// One bad record found by `query` as a JSON line; `raw` is the record's text (lossy UTF-8),
/// or for a record without raw bytes (a Parquet row) its decoded values.
fn line(query: &str, record: &Malformed) -> Vec<u8> {
    let raw = record.record.raw.as_deref().map(String::from_utf8_lossy);
    let mut line = serde_json::to_vec(&serde_json::json!({
        "query": query,
        "location": record.location().to_string(),
        "error": record.error,
        "raw": raw,
    }))
    .unwrap_or_default();
    line.push(b'\n');
    line
}

#[async_trait]
impl DeadLetterWriter for FileDeadLetter {
    async fn write(&mut self, records: &[Malformed]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = records.iter().flat_map(|r| line(&self.query, r)).collect();
        let path = self.path.clone();
        let context = format!("dead-letter file {} of table '{}'", path.display(), self.table);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&bytes)?;
            file.sync_data()
        })
        .await
        .map_err(|e| EngineError::Internal(format!("{context}: task failed: {e}")))?
        .map_err(|e| EngineError::io(context, e))
    }
}
