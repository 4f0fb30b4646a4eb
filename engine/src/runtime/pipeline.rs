//! One query's micro-batch loop, in phases: intake (poll, computed columns, watermarks),
//! process (the query's plans, windows, the aggregate, the sink mapping), deliver (dead letters,
//! sink writes, commit) and checkpoint. A row that fails any row-level evaluation is left out and
//! dead-lettered ([`isolate`](super::isolate)); the micro-batch goes on with the others.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, collect};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::isolate::isolate;
use super::rows::{DeadLetters, Part};
use crate::catalog::TableDef;
use crate::checkpoint::{CheckpointStore, Manifest};
use crate::connector::dead_letter::{DeadLetterWriter, open_dead_letter};
use crate::connector::{ChangeKind, SinkWriter, SourceReader, open_sink, open_source};
use crate::error::{EngineError, ErrorClass, Result};
use crate::planner::{QueryPlan, Stages, WindowedStages};
use crate::runtime::prefetch::Prefetching;
use crate::slot::BatchSlot;
use crate::state::snapshot::Snapshot;
use crate::state::{Trigger, WindowAggregate};
use crate::telemetry::health::{QueryState, Readiness};
use crate::telemetry::metrics::QueryMetrics;
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
    /// Where the source's bad records go.
    dead_letter: Box<dyn DeadLetterWriter>,
    watermarks: WatermarkTracker,
    aggregate: Option<WindowAggregate>,
    epoch: u64,
    bounded: bool,
    checkpoints: Option<CheckpointStore>,
    metrics: QueryMetrics,
    /// Told the query's state, if anyone listens.
    readiness: Option<Readiness>,
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

/// One micro-batch between its phases.
#[derive(Debug, Default)]
struct MicroBatch {
    outcome: StepOutcome,
    /// The rows read, per partition batch.
    parts: Vec<Part>,
    dead_letters: DeadLetters,
    watermark_before: Option<i64>,
    watermark: Option<i64>,
    end_of_input: bool,
    /// The earliest record time among the rows read (milliseconds since the epoch).
    earliest_record_ms: Option<i64>,
}

/// What processing produced for the sink, in the sink's schema.
#[derive(Debug, Default)]
struct Output {
    upserts: Vec<RecordBatch>,
    deletes: Vec<RecordBatch>,
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
        let dead_letter = open_dead_letter(&plan.source.name, &plan.name, &plan.source.connector)?;
        let idle_timeout = plan.source.idle_timeout.or(plan.options.idle_timeout);
        let aggregate = match &plan.stages {
            Stages::Windowed(stages) => Some(stages.new_aggregate()?),
            Stages::Stateless { .. } => None,
        };
        Ok(Self {
            metrics: QueryMetrics::new(&plan.name),
            plan,
            source,
            sink,
            dead_letter,
            watermarks: WatermarkTracker::new(idle_timeout),
            aggregate,
            epoch: 0,
            bounded,
            checkpoints: None,
            readiness: None,
            shutdown: CancellationToken::new(),
        })
    }

    /// Reads each micro-batch while the previous one runs ([`Prefetching`]).
    pub fn prefetching(mut self) -> Self {
        self.source = Box::new(Prefetching::new(self.source));
        self
    }

    /// Tells `readiness` where the query stands (running, retrying an outage, failed).
    pub fn reporting_to(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    fn report(&self, state: QueryState, why: Option<&EngineError>) {
        if let Some(readiness) = &self.readiness {
            readiness.report(&self.plan.name, state, why);
        }
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
    /// Transient errors (outages) are retried with backoff, forever, the query showing as
    /// retrying; any other error stops the query.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<RunStats> {
        self.report(QueryState::Running, None);
        let result = self.run_until_done(shutdown).await;
        match &result {
            Ok(_) => self.report(QueryState::Finished, None),
            Err(err) => self.report(QueryState::Failed, Some(err)),
        }
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
                    if failures > 0 {
                        failures = 0;
                        tracing::info!(query = %self.plan.name, "micro-batch succeeded; running again");
                        self.report(QueryState::Running, None);
                    }
                    stats.record(&outcome, started.elapsed(), began.elapsed());
                    outcome
                }
                Err(_) if shutdown.is_cancelled() => return Ok(stats),
                Err(err) if !self.bounded && err.class() == ErrorClass::Transient => {
                    failures += 1;
                    self.metrics.batch_error();
                    self.report(QueryState::Retrying, Some(&err));
                    let wait = backoff(failures);
                    tracing::warn!(query = %self.plan.name, error = %err, retry_in = ?wait, "micro-batch failed on an outage; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(stats),
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
                Err(err) => {
                    tracing::error!(query = %self.plan.name, class = %err.class(), error = %err, "query stopped");
                    return Err(err);
                }
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

    /// Runs one micro-batch: intake, process, deliver, checkpoint.
    pub async fn step(&mut self) -> Result<StepOutcome> {
        let started = std::time::Instant::now();
        let mut batch = self.intake().await?;
        let output = self.process(&mut batch).await?;
        self.deliver(&mut batch, output).await?;
        self.checkpoint_phase(&batch).await?;
        batch.outcome.finished = batch.end_of_input;
        self.metrics.rows_out(batch.outcome.rows_out);
        self.metrics.batch_duration(started.elapsed());
        Ok(batch.outcome)
    }

    /// Intake: polls the source, completes every partition's rows with their computed columns
    /// and advances the watermarks. Rows failing a computed column or the watermark expression
    /// are left out for the dead-letter destination.
    async fn intake(&mut self) -> Result<MicroBatch> {
        let max_rows = self.plan.options.max_rows_per_batch;
        let polled = self.source.poll(max_rows).await?;
        let now = Instant::now();
        for partition in self.watermarks.partitions()..polled.partitions {
            self.watermarks.register(partition, now);
        }
        for &partition in &polled.finished {
            self.watermarks.finish(partition, now);
        }
        for (partition, lag) in self.source.lag() {
            self.metrics.lag(partition, lag);
        }
        let mut batch = MicroBatch {
            outcome: StepOutcome { more_available: polled.more_available, ..Default::default() },
            watermark_before: self.watermarks.current(),
            earliest_record_ms: polled.earliest_record_ms,
            ..MicroBatch::default()
        };
        batch.dead_letters.undecodable(polled.malformed, &self.metrics);
        for polled in polled.batches {
            batch.outcome.rows_in += polled.batch.num_rows();
            let mut part = Part {
                partition: polled.partition,
                batch: polled.batch,
                origins: polled.origins,
                polled_rows: None,
            };
            let (table, dead) = (&self.plan.source, &mut batch.dead_letters);
            complete(table, &mut part, dead, &self.metrics).await?;
            let latest = latest_event(table, &mut part, dead, &self.metrics).await?;
            self.watermarks.observe(part.partition, latest, now);
            batch.parts.push(part);
        }
        self.metrics.rows_in(batch.outcome.rows_in);
        batch.outcome.more_available |= batch.outcome.rows_in >= max_rows;
        batch.watermark = self.watermarks.advance(now);
        batch.end_of_input =
            self.bounded && self.watermarks.all_finished() && !batch.outcome.more_available;
        Ok(batch)
    }

    /// Process: runs the query's plans over the micro-batch's rows and, for a windowed query,
    /// the window assigner and the aggregate; maps the output to the sink's schema.
    async fn process(&mut self, batch: &mut MicroBatch) -> Result<Output> {
        let inputs: Vec<RecordBatch> = batch.parts.iter().map(|p| p.batch.clone()).collect();
        let parts: Vec<&Part> = batch.parts.iter().collect();
        let (plan, metrics) = (&self.plan, &self.metrics);
        let task_ctx = &plan.task_ctx;
        match (&plan.stages, self.aggregate.as_mut()) {
            (Stages::Stateless { plan: stateless }, _) => {
                let isolated = isolate(&inputs, |rows| {
                    Box::pin(async move {
                        plan.source_slot.fill(rows);
                        let out = collect(Arc::clone(stateless), Arc::clone(task_ctx)).await?;
                        out.iter().map(|b| plan.sink_mapping.apply(b)).collect()
                    })
                })
                .await?;
                batch.dead_letters.rejected("query", &parts, &isolated, metrics)?;
                Ok(Output { upserts: isolated.value, deletes: vec![] })
            }
            (Stages::Windowed(stages), Some(aggregate)) => {
                let lateness = nanos(plan.options.allowed_lateness);
                let drop_before = batch.watermark_before.map(|w| w.saturating_sub(lateness));
                let isolated = isolate(&inputs, |rows| {
                    Box::pin(windowed_rows(plan, stages, rows, drop_before))
                })
                .await?;
                batch.dead_letters.rejected("query", &parts, &isolated, metrics)?;
                let (pre, (late, null_time)) = isolated.value;
                count_dropped(&plan.name, metrics, &mut batch.outcome, late, null_time);
                for rows in &pre {
                    aggregate.update(rows)?;
                }
                let trigger = Trigger {
                    on_close: plan.emit == crate::sql::Emit::OnWindowClose,
                    watermark: batch.watermark,
                    lateness,
                    end_of_input: batch.end_of_input,
                };
                let emitted = aggregate.emit(trigger)?;
                metrics.state(aggregate.num_groups(), aggregate.state_bytes());
                let mut output = Output::default();
                for (rows, into) in
                    [(emitted.upserts, &mut output.upserts), (emitted.deletes, &mut output.deletes)]
                {
                    let Some(rows) = rows else { continue };
                    *into = finish_windows(plan, rows, &mut batch.dead_letters, metrics).await?;
                }
                Ok(output)
            }
            (Stages::Windowed(_), None) => {
                Err(EngineError::Internal("windowed query without state".into()))
            }
        }
    }

    /// Deliver: stores the dead letters, then writes and commits the output (each retried
    /// until it succeeds: nothing is checkpointed before).
    async fn deliver(&mut self, batch: &mut MicroBatch, output: Output) -> Result<()> {
        batch.outcome.malformed += batch.dead_letters.len();
        if !batch.dead_letters.is_empty() {
            self.dead_letter_with_retry(&batch.dead_letters).await?;
        }
        for (batches, kind) in
            [(output.upserts, ChangeKind::Upsert), (output.deletes, ChangeKind::Delete)]
        {
            for rows in batches.iter().filter(|b| b.num_rows() > 0) {
                batch.outcome.rows_out += rows.num_rows();
                self.write_with_retry(rows, kind).await?;
            }
        }
        self.commit_with_retry().await?;
        if let Some(earliest) = batch.earliest_record_ms {
            let waited = (wall_clock().as_millis() as f64 - earliest as f64).max(0.0);
            self.metrics.record_to_sink(Duration::from_secs_f64(waited / 1e3));
        }
        Ok(())
    }

    /// Checkpoint: saves the micro-batch's outcome when it changed anything, and moves to the
    /// next epoch.
    async fn checkpoint_phase(&mut self, batch: &MicroBatch) -> Result<()> {
        let outcome = &batch.outcome;
        if outcome.rows_in > 0
            || outcome.rows_out > 0
            || batch.watermark != batch.watermark_before
            || batch.end_of_input
        {
            self.checkpoint().await?;
        }
        self.epoch += 1;
        if let Some(w) = batch.watermark {
            self.metrics.watermark_delay((nanos(wall_clock()) - w) as f64 / 1e9);
        }
        Ok(())
    }

    async fn dead_letter_with_retry(&mut self, dead: &DeadLetters) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.dead_letter.write(&dead.records).await {
                Ok(()) => {
                    self.recovered(failures);
                    return Ok(());
                }
                Err(err) => {
                    failures += 1;
                    self.retry_write(err, failures).await?;
                }
            }
        }
    }

    async fn write_with_retry(&mut self, batch: &RecordBatch, kind: ChangeKind) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.sink.write(self.epoch, batch, kind).await {
                Ok(()) => {
                    self.recovered(failures);
                    return Ok(());
                }
                Err(err) => {
                    failures += 1;
                    self.retry_write(err, failures).await?;
                }
            }
        }
    }

    async fn commit_with_retry(&mut self) -> Result<()> {
        let mut failures = 0;
        loop {
            match self.sink.commit(self.epoch).await {
                Ok(()) => {
                    self.recovered(failures);
                    return Ok(());
                }
                Err(err) => {
                    failures += 1;
                    self.retry_write(err, failures).await?;
                }
            }
        }
    }

    /// A write succeeded after `failures` failed attempts: the query runs again.
    fn recovered(&self, failures: u32) {
        if failures > 0 {
            tracing::info!(query = %self.plan.name, failures, "write succeeded; running again");
            self.report(QueryState::Running, None);
        }
    }

    /// Counts and logs a failed sink or dead-letter write and waits before the retry; gives up
    /// on errors retrying cannot fix, on bounded input after a few attempts, and when the query
    /// is stopped. While retrying an outage the query shows as retrying.
    async fn retry_write(&mut self, err: EngineError, failures: u32) -> Result<()> {
        self.metrics.sink_error();
        if err.class() != ErrorClass::Transient || (self.bounded && failures >= 5) {
            return Err(err);
        }
        let wait = backoff(failures);
        tracing::warn!(query = %self.plan.name, error = %err, retry_in = ?wait, "write failed; retrying, nothing is committed until it succeeds");
        if failures == 1 {
            self.report(QueryState::Retrying, Some(&err));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = self.shutdown.cancelled() => Err(err),
        }
    }
}

/// Adds the computed columns to a partition's rows.
async fn complete(
    table: &TableDef,
    part: &mut Part,
    dead: &mut DeadLetters,
    metrics: &QueryMetrics,
) -> Result<()> {
    let isolated = isolate(std::slice::from_ref(&part.batch), |batches| {
        Box::pin(
            async move { batches.iter().map(|b| table.complete(b)).collect::<Result<Vec<_>>>() },
        )
    })
    .await?;
    dead.rejected("computed", &[part], &isolated, metrics)?;
    let completed = match isolated.value.into_iter().next() {
        Some(batch) => batch,
        None => RecordBatch::new_empty(Arc::clone(&table.schema)),
    };
    let kept = isolated.kept.into_iter().next().flatten();
    part.narrow(completed, kept);
    Ok(())
}

/// The greatest watermark value of a partition's rows.
async fn latest_event(
    table: &TableDef,
    part: &mut Part,
    dead: &mut DeadLetters,
    metrics: &QueryMetrics,
) -> Result<Option<i64>> {
    let isolated = isolate(std::slice::from_ref(&part.batch), |batches| {
        Box::pin(async move {
            let mut latest = None;
            for batch in &batches {
                latest = latest.max(watermark_of(table, batch)?);
            }
            Ok(latest)
        })
    })
    .await?;
    dead.rejected("watermark", &[part], &isolated, metrics)?;
    if let Some(kept) = isolated.kept.into_iter().next().flatten() {
        let batch = super::isolate::keep(&part.batch, Some(&kept))?;
        part.narrow(batch, Some(kept));
    }
    Ok(isolated.value)
}

/// Counts the events a windowed query dropped (late, or without an event time).
fn count_dropped(
    query: &str,
    metrics: &QueryMetrics,
    outcome: &mut StepOutcome,
    late: usize,
    null_time: usize,
) {
    if null_time > 0 {
        tracing::warn!(query = %query, rows = null_time, "events without an event time skipped");
        metrics.dead_lettered("event-time", null_time);
    }
    if late > 0 {
        tracing::debug!(query = %query, late, "late events dropped");
    }
    metrics.late(late);
    outcome.late = late;
    outcome.malformed += null_time;
}

/// Runs the post plan (HAVING, SELECT list) over emitted windows and maps them to the
/// sink's schema; a window whose row fails is dead-lettered as the query's output.
async fn finish_windows(
    plan: &QueryPlan,
    emitted: RecordBatch,
    dead: &mut DeadLetters,
    metrics: &QueryMetrics,
) -> Result<Vec<RecordBatch>> {
    let Stages::Windowed(stages) = &plan.stages else { return Ok(vec![]) };
    let task_ctx = &plan.task_ctx;
    let emitted = [emitted];
    let isolated = isolate(&emitted, |rows| {
        Box::pin(async move {
            let out = run_post(&stages.post, &stages.aggregate_slot, rows, task_ctx).await?;
            out.iter().map(|b| plan.sink_mapping.apply(b)).collect()
        })
    })
    .await?;
    dead.rejected_output(&plan.name, &emitted, &isolated, metrics)?;
    Ok(isolated.value)
}

/// What a windowed query aggregates from `rows`: the view, the window assigner (dropping events
/// before `drop_before` and those without an event time, counted) and the pre plan.
async fn windowed_rows(
    plan: &QueryPlan,
    stages: &WindowedStages,
    rows: Vec<RecordBatch>,
    drop_before: Option<i64>,
) -> Result<(Vec<RecordBatch>, (usize, usize))> {
    let task_ctx = &plan.task_ctx;
    let input = match &stages.view {
        Some(view) => {
            plan.source_slot.fill(rows);
            collect(Arc::clone(view), Arc::clone(task_ctx)).await?
        }
        None => rows,
    };
    let mut windowed = Vec::with_capacity(input.len());
    let mut dropped = (0, 0);
    for rows in &input {
        let (assigned, lost) = stages.assigner.assign(rows, drop_before)?;
        dropped = (dropped.0 + lost.late, dropped.1 + lost.null_time);
        windowed.push(assigned);
    }
    stages.window_slot.fill(windowed);
    let pre = collect(Arc::clone(&stages.pre), Arc::clone(task_ctx)).await?;
    Ok((pre, dropped))
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
    slot: &Arc<BatchSlot>,
    rows: Vec<RecordBatch>,
    task_ctx: &Arc<TaskContext>,
) -> Result<Vec<RecordBatch>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    slot.fill(rows);
    Ok(collect(Arc::clone(post), Arc::clone(task_ctx)).await?)
}
