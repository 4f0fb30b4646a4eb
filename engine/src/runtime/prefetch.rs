//! Reads one micro-batch ahead: the source polls (reads, decodes) on a task of its own while the
//! runner works on what the previous poll returned, so both cores stay busy.
//!
//! It only reads ahead while there is a backlog (the last poll filled a partition's batch or
//! the source said more is waiting). Otherwise the runner waits for its next trigger, and a
//! poll read ahead would hand it rows that aged meanwhile: the next poll is made at the trigger.
//!
//! Positions stay exact: every poll's position is taken right after it, on the task, and
//! [`SourceReader::position`] answers with the position of the last poll handed out, never of
//! the one read ahead. At most one poll is ahead, so a slow sink still slows the source.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::connector::{Polled, SourceReader};
use crate::error::{EngineError, Result};

/// What the runner asks of the polling task.
enum Command {
    Poll(usize),
    Checkpointed(serde_json::Value),
}

/// One poll's result with the source's state right after it.
struct Reply {
    polled: Result<Polled>,
    position: serde_json::Value,
    lag: Vec<(usize, i64)>,
}

/// A [`SourceReader`] that polls its inner reader one micro-batch ahead.
pub struct Prefetching {
    /// The reader until the first poll moves it onto the polling task.
    idle: Option<Box<dyn SourceReader>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    replies: Option<mpsc::Receiver<Reply>>,
    /// The polling task, awaited on close so that the inner reader is gone when it returns.
    task: Option<tokio::task::JoinHandle<()>>,
    /// A poll was sent and its reply not yet taken.
    ahead: bool,
    position: serde_json::Value,
    lag: Vec<(usize, i64)>,
}

impl std::fmt::Debug for Prefetching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetching").field("ahead", &self.ahead).finish()
    }
}

impl Prefetching {
    /// Wraps `inner`; nothing runs before the first poll.
    pub fn new(inner: Box<dyn SourceReader>) -> Self {
        let position = inner.position();
        Self {
            idle: Some(inner),
            commands: None,
            replies: None,
            task: None,
            ahead: false,
            position,
            lag: vec![],
        }
    }

    fn start(&mut self, mut inner: Box<dyn SourceReader>) {
        let (commands, mut received) = mpsc::unbounded_channel();
        let (replied, replies) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            while let Some(command) = received.recv().await {
                match command {
                    Command::Poll(max_rows) => {
                        let polled = inner.poll(max_rows).await;
                        let reply = Reply { polled, position: inner.position(), lag: inner.lag() };
                        if replied.send(reply).await.is_err() {
                            break;
                        }
                    }
                    Command::Checkpointed(position) => {
                        if let Err(error) = inner.checkpointed(&position).await {
                            tracing::warn!(%error, "source could not acknowledge a checkpoint");
                        }
                    }
                }
            }
            inner.close().await;
        });
        self.task = Some(task);
        self.commands = Some(commands);
        self.replies = Some(replies);
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands
            .as_ref()
            .and_then(|c| c.send(command).ok())
            .ok_or_else(|| EngineError::Internal("the source's polling task stopped".into()))
    }
}

#[async_trait]
impl SourceReader for Prefetching {
    async fn poll(&mut self, max_rows: usize) -> Result<Polled> {
        if let Some(inner) = self.idle.take() {
            self.start(inner);
        }
        if !self.ahead {
            self.send(Command::Poll(max_rows))?;
        }
        let reply = match self.replies.as_mut() {
            Some(replies) => replies.recv().await,
            None => None,
        };
        let Some(reply) = reply else {
            self.ahead = false;
            return Err(EngineError::Internal("the source's polling task stopped".into()));
        };
        self.ahead = false;
        let polled = reply.polled?;
        self.position = reply.position;
        self.lag = reply.lag;
        let backlog =
            polled.more_available || polled.batches.iter().any(|b| b.batch.num_rows() >= max_rows);
        if backlog {
            // Read the next micro-batch while this one runs.
            self.send(Command::Poll(max_rows))?;
            self.ahead = true;
        }
        Ok(polled)
    }

    fn position(&self) -> serde_json::Value {
        self.position.clone()
    }

    fn lag(&self) -> Vec<(usize, i64)> {
        self.lag.clone()
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
        // Closing both channels ends the task after its current poll.
        self.commands = None;
        self.replies = None;
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
