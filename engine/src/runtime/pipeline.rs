//! One query's micro-batch loop: poll → decode → watermark → window → aggregate → emit → sink.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::physical_plan::{ExecutionPlan, collect};
use metrics::{counter, gauge, histogram};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catalog::TableDef;
use crate::checkpoint::{CheckpointStore, Manifest};
use crate::connector::{ChangeKind, SinkWriter, SourceReader, open_sink, open_source};
use crate::error::{EngineError, Result};
use crate::planner::{QueryPlan, Stages};
use crate::runtime::prefetch::Prefetching;
use crate::state::snapshot::Snapshot;
use crate::state::{Trigger, WindowAggregate};
use crate::telemetry::metrics as m;
use crate::time::to_nanos;
use crate::time::watermark::WatermarkTracker;

/// What one micro-batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    /// Rows read from the source.
    pub rows_in: usize,
    /// Rows written to the sink (upserts and deletes).
    pub rows_out: usize,
    /// A partition returned a full batch: more input is probably waiting.
    pub more_available: bool,
    /// Bounded input is fully processed and every window closed.
    pub finished: bool,
    /// Events dropped for arriving later than the allowed lateness.
    pub late: usize,
    /// Records skipped because they could not be decoded or had no event time.
    pub malformed: usize,
}

/// What a whole run did: totals and the distribution of micro-batch durations.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Rows read.
    pub rows_in: usize,
    /// Rows written.
    pub rows_out: usize,
    /// Late events dropped.
    pub late: usize,
    /// Malformed records skipped.
    pub malformed: usize,
    /// Wall time from the first micro-batch to the end of the last.
    pub elapsed: Duration,
    /// Duration of every micro-batch that read or wrote rows.
    pub batch_durations: Vec<Duration>,
}

impl RunStats {
    fn record(&mut self, outcome: &StepOutcome, batch: Duration, elapsed: Duration) {
        self.rows_in += outcome.rows_in;
        self.rows_out += outcome.rows_out;
        self.late += outcome.late;
        self.malformed += outcome.malformed;
        self.elapsed = elapsed;
        if outcome.rows_in > 0 || outcome.rows_out > 0 {
            self.batch_durations.push(batch);
        }
    }

    /// Adds the totals of `other`, a run that went on alongside this one.
    pub fn absorb(&mut self, other: RunStats) {
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        self.late += other.late;
        self.malformed += other.malformed;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.batch_durations.extend(other.batch_durations);
    }

    /// The `q` quantile (0..=1) of micro-batch durations.
    pub fn batch_quantile(&self, q: f64) -> Duration {
        let mut sorted = self.batch_durations.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * q).round().max(0.0) as usize;
        sorted.get(index).copied().unwrap_or_default()
    }

    /// Rows read per second of wall time.
    pub fn events_per_second(&self) -> f64 {
        self.rows_in as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs one continuous query.
pub struct QueryRunner {
    plan: QueryPlan,
    source: Box<dyn SourceReader>,
    sink: Box<dyn SinkWriter>,
    watermarks: WatermarkTracker,
    aggregate: Option<WindowAggregate>,
    epoch: u64,
    bounded: bool,
    checkpoints: Option<CheckpointStore>,
    /// Cancelled to stop; sink retries give up on it (the unfinished micro-batch is then
    /// replayed from the last checkpoint on restart).
    shutdown: CancellationToken,
}

impl std::fmt::Debug for QueryRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRunner")
            .field("query", &self.plan.name)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl QueryRunner {
    /// Opens the query's source and sink. `bounded` reads the input once to its end and closes
    /// every window (`--once`).
    pub async fn new(plan: QueryPlan, bounded: bool) -> Result<Self> {
        let source = open_source(
            &plan.source.name,
            &plan.name,
            &plan.source.connector,
            Arc::clone(&plan.source.raw_schema),
            plan.source.source_columns.clone(),
            bounded,
        )?;
        Self::with_source(plan, source, bounded)
    }

    /// Runs `plan` reading `source` rather than the source its table declares (one partition of
    /// a split topic).
    pub fn with_source(
        plan: QueryPlan,
        source: Box<dyn SourceReader>,
        bounded: bool,
    ) -> Result<Self> {
        let sink = open_sink(
            &plan.sink.name,
            &plan.name,
            &plan.sink.connector,
            Arc::clone(&plan.sink_mapping.schema),
        )?;
        let idle_timeout = plan.source.idle_timeout.or(plan.options.idle_timeout);
        let aggregate = match &plan.stages {
            Stages::Windowed(stages) => Some(stages.new_aggregate()?),
            Stages::Stateless { .. } => None,
        };
        Ok(Self {
            plan,
            source,
            sink,
            watermarks: WatermarkTracker::new(idle_timeout),
            aggregate,
            epoch: 0,
            bounded,
            checkpoints: None,
            shutdown: CancellationToken::new(),
        })
    }

    /// Reads each micro-batch while the previous one runs ([`Prefetching`]).
    pub fn prefetching(mut self) -> Self {
        self.source = Box::new(Prefetching::new(self.source));
        self
    }

    /// Checkpoints into `store` after every micro-batch, resuming first from the checkpoint
    /// there if it belongs to this query (a changed query starts over, with a warning).
    pub async fn with_checkpoints(mut self, store: CheckpointStore) -> Result<Self> {
        if let Some((manifest, state)) = store.load()? {
            if manifest.fingerprint == self.fingerprint() {
                self.source.restore(&manifest.source).await?;
                self.watermarks
                    .restore(&manifest.watermarks, Instant::now())
                    .map_err(|e| EngineError::Internal(format!("checkpointed watermarks: {e}")))?;
                if let Some(aggregate) = self.aggregate.as_mut() {
                    let snapshot =
                        Snapshot { groups: state, closed_through: manifest.closed_through };
                    aggregate.restore(&snapshot)?;
                }
                self.epoch = manifest.epoch + 1;
                tracing::info!(query = %self.plan.name, epoch = manifest.epoch, "resumed from checkpoint");
            } else {
                tracing::warn!(query = %self.plan.name, "the query changed since its checkpoint; starting over from the source's startup position");
            }
        }
        self.checkpoints = Some(store);
        Ok(self)
    }

    fn fingerprint(&self) -> String {
        self.plan.fingerprint()
    }

    /// Saves a checkpoint after the sink acknowledged the micro-batch, then tells the source.
    async fn checkpoint(&mut self) -> Result<()> {
        let Some(store) = &self.checkpoints else { return Ok(()) };
        let snapshot = match self.aggregate.as_mut() {
            Some(aggregate) => Some(aggregate.snapshot()?),
            None => None,
        };
        let position = self.source.position();
        let manifest = Manifest {
            epoch: self.epoch,
            fingerprint: self.fingerprint(),
            source: position.clone(),
            watermarks: self.watermarks.snapshot(),
            closed_through: snapshot.as_ref().map_or(i64::MIN, |s| s.closed_through),
            state_file: None,
        };
        store.save(manifest, snapshot.as_ref().and_then(|s| s.groups.as_ref()))?;
        self.source.checkpointed(&position).await
    }

    /// Runs micro-batches every trigger interval until `shutdown` or, for bounded input, the end.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<RunStats> {
        let result = self.run_until_done(shutdown).await;
        self.source.close().await;
        result
    }

    async fn run_until_done(&mut self, shutdown: CancellationToken) -> Result<RunStats> {
        self.shutdown = shutdown.clone();
        let mut failures = 0u32;
        let mut stats = RunStats::default();
        let began = Instant::now();
        loop {
            let started = Instant::now();
            let outcome = match self.step().await {
                Ok(outcome) => {
                    failures = 0;
                    stats.record(&outcome, started.elapsed(), began.elapsed());
                    outcome
                }
                Err(_) if shutdown.is_cancelled() => return Ok(stats),
                Err(err) if !self.bounded && err.is_transient() => {
                    failures += 1;
                    counter!(m::SOURCE_ERRORS, "query" => self.plan.name.clone()).increment(1);
                    let wait = backoff(failures);
                    tracing::warn!(query = %self.plan.name, error = %err, retry_in = ?wait, "micro-batch failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(stats),
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
                Err(err) => return Err(err),
            };
            if outcome.finished {
                tracing::info!(query = %self.plan.name, "input finished; every window closed");
                return Ok(stats);
            }
            if shutdown.is_cancelled() {
                return Ok(stats);
            }
            if self.bounded || outcome.more_available {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(stats),
                () = tokio::time::sleep_until(started + self.plan.options.trigger_interval) => {}
            }
        }
    }

    /// Runs one micro-batch.
    pub async fn step(&mut self) -> Result<StepOutcome> {
        let started = std::time::Instant::now();
        let labels = [("query", self.plan.name.clone())];
        let max_rows = self.plan.options.max_rows_per_partition;
        let polled = self.source.poll(max_rows).await?;
        let now = Instant::now();
        for partition in self.watermarks.partitions()..polled.partitions {
            self.watermarks.register(partition, now);
        }
        for &partition in &polled.finished {
            self.watermarks.finish(partition, now);
        }
        for bad in &polled.malformed {
            tracing::warn!(query = %self.plan.name, location = %bad.location, error = %bad.error, "malformed record skipped");
        }
        counter!(m::MALFORMED, &labels).increment(polled.malformed.len() as u64);
        let polled_earliest = polled.earliest_record_ms;
        for (partition, lag) in self.source.lag() {
            let labels = [("query", self.plan.name.clone()), ("partition", partition.to_string())];
            gauge!(m::CONSUMER_LAG, &labels).set(lag as f64);
        }

        let mut outcome = StepOutcome {
            malformed: polled.malformed.len(),
            more_available: polled.more_available,
            ..StepOutcome::default()
        };
        let watermark_before = self.watermarks.current();
        let mut batches = Vec::with_capacity(polled.batches.len());
        for part in polled.batches {
            outcome.rows_in += part.batch.num_rows();
            outcome.more_available |= part.batch.num_rows() >= max_rows;
            let batch = self.plan.source.complete(&part.batch)?;
            self.watermarks.observe(part.partition, watermark_of(&self.plan.source, &batch)?, now);
            batches.push(batch);
        }
        counter!(m::ROWS_IN, &labels).increment(outcome.rows_in as u64);
        let watermark = self.watermarks.advance(now);
        let end_of_input =
            self.bounded && self.watermarks.all_finished() && !outcome.more_available;

        let task_ctx = Arc::clone(&self.plan.task_ctx);
        let (upserts, deletes) = match (&self.plan.stages, self.aggregate.as_mut()) {
            (Stages::Stateless { plan }, _) => {
                self.plan.source_slot.fill(batches);
                (collect(Arc::clone(plan), task_ctx).await?, vec![])
            }
            (Stages::Windowed(stages), Some(aggregate)) => {
                let input = match &stages.view {
                    Some(view) => {
                        self.plan.source_slot.fill(batches);
                        collect(Arc::clone(view), Arc::clone(&task_ctx)).await?
                    }
                    None => batches,
                };
                let lateness = nanos(self.plan.options.allowed_lateness);
                let drop_before = watermark_before.map(|w| w.saturating_sub(lateness));
                let mut windowed = Vec::with_capacity(input.len());
                let mut late = 0;
                for batch in &input {
                    let (assigned, dropped) = stages.assigner.assign(batch, drop_before)?;
                    late += dropped.late;
                    if dropped.null_time > 0 {
                        tracing::warn!(query = %self.plan.name, rows = dropped.null_time, "events without an event time skipped");
                        counter!(m::MALFORMED, &labels).increment(dropped.null_time as u64);
                        outcome.malformed += dropped.null_time;
                    }
                    windowed.push(assigned);
                }
                if late > 0 {
                    tracing::debug!(query = %self.plan.name, late, "late events dropped");
                }
                counter!(m::LATE_EVENTS, &labels).increment(late as u64);
                outcome.late = late;
                stages.window_slot.fill(windowed);
                for batch in collect(Arc::clone(&stages.pre), Arc::clone(&task_ctx)).await? {
                    aggregate.update(&batch)?;
                }
                let trigger = Trigger {
                    on_close: self.plan.emit == crate::sql::Emit::OnWindowClose,
                    watermark,
                    lateness,
                    end_of_input,
                };
                let emitted = aggregate.emit(trigger)?;
                gauge!(m::WINDOW_GROUPS, &labels).set(aggregate.num_groups() as f64);
                gauge!(m::STATE_BYTES, &labels).set(aggregate.state_bytes() as f64);
                let upserts =
                    run_post(&stages.post, &stages.aggregate_slot, emitted.upserts, &task_ctx)
                        .await?;
                let deletes =
                    run_post(&stages.post, &stages.aggregate_slot, emitted.deletes, &task_ctx)
                        .await?;
                (upserts, deletes)
            }
            (Stages::Windowed(_), None) => {
                return Err(EngineError::Internal("windowed query without state".into()));
            }
        };
        for (batches, kind) in [(upserts, ChangeKind::Upsert), (deletes, ChangeKind::Delete)] {
            for batch in batches {
                if batch.num_rows() == 0 {
                    continue;
                }
                let mapped = self.plan.sink_mapping.apply(&batch)?;
                outcome.rows_out += mapped.num_rows();
                self.write_with_retry(&mapped, kind).await?;
            }
        }
        self.commit_with_retry().await?;
        if let Some(earliest) = polled_earliest {
            let now = wall_clock();
            histogram!(m::RECORD_TO_SINK, &labels)
                .record((now.as_millis() as f64 - earliest as f64).max(0.0) / 1e3);
        }
        if outcome.rows_in > 0
            || outcome.rows_out > 0
            || watermark != watermark_before
            || end_of_input
        {
            self.checkpoint().await?;
        }
        self.epoch += 1;
        counter!(m::ROWS_OUT, &labels).increment(outcome.rows_out as u64);
        histogram!(m::BATCH_DURATION, &labels).record(started.elapsed().as_secs_f64());
        if let Some(w) = watermark {
            gauge!(m::WATERMARK_DELAY, &labels).set((nanos(wall_clock()) - w) as f64 / 1e9);
        }
        outcome.finished = end_of_input;
        Ok(outcome)
    }

    async fn write_with_retry(&mut self, batch: &RecordBatch, kind: ChangeKind) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.sink.write(self.epoch, batch, kind).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    failures += 1;
                    sink_failed(&self.plan.name, self.bounded, err, failures, &self.shutdown)
                        .await?;
                }
            }
        }
    }

    async fn commit_with_retry(&mut self) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.sink.commit(self.epoch).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    failures += 1;
                    sink_failed(&self.plan.name, self.bounded, err, failures, &self.shutdown)
                        .await?;
                }
            }
        }
    }
}

/// Counts and logs a sink failure and waits before the retry; gives up on bounded input after
/// a few attempts, and when `shutdown` is cancelled.
async fn sink_failed(
    query: &str,
    bounded: bool,
    err: EngineError,
    failures: u32,
    shutdown: &CancellationToken,
) -> Result<()> {
    counter!(m::SINK_ERRORS, "query" => query.to_string()).increment(1);
    if bounded && failures >= 5 {
        return Err(err);
    }
    let wait = backoff(failures);
    tracing::warn!(query, error = %err, retry_in = ?wait, "sink write failed; retrying, nothing is committed until it succeeds");
    tokio::select! {
        () = tokio::time::sleep(wait) => Ok(()),
        () = shutdown.cancelled() => Err(err),
    }
}

/// Exponential backoff from 100 ms to 30 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(9).saturating_sub(1)))
        .min(Duration::from_secs(30))
}

/// Time since the Unix epoch.
fn wall_clock() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The greatest watermark value of a batch of the source table.
fn watermark_of(table: &TableDef, batch: &RecordBatch) -> Result<Option<i64>> {
    let Some(watermark) = &table.watermark else { return Ok(None) };
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let rows = match watermark.only_column.and_then(|c| latest_row(batch.column(c))) {
        Some(latest) => batch.slice(latest, 1),
        None => batch.clone(),
    };
    let values = watermark.expr.evaluate(&rows)?.into_array(rows.num_rows())?;
    let values = to_nanos(&values)?;
    Ok(max(&values))
}

/// The index of the greatest non-null value of a timestamp column.
fn latest_row(column: &ArrayRef) -> Option<usize> {
    let values = cast(column, &DataType::Int64).ok()?;
    let values = values.as_primitive::<Int64Type>();
    (0..values.len()).filter(|&i| values.is_valid(i)).max_by_key(|&i| values.value(i))
}

async fn run_post(
    post: &Arc<dyn ExecutionPlan>,
    slot: &Arc<crate::slot::BatchSlot>,
    batch: Option<RecordBatch>,
    task_ctx: &Arc<datafusion::execution::TaskContext>,
) -> Result<Vec<RecordBatch>> {
    let Some(batch) = batch else { return Ok(vec![]) };
    slot.fill(vec![batch]);
    Ok(collect(Arc::clone(post), Arc::clone(task_ctx)).await?)
}
