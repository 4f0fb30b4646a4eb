//! Reads ahead: the source is polled (read, decoded) on a task of its own while the runner
//! works, so both cores stay busy and the rows of a micro-batch are decoded before its trigger.
//!
//! While polls return rows, the task keeps polling and queues what they return (continuous
//! intake): at its trigger, the runner takes everything queued at once instead of waiting for
//! a poll to read and decode a whole interval's messages. The task stops when the queue holds
//! `max_rows` rows (one micro-batch: a backlog; the runner takes that and the task reads the
//! next micro-batch while it runs) or when a poll comes back empty; the runner's next request
//! then polls afresh, so rows that arrived since are not left behind for another interval.
//!
//! Positions stay exact: every poll's position is taken right after it, on the task, and
//! [`SourceReader::position`] answers with the position of the last poll handed out, never of
//! one still queued. The queue is bounded, so a slow sink still slows the source.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;

use crate::connector::{Origins, PartitionBatch, Polled, SourceReader};
use crate::error::{EngineError, Result};

/// What the runner tells the polling task.
enum Command {
    /// Poll (at most this many rows in all): the runner waits for a reply, or took the
    /// queue and wants the next micro-batch read ahead.
    Poll(usize),
    /// A checkpoint holds this position.
    Checkpointed(serde_json::Value),
}

/// One poll's result with the source's position right after it.
struct Reply {
    polled: Result<Polled>,
    position: serde_json::Value,
}

impl Reply {
    /// Whether handing it out tells the runner anything: rows, malformed records, finished
    /// partitions, or an error.
    fn has_news(&self) -> bool {
        self.polled.as_ref().map_or(true, |p| {
            !p.batches.is_empty() || !p.malformed.is_empty() || !p.finished.is_empty()
        })
    }
}

/// Polls returned and not yet handed out, oldest first, and what the task is doing.
#[derive(Default)]
struct Queue {
    replies: VecDeque<Reply>,
    /// Replies queued so far.
    pushed: u64,
    /// The runner waits for a reply: the next poll is queued even when it is empty.
    waiting: bool,
    /// The task is polling, or will poll again without being asked.
    reading: bool,
    /// The last poll said more is waiting beyond what it could take in its time.
    flowing: bool,
}

impl Queue {
    /// The rows queued, over all partitions.
    fn rows(&self) -> usize {
        let polls = self.replies.iter().filter_map(|r| r.polled.as_ref().ok());
        polls.flat_map(|p| &p.batches).map(|part| part.batch.num_rows()).sum()
    }

    /// Queues a reply, merged into the last one when both have rows to hand out.
    fn push(&mut self, reply: Reply) {
        self.pushed += 1;
        let Reply { polled: Ok(later), position } = reply else {
            self.replies.push_back(reply);
            return;
        };
        match self.replies.back_mut() {
            Some(Reply { polled: Ok(earlier), position: last }) => {
                merge(earlier, later);
                *last = position;
            }
            _ => self.replies.push_back(Reply { polled: Ok(later), position }),
        }
    }

    /// The oldest queued reply (queued replies with rows are merged, so this is everything up
    /// to the first error, or the error).
    fn take(&mut self) -> Option<Reply> {
        self.replies.pop_front()
    }
}

/// Appends what a later poll returned to `into`. Each partition's rows are concatenated once
/// they are in more than [`MAX_PIECES`] batches: many small polls make many small batches, and
/// every batch costs the micro-batch a little in every operator.
fn merge(into: &mut Polled, later: Polled) {
    into.batches.extend(later.batches);
    if into.batches.len() > MAX_PIECES {
        into.batches = concat_by_partition(std::mem::take(&mut into.batches));
    }
    into.malformed.extend(later.malformed);
    into.finished.extend(later.finished);
    into.partitions = later.partitions;
    into.earliest_record_ms = match (into.earliest_record_ms, later.earliest_record_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    into.more_available = later.more_available;
}

/// Most batches a merged reply holds before each partition's are concatenated.
const MAX_PIECES: usize = 32;

/// The rows of each partition as one batch, partitions in the order they first appear.
fn concat_by_partition(batches: Vec<PartitionBatch>) -> Vec<PartitionBatch> {
    let mut pieces: Vec<(usize, Vec<PartitionBatch>)> = vec![];
    for part in batches {
        match pieces.iter_mut().find(|(p, _)| *p == part.partition) {
            Some((_, parts)) => parts.push(part),
            None => pieces.push((part.partition, vec![part])),
        }
    }
    let mut concatenated = Vec::with_capacity(pieces.len());
    for (partition, parts) in pieces {
        let batches: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
        match concat_batches(&batches[0].schema(), batches) {
            Ok(batch) => {
                let mut origins = Origins::default();
                parts.into_iter().for_each(|p| origins.extend(p.origins));
                concatenated.push(PartitionBatch { partition, batch, origins });
            }
            // Batches of one source share its schema; should they not, they stay apart.
            Err(_) => concatenated.extend(parts),
        }
    }
    concatenated
}

/// What the runner and the polling task share.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a reply is queued.
    queued: Notify,
    /// The consumer lag as of the last poll.
    lag: Mutex<Vec<(usize, i64)>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`SourceReader`] that polls its inner reader ahead of the runner.
pub struct Prefetching {
    /// The reader until the first poll moves it onto the polling task.
    idle: Option<Box<dyn SourceReader>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    shared: Arc<Shared>,
    /// The polling task, awaited on close so that the inner reader is gone when it returns.
    task: Option<tokio::task::JoinHandle<()>>,
    position: serde_json::Value,
    /// The last micro-batch handed out said more was waiting.
    backlog: bool,
}

impl std::fmt::Debug for Prefetching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetching").field("started", &self.task.is_some()).finish()
    }
}

impl Prefetching {
    /// Wraps `inner`; nothing runs before the first poll.
    pub fn new(inner: Box<dyn SourceReader>) -> Self {
        let position = inner.position();
        Self {
            idle: Some(inner),
            commands: None,
            shared: Arc::default(),
            task: None,
            position,
            backlog: false,
        }
    }

    fn start(&mut self, inner: Box<dyn SourceReader>) {
        let (commands, received) = mpsc::unbounded_channel();
        self.task = Some(tokio::spawn(poll_ahead(inner, received, Arc::clone(&self.shared))));
        self.commands = Some(commands);
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or_else(|| EngineError::Internal("the source's polling task stopped".into()))
    }

    /// The next micro-batch's reply and whether more is waiting. What is queued is taken at
    /// once while the task is still reading (what it reads next belongs to the next
    /// micro-batch), or when the queue is full; otherwise a fresh poll is asked for and taken
    /// with it. Working off a backlog, the queue is taken once full, or once the source caught
    /// up (its last poll ended because nothing more was there), so micro-batches stay large.
    async fn next_reply(&mut self, max_rows: usize) -> Result<(Reply, bool)> {
        let mut asked: Option<u64> = None;
        loop {
            let queued = self.shared.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            {
                let mut queue = self.shared.queue();
                let full = queue.rows() >= max_rows;
                let caught_up = !(self.backlog && queue.flowing && queue.reading);
                let ready = match asked {
                    Some(seen) => queue.pushed > seen && (full || caught_up),
                    None => full || (queue.reading && !queue.replies.is_empty() && caught_up),
                };
                if ready {
                    queue.waiting = false;
                    let more = full || queue.flowing;
                    let reply = queue.take().expect("the queue is not empty");
                    return Ok((reply, more));
                }
                if asked.is_none() && !queue.reading {
                    queue.waiting = true;
                    asked = Some(queue.pushed);
                    drop(queue);
                    self.send(Command::Poll(max_rows))?;
                }
            }
            if self.task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                return Err(EngineError::Internal("the source's polling task stopped".into()));
            }
            queued.await;
        }
    }
}

/// The polling task: polls when asked, and keeps polling while polls return rows and the queue
/// has room.
async fn poll_ahead(
    mut inner: Box<dyn SourceReader>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
) {
    let mut max_rows: usize = 1;
    loop {
        let (room, reading) = {
            let queue = shared.queue();
            (max_rows.saturating_sub(queue.rows()), queue.reading)
        };
        let command = if reading && room > 0 {
            match commands.try_recv() {
                Ok(command) => Some(command),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            shared.queue().reading = false;
            match commands.recv().await {
                Some(command) => Some(command),
                None => break,
            }
        };
        match command {
            Some(Command::Checkpointed(position)) => {
                if let Err(error) = inner.checkpointed(&position).await {
                    tracing::warn!(%error, "source could not acknowledge a checkpoint");
                }
                continue;
            }
            Some(Command::Poll(rows)) => max_rows = rows.max(1),
            None => {}
        }
        let room = {
            let mut queue = shared.queue();
            let room = max_rows.saturating_sub(queue.rows());
            queue.reading = room > 0;
            room
        };
        if room == 0 {
            continue;
        }
        let polled = inner.poll(room).await;
        let rows = polled.as_ref().is_ok_and(|p| !p.batches.is_empty());
        let reply = Reply { polled, position: inner.position() };
        *shared.lag.lock().unwrap_or_else(|e| e.into_inner()) = inner.lag();
        let mut queue = shared.queue();
        queue.flowing = reply.polled.as_ref().is_ok_and(|p| p.more_available);
        if reply.has_news() || queue.waiting {
            queue.push(reply);
        }
        queue.reading = rows && queue.rows() < max_rows;
        drop(queue);
        shared.queued.notify_one();
    }
    shared.queue().reading = false;
    inner.close().await;
}

#[async_trait]
impl SourceReader for Prefetching {
    async fn poll(&mut self, max_rows: usize) -> Result<Polled> {
        if let Some(inner) = self.idle.take() {
            self.start(inner);
        }
        let (reply, more) = self.next_reply(max_rows).await?;
        let mut polled = reply.polled?;
        self.position = reply.position;
        polled.more_available = more;
        self.backlog = more;
        if !self.shared.queue().reading {
            // Read the next micro-batch while this one runs.
            self.send(Command::Poll(max_rows))?;
        }
        Ok(polled)
    }

    fn position(&self) -> serde_json::Value {
        self.position.clone()
    }

    fn lag(&self) -> Vec<(usize, i64)> {
        self.shared.lag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn restore(&mut self, position: &serde_json::Value) -> Result<()> {
        let inner = self.idle.as_mut().ok_or_else(|| {
            EngineError::Internal("a source can only be restored before its first poll".into())
        })?;
        inner.restore(position).await?;
        self.position = inner.position();
        Ok(())
    }

    async fn close(&mut self) {
        // Closing the channel ends the task after its current poll.
        self.commands = None;
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "the source's polling task failed");
        }
        if let Some(inner) = self.idle.as_mut() {
            inner.close().await;
        }
    }

    async fn checkpointed(&mut self, position: &serde_json::Value) -> Result<()> {
        match self.idle.as_mut() {
            Some(inner) => inner.checkpointed(position).await,
            None => self.send(Command::Checkpointed(position.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::connector::SourceColumn;
    use crate::connector::filesystem::{FileFormat, FileSource, FilesystemOptions};

    /// A followed (unbounded) JSON file source over `dir`, rows `{"n": ...}`.
    fn source(dir: &Path) -> Box<dyn SourceReader> {
        let options = FilesystemOptions {
            path: dir.to_path_buf(),
            format: FileFormat::Json,
            csv_header: false,
            csv_delimiter: b',',
            dead_letter_path: None,
        };
        let raw = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        Box::new(FileSource::new("t", &options, raw, vec![SourceColumn::Physical], false))
    }

    fn append(path: &Path, numbers: std::ops::Range<i64>) {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        for n in numbers {
            writeln!(file, "{{\"n\": {n}}}").unwrap();
        }
    }

    fn numbers(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    /// A poll that returned `rows` (column `n`) for `partition`.
    fn polled_rows(partition: usize, rows: &[i64]) -> Polled {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let column = Arc::new(datafusion::arrow::array::Int64Array::from(rows.to_vec()));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        Polled { batches: vec![PartitionBatch::new(partition, batch)], ..Polled::default() }
    }

    async fn poll_numbers(source: &mut dyn SourceReader, max_rows: usize) -> Vec<i64> {
        let polled = source.poll(max_rows).await.unwrap();
        numbers(&polled.batches.into_iter().map(|p| p.batch).collect::<Vec<_>>())
    }

    /// What a fresh source restored to `position` reads from there on.
    async fn rest_after(dir: &Path, position: &serde_json::Value) -> Vec<i64> {
        let mut fresh = source(dir);
        fresh.restore(position).await.unwrap();
        poll_numbers(fresh.as_mut(), 1_000_000).await
    }

    #[tokio::test]
    async fn every_row_is_handed_out_once_and_the_position_follows_what_was_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        append(&file, 0..25);
        let mut source = Prefetching::new(source(dir.path()));
        let mut seen = vec![];
        for round in 0..6i64 {
            seen.extend(poll_numbers(&mut source, 10).await);
            // Rows keep arriving while the task reads ahead.
            append(&file, 25 + round * 7..25 + (round + 1) * 7);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let rest = rest_after(dir.path(), &source.position()).await;
            let total = 25 + (round + 1) * 7;
            assert_eq!(rest, (seen.len() as i64..total).collect::<Vec<_>>(), "round {round}");
        }
        while seen.len() < 67 {
            let more = poll_numbers(&mut source, 10).await;
            assert!(!more.is_empty(), "rows left behind after {}", seen.len());
            seen.extend(more);
        }
        assert_eq!(seen, (0..67).collect::<Vec<_>>());
        source.close().await;
    }

    #[tokio::test]
    async fn a_full_queue_stops_reading_ahead() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a.json"), 0..100);
        let mut source = Prefetching::new(source(dir.path()));
        let first = source.poll(10).await.unwrap();
        assert!(first.more_available, "a full batch says more is waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One micro-batch read ahead, no more.
        assert_eq!(source.shared.queue().rows(), 10);
        assert_eq!(rest_after(dir.path(), &source.position()).await, (10..100).collect::<Vec<_>>());
        assert_eq!(poll_numbers(&mut source, 10).await, (10..20).collect::<Vec<_>>());
        source.close().await;
    }

    #[tokio::test]
    async fn rows_that_arrive_after_reading_stopped_are_read_at_the_next_request() {
        // The test runtime has one thread: the polling task runs only while the test awaits.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        append(&file, 0..3);
        let mut source = Prefetching::new(source(dir.path()));
        assert_eq!(poll_numbers(&mut source, 100).await, vec![0, 1, 2]);
        // Read ahead: queued, then a poll finds nothing and reading stops.
        append(&file, 3..5);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(source.shared.queue().rows(), 2);
        assert!(!source.shared.queue().reading);
        append(&file, 5..8);
        assert_eq!(poll_numbers(&mut source, 100).await, vec![3, 4, 5, 6, 7]);
        assert!(rest_after(dir.path(), &source.position()).await.is_empty());
        source.close().await;
    }

    #[test]
    fn queued_polls_merge_up_to_the_first_error_with_the_last_position() {
        let reply = |rows: &[i64], at: i64| {
            let polled = Polled { earliest_record_ms: Some(at), ..polled_rows(0, rows) };
            Reply { polled: Ok(polled), position: serde_json::json!(at) }
        };
        let failed = Reply {
            polled: Err(EngineError::Internal("broken".into())),
            position: serde_json::json!(-1),
        };
        let mut queue = Queue::default();
        for next in [reply(&[1, 2], 20), reply(&[3], 10), failed, reply(&[4], 30)] {
            queue.push(next);
        }
        assert_eq!(queue.rows(), 4);
        let merged = queue.take().unwrap();
        assert_eq!(merged.position, serde_json::json!(10));
        let polled = merged.polled.unwrap();
        assert_eq!(polled.earliest_record_ms, Some(10));
        let batches: Vec<RecordBatch> = polled.batches.into_iter().map(|p| p.batch).collect();
        assert_eq!(numbers(&batches), vec![1, 2, 3]);
        assert_eq!(queue.rows(), 1);
        assert!(queue.take().unwrap().polled.is_err());
        assert_eq!(queue.take().unwrap().position, serde_json::json!(30));
        assert!(queue.take().is_none());
    }

    #[test]
    fn many_small_polls_are_concatenated_per_partition_in_order() {
        let mut queue = Queue::default();
        for n in 0..100i64 {
            let polled = polled_rows(usize::try_from(n % 3).unwrap(), &[n]);
            queue.push(Reply { polled: Ok(polled), position: serde_json::json!(n) });
        }
        let polled = queue.take().unwrap().polled.unwrap();
        assert!(polled.batches.len() <= MAX_PIECES + 3, "{} batches", polled.batches.len());
        for partition in 0..3 {
            let batches: Vec<RecordBatch> = polled
                .batches
                .iter()
                .filter(|p| p.partition == partition)
                .map(|p| p.batch.clone())
                .collect();
            let expected: Vec<i64> = (0..100).filter(|n| n % 3 == partition as i64).collect();
            assert_eq!(numbers(&batches), expected, "partition {partition}");
        }
    }
}
