//! Runs the queries of a directory and keeps them in step with it: added queries start,
//! removed ones stop, changed ones restart, and untouched ones keep running with their state.
//!
//! The directory is checked every few seconds by content, following symlinks, so a Kubernetes
//! ConfigMap update (an atomic swap of the `..data` symlink) is seen like any edit. A file that
//! no longer plans is reported and its queries keep running in their last good version.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::load::load_and_plan;
use super::partitioned::{PartitionedQuery, split_topic};
use super::{QueryRunner, RunStats};
use crate::catalog::SchemaSource;
use crate::checkpoint::CheckpointStore;
use crate::error::{EngineError, Result};
use crate::planner::{PipelineOptions, QueryPlan};
use crate::sql::{VarLookup, loader::sql_files};
use crate::telemetry::health::{QueryState, Readiness};

/// How queries are started.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// The query directory.
    pub dir: PathBuf,
    /// Base pipeline options (before `SET`).
    pub options: PipelineOptions,
    /// Overrides every query's trigger interval.
    pub trigger_interval: Option<Duration>,
    /// Bounded input (`--once`).
    pub once: bool,
    /// Where queries checkpoint, if anywhere.
    pub state_dir: Option<PathBuf>,
    /// Where the columns of tables kept in a store come from.
    pub schema: SchemaSource,
    /// Told where every query stands (`/readyz`, `engine_query_state`).
    pub readiness: Readiness,
}

struct Running {
    fingerprint: String,
    options: PipelineOptions,
    file: PathBuf,
    generation: u64,
    token: CancellationToken,
    handle: JoinHandle<Result<RunStats>>,
}

/// A query that stopped, with how it ended.
#[derive(Debug)]
pub struct Stopped {
    /// The query's name.
    pub name: String,
    /// Its statistics, or why it failed.
    pub result: Result<RunStats>,
}

/// The queries of one directory, running.
pub struct Supervisor {
    config: SupervisorConfig,
    running: BTreeMap<String, Running>,
    signature: u64,
    generation: u64,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("dir", &self.config.dir)
            .field("running", &self.running.keys())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor with nothing running yet.
    pub fn new(config: SupervisorConfig) -> Self {
        Self { config, running: BTreeMap::new(), signature: 0, generation: 0 }
    }

    /// Names of the running queries.
    pub fn running(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// A number that changes each time query `name` is (re)started.
    pub fn generation(&self, name: &str) -> Option<u64> {
        self.running.get(name).map(|r| r.generation)
    }

    /// Whether the directory's `.sql` files changed since the last [`reconcile`](Self::reconcile).
    pub fn changed(&self) -> bool {
        signature(&self.config.dir) != self.signature
    }

    /// Loads and plans the directory and makes the running queries match it. Returns the errors
    /// of files that did not load or plan (their queries keep running as they were).
    pub async fn reconcile(&mut self, vars: VarLookup<'_>) -> Result<Vec<EngineError>> {
        self.signature = signature(&self.config.dir);
        let (pipeline, errors) =
            load_and_plan(&self.config.dir, vars, &self.config.options, &self.config.schema).await;
        let broken: HashSet<PathBuf> = errors.iter().filter_map(error_file).collect();
        let mut wanted = BTreeMap::new();
        for mut query in pipeline.queries {
            if let Some(interval) = self.config.trigger_interval {
                query.options.trigger_interval = interval;
            }
            wanted.insert(query.name.clone(), query);
        }
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let running = &self.running[&name];
            let keep = match wanted.get(&name) {
                Some(query) => {
                    query.fingerprint() == running.fingerprint && query.options == running.options
                }
                None => broken.contains(&running.file),
            };
            if keep {
                wanted.remove(&name);
            } else {
                let why = if wanted.contains_key(&name) { "changed" } else { "removed" };
                tracing::info!(query = %name, "query {why}; stopping it");
                let stopped = self.stop(&name).await;
                log_stopped(&stopped);
            }
        }
        for (name, query) in wanted {
            self.start(name, query).await;
        }
        Ok(errors)
    }

    /// Starts a query; one that cannot start is reported as stopped by
    /// [`collect_finished`](Self::collect_finished), the others start regardless.
    async fn start(&mut self, name: String, query: QueryPlan) {
        let fingerprint = query.fingerprint();
        let options = query.options.clone();
        let file = query.location.file.as_ref().clone();
        let token = CancellationToken::new();
        let readiness = self.config.readiness.clone();
        readiness.report(&name, QueryState::Starting, None);
        let handle = match self.launch(&name, query, &token).await {
            Ok(handle) => {
                tracing::info!(query = %name, "query started");
                handle
            }
            Err(err) => {
                tracing::error!(query = %name, class = %err.class(), error = %err, "query cannot start");
                readiness.report(&name, QueryState::Failed, Some(&err));
                tokio::spawn(async move { Err(err) })
            }
        };
        self.generation += 1;
        self.running.insert(
            name,
            Running { fingerprint, options, file, generation: self.generation, token, handle },
        );
    }

    async fn launch(
        &self,
        name: &str,
        query: QueryPlan,
        token: &CancellationToken,
    ) -> Result<JoinHandle<Result<RunStats>>> {
        let readiness = self.config.readiness.clone();
        if split_topic(&query).is_some() && !self.config.once {
            let query = PartitionedQuery::new(query, self.config.state_dir.as_deref())?;
            let name = name.to_string();
            let token = token.clone();
            return Ok(tokio::spawn(async move {
                readiness.report(&name, QueryState::Running, None);
                let result = query.run(token).await;
                match &result {
                    Ok(_) => readiness.report(&name, QueryState::Finished, None),
                    Err(err) => readiness.report(&name, QueryState::Failed, Some(err)),
                }
                result
            }));
        }
        let mut runner = QueryRunner::new(query, self.config.once).await?;
        if let Some(dir) = &self.config.state_dir {
            runner = runner.with_checkpoints(CheckpointStore::open(dir, name)?).await?;
        }
        Ok(tokio::spawn(runner.prefetching().reporting_to(readiness).run(token.clone())))
    }

    async fn stop(&mut self, name: &str) -> Stopped {
        let running = self.running.remove(name).expect("stopping a running query");
        running.token.cancel();
        self.config.readiness.forget(name);
        Stopped { name: name.to_string(), result: joined(running.handle.await) }
    }

    /// Stops every query after its current micro-batch.
    pub async fn stop_all(&mut self) -> Vec<Stopped> {
        let names: Vec<String> = self.running.keys().cloned().collect();
        let mut stopped = vec![];
        for name in names {
            stopped.push(self.stop(&name).await);
        }
        stopped
    }

    /// Removes and returns the queries that ended by themselves (finished bounded input or
    /// failed).
    pub async fn collect_finished(&mut self) -> Vec<Stopped> {
        let done: Vec<String> = self
            .running
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        let mut stopped = vec![];
        for name in done {
            let running = self.running.remove(&name).expect("listed above");
            stopped.push(Stopped { name, result: joined(running.handle.await) });
        }
        stopped
    }
}

fn joined(
    result: std::result::Result<Result<RunStats>, tokio::task::JoinError>,
) -> Result<RunStats> {
    result.unwrap_or_else(|e| Err(EngineError::Internal(format!("query task panicked: {e}"))))
}

/// Logs how a query ended; true when it failed.
pub fn log_stopped(stopped: &Stopped) -> bool {
    match &stopped.result {
        Ok(stats) => {
            tracing::info!(
                query = %stopped.name,
                rows_in = stats.rows_in,
                rows_out = stats.rows_out,
                late = stats.late,
                malformed = stats.malformed,
                elapsed = ?stats.elapsed,
                events_per_second = stats.events_per_second().round(),
                batch_p50 = ?stats.batch_quantile(0.5),
                batch_p99 = ?stats.batch_quantile(0.99),
                "query stopped"
            );
            false
        }
        Err(err) => {
            tracing::error!(query = %stopped.name, error = %err, "query failed");
            true
        }
    }
}

fn error_file(err: &EngineError) -> Option<PathBuf> {
    match err {
        EngineError::Sql { location, .. } => Some(location.file.as_ref().clone()),
        _ => None,
    }
}

/// A hash of the names and contents of the directory's `.sql` files (symlinks followed).
fn signature(dir: &Path) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in sql_files(dir).unwrap_or_default() {
        file.hash(&mut hasher);
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    hasher.finish()
}
