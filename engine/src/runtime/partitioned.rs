//! A query whose Kafka topic is split between replicas (`'scan.partition-assignment' =
//! 'group'`): the consumer group decides which partitions this replica reads, and each of them
//! runs as a task of its own, with its own plan instance, window state, watermark and checkpoint
//! directory (`<state-dir>/<query>/partition-<n>`), so that the replica that takes a partition
//! over restores exactly the state of that partition.
//!
//! A window's result is computed by the replica that holds its partition, so every grouping key
//! must live in one partition (the topic keyed by it, as `ingest` keys ticks by symbol).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{QueryRunner, RunStats};
use crate::checkpoint::CheckpointStore;
use crate::connector::ConnectorSpec;
use crate::connector::kafka::group::{Change, GroupMember};
use crate::connector::kafka::{Assignment, KafkaOptions, KafkaSource};
use crate::error::{EngineError, Result};
use crate::planner::QueryPlan;

/// How often partition tasks are checked for having failed.
const REAP_INTERVAL: Duration = Duration::from_millis(500);

/// The Kafka options of `plan`'s source if replicas split its topic.
pub fn split_topic(plan: &QueryPlan) -> Option<&KafkaOptions> {
    match &plan.source.connector {
        ConnectorSpec::Kafka(options) if options.assignment == Assignment::Group => Some(options),
        _ => None,
    }
}

/// One partition's query, running.
struct PartitionTask {
    token: CancellationToken,
    handle: JoinHandle<Result<RunStats>>,
}

/// A query run as one task per Kafka partition this replica holds in the consumer group.
#[derive(Debug)]
pub struct PartitionedQuery {
    template: QueryPlan,
    options: KafkaOptions,
    state_dir: PathBuf,
    /// This replica's name in partition directories it claims.
    owner: String,
}

impl PartitionedQuery {
    /// `plan`, whose source splits its topic between replicas, checkpointing under `state_dir`
    /// (which every replica must share).
    pub fn new(plan: QueryPlan, state_dir: Option<&Path>) -> Result<Self> {
        let options = split_topic(&plan)
            .ok_or_else(|| {
                EngineError::Internal(format!("query '{}' does not split its topic", plan.name))
            })?
            .clone();
        let Some(state_dir) = state_dir else {
            return Err(EngineError::Config(format!(
                "query '{}' splits topic '{}' between replicas ('scan.partition-assignment' = 'group'), so partitions hand their window state over through checkpoints: pass --state-dir on storage every replica shares",
                plan.name, options.topic
            )));
        };
        Ok(Self {
            template: plan,
            options,
            state_dir: state_dir.to_path_buf(),
            owner: replica_name(),
        })
    }

    /// Runs until `shutdown`, starting and stopping partition tasks as the group assigns and
    /// revokes partitions.
    pub async fn run(self, shutdown: CancellationToken) -> Result<RunStats> {
        let name = self.template.name.clone();
        let group = self.options.group_for(&name);
        let (member, mut changes) =
            GroupMember::join(&self.template.source.name, &group, &self.options)?;
        let member = Arc::new(member);
        tracing::info!(query = %name, %group, topic = %self.options.topic, "joined the consumer group; waiting for partitions");
        let mut tasks = BTreeMap::new();
        let mut stats = RunStats::default();
        let mut reap = tokio::time::interval(REAP_INTERVAL);
        let result = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                change = changes.recv() => match change {
                    Some(Change::Assigned(partitions)) => {
                        tracing::info!(query = %name, ?partitions, "partitions assigned");
                        if let Err(error) = self.start_all(&partitions, &member, &mut tasks).await {
                            break Err(error);
                        }
                    }
                    Some(Change::Revoked { partitions, stopped }) => {
                        tracing::info!(query = %name, ?partitions, "partitions revoked; stopping them");
                        let mut outcome = Ok(());
                        for partition in &partitions {
                            if let Some(task) = tasks.remove(partition) {
                                outcome = outcome.and(settle(&mut stats, &name, *partition, task.stop().await));
                            }
                        }
                        // The rebalance may have given up waiting: nothing is left to tell.
                        stopped.send(()).ok();
                        if let Err(error) = outcome {
                            break Err(error);
                        }
                    }
                    None => break Err(EngineError::Internal("the consumer group member stopped".into())),
                },
                _ = reap.tick() => {
                    if let Err(error) = reap_finished(&mut tasks, &mut stats, &name).await {
                        break Err(error);
                    }
                }
            }
        };
        // Nobody waits for the revocation that leaving causes: every task is stopped here.
        drop(changes);
        let mut outcome = result;
        for (partition, task) in std::mem::take(&mut tasks) {
            outcome = outcome.and(settle(&mut stats, &name, partition, task.stop().await));
        }
        let leaving = Arc::clone(&member);
        if let Err(error) = tokio::task::spawn_blocking(move || leaving.leave()).await {
            tracing::warn!(query = %name, %error, "leaving the consumer group failed");
        }
        outcome.map(|()| stats)
    }

    async fn start_all(
        &self,
        partitions: &[i32],
        member: &Arc<GroupMember>,
        tasks: &mut BTreeMap<i32, PartitionTask>,
    ) -> Result<()> {
        for &partition in partitions {
            if let std::collections::btree_map::Entry::Vacant(slot) = tasks.entry(partition) {
                slot.insert(self.start(partition, member).await?);
            }
        }
        Ok(())
    }

    /// Starts the task of `partition`, restoring the partition's last checkpoint.
    async fn start(&self, partition: i32, member: &Arc<GroupMember>) -> Result<PartitionTask> {
        let plan = self.template.replan().await?;
        let source = KafkaSource::for_partition(
            &plan.source.name,
            &self.options,
            Arc::clone(&plan.source.raw_schema),
            plan.source.source_columns.clone(),
            partition,
            Arc::clone(member),
        )?;
        let store =
            CheckpointStore::claim_partition(&self.state_dir, &plan.name, partition, &self.owner)?;
        let runner = QueryRunner::with_source(plan, Box::new(source), false)?
            .with_checkpoints(store)
            .await?
            .prefetching();
        let token = CancellationToken::new();
        let handle = tokio::spawn(runner.run(token.clone()));
        Ok(PartitionTask { token, handle })
    }
}

impl PartitionTask {
    /// Stops the task after its current micro-batch (whose checkpoint it saves) and waits.
    async fn stop(self) -> Result<RunStats> {
        self.token.cancel();
        self.handle
            .await
            .unwrap_or_else(|e| Err(EngineError::Internal(format!("partition task panicked: {e}"))))
    }
}

/// Adds a stopped task's statistics; a task whose partition another replica took over is no
/// failure of the query.
fn settle(
    stats: &mut RunStats,
    query: &str,
    partition: i32,
    result: Result<RunStats>,
) -> Result<()> {
    match result {
        Ok(run) => {
            stats.absorb(run);
            Ok(())
        }
        Err(EngineError::Fenced(message)) => {
            tracing::warn!(query, partition, %message, "partition taken over by another replica; stopped reading it");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Collects the tasks that ended by themselves; fails with the first failure.
async fn reap_finished(
    tasks: &mut BTreeMap<i32, PartitionTask>,
    stats: &mut RunStats,
    query: &str,
) -> Result<()> {
    let done: Vec<i32> =
        tasks.iter().filter(|(_, t)| t.handle.is_finished()).map(|(&p, _)| p).collect();
    for partition in done {
        let task = tasks.remove(&partition).expect("listed above");
        settle(stats, query, partition, task.stop().await)?;
    }
    Ok(())
}

/// A name for this replica, unique across replicas and restarts: the host (a pod's name), the
/// process and the start time.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map_or_else(|| "localhost".to_string(), |h| h.trim().to_string());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}/{}/{started}", std::process::id())
}
