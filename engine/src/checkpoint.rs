//! Checkpoints: source position, watermarks and window state of one query, written together
//! after the sink acknowledged a micro-batch.
//!
//! Layout of a query's directory: `state-<epoch>.arrow` (the window state, Arrow IPC) is written
//! and synced first, then `manifest.json` is replaced atomically (write, sync, rename). The
//! manifest names its state file, so a crash at any point leaves either the old checkpoint or the
//! new one; state files no manifest names are deleted after the rename.
//!
//! When replicas split a Kafka topic, each partition has a directory of its own,
//! `<query>/partition-<n>`, on storage they share. A replica claims it by writing its name into
//! `owner` before restoring; a checkpoint is only saved while `owner` still names the saver, so
//! a replica that lost a partition without noticing cannot overwrite its new owner's progress.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// What a checkpoint records besides the window state itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The last micro-batch whose output the sink acknowledged.
    pub epoch: u64,
    /// Identifies the query text and its source; a different query does not restore this state.
    pub fingerprint: String,
    /// The source's position after that micro-batch.
    pub source: serde_json::Value,
    /// Per-partition watermarks and the combined watermark.
    pub watermarks: serde_json::Value,
    /// Windows ending at or before this are closed.
    pub closed_through: i64,
    /// The window state file, if the query holds state.
    pub state_file: Option<String>,
}

/// A query's checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    /// The replica that claimed this directory, for partition directories.
    owner: Option<String>,
}

/// `name` with every character a file name could trip over replaced by `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect()
}

impl CheckpointStore {
    /// The checkpoints of query `name` under `state_dir`.
    pub fn open(state_dir: &Path, name: &str) -> Result<Self> {
        Self::create(state_dir.join(file_safe(name)), None)
    }

    /// The checkpoints of Kafka partition `partition` of query `name`, claimed for `owner`.
    pub fn claim_partition(
        state_dir: &Path,
        name: &str,
        partition: i32,
        owner: &str,
    ) -> Result<Self> {
        let dir = state_dir.join(file_safe(name)).join(format!("partition-{partition}"));
        let store = Self::create(dir, Some(owner.to_string()))?;
        store.replace("owner", owner.as_bytes())?;
        Ok(store)
    }

    fn create(dir: PathBuf, owner: Option<String>) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            EngineError::io(
                format!("cannot create state directory {} (check --state-dir)", dir.display()),
                e,
            )
        })?;
        Ok(Self { dir, owner })
    }

    /// Fails with [`EngineError::Fenced`] when another replica claimed this directory since.
    fn check_owner(&self) -> Result<()> {
        let Some(owner) = &self.owner else { return Ok(()) };
        let current = std::fs::read_to_string(self.dir.join("owner"))
            .map_err(|e| self.io("reading the owner", e))?;
        if &current != owner {
            return Err(EngineError::Fenced(format!(
                "{} now belongs to {current}",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Replaces file `name` with `contents` atomically and durably (write, sync, rename).
    fn replace(&self, name: &str, contents: &[u8]) -> Result<()> {
        let what = format!("writing {name}");
        let temp = self.dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&temp).map_err(|e| self.io(&what, e))?;
        file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| self.io(&what, e))?;
        std::fs::rename(&temp, self.dir.join(name)).map_err(|e| self.io(&what, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("syncing the directory", e))
    }

    fn io(&self, what: &str, e: std::io::Error) -> EngineError {
        EngineError::io(format!("checkpoint in {}: {what}", self.dir.display()), e)
    }

    /// The latest checkpoint, if any.
    pub fn load(&self) -> Result<Option<(Manifest, Option<RecordBatch>)>> {
        let path = self.dir.join("manifest.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("reading manifest.json", e)),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            EngineError::Config(format!(
                "{} is not a checkpoint manifest ({e}); move it away to start over",
                path.display()
            ))
        })?;
        let state = match &manifest.state_file {
            None => None,
            Some(name) => {
                let file = File::open(self.dir.join(name)).map_err(|e| self.io(name, e))?;
                let reader = FileReader::try_new(file, None)
                    .map_err(|e| EngineError::Internal(format!("{name}: {e}")))?;
                let batches = reader
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| EngineError::Internal(format!("{name}: {e}")))?;
                match batches.as_slice() {
                    [] => None,
                    [first, ..] => Some(
                        datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
                            .map_err(|e| EngineError::Internal(format!("{name}: {e}")))?,
                    ),
                }
            }
        };
        Ok(Some((manifest, state)))
    }

    /// Writes a checkpoint durably, replacing the previous one.
    pub fn save(&self, mut manifest: Manifest, state: Option<&RecordBatch>) -> Result<()> {
        self.check_owner()?;
        manifest.state_file = match state {
            None => None,
            Some(batch) => {
                let name = format!("state-{:012}.arrow", manifest.epoch);
                let file = File::create(self.dir.join(&name)).map_err(|e| self.io(&name, e))?;
                let mut writer = FileWriter::try_new(file, &batch.schema())
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                writer.write(batch).map_err(|e| EngineError::Internal(e.to_string()))?;
                writer.finish().map_err(|e| EngineError::Internal(e.to_string()))?;
                writer.get_ref().sync_all().map_err(|e| self.io(&name, e))?;
                Some(name)
            }
        };
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        self.replace("manifest.json", &text)?;
        self.remove_stale(manifest.state_file.as_deref())
    }

    fn remove_stale(&self, keep: Option<&str>) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir).map_err(|e| self.io("listing", e))? {
            let name = entry.map_err(|e| self.io("listing", e))?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("state-") && Some(name.as_ref()) != keep {
                std::fs::remove_file(self.dir.join(name.as_ref()))
                    .map_err(|e| self.io("removing an old state file", e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn manifest(epoch: u64) -> Manifest {
        Manifest {
            epoch,
            fingerprint: "q".into(),
            source: serde_json::json!({"offsets": [1, 2]}),
            watermarks: serde_json::json!(null),
            closed_through: 7,
            state_file: None,
        }
    }

    #[test]
    fn save_then_load_round_trips_and_keeps_one_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), "10_candles#2").unwrap();
        assert!(store.load().unwrap().is_none());
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        store.save(manifest(1), Some(&batch)).unwrap();
        store.save(manifest(2), Some(&batch)).unwrap();
        let (loaded, state) = store.load().unwrap().unwrap();
        assert_eq!(loaded.epoch, 2);
        assert_eq!(loaded.state_file.as_deref(), Some("state-000000000002.arrow"));
        assert_eq!(state.unwrap(), batch);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("10_candles_2"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
    }

    #[test]
    fn a_partition_claimed_by_another_replica_refuses_the_old_owners_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let first = CheckpointStore::claim_partition(dir.path(), "q", 3, "replica-a").unwrap();
        first.save(manifest(1), None).unwrap();
        let second = CheckpointStore::claim_partition(dir.path(), "q", 3, "replica-b").unwrap();
        assert_eq!(second.load().unwrap().unwrap().0.epoch, 1, "the new owner restores");
        let refused = first.save(manifest(2), None).unwrap_err();
        assert!(matches!(refused, EngineError::Fenced(_)), "{refused}");
        assert!(refused.to_string().contains("replica-b"), "{refused}");
        second.save(manifest(2), None).unwrap();
        assert_eq!(second.load().unwrap().unwrap().0.epoch, 2);
        assert!(dir.path().join("q/partition-3/manifest.json").exists());
    }
}
