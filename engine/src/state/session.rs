//! Session windows per grouping key.
//!
//! A session of a key holds events that are less than `gap` apart; it ends `gap` after its last
//! event. An event within `gap` of two sessions bridges them into one. In upsert mode a session
//! whose start moved, or that was merged into another, is retracted: its previously written row
//! is emitted as a delete.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{HashMap, ScalarValue};
use datafusion::error::Result as DfResult;

use super::aggregates::AggregateSet;
use super::keys::{KeyId, KeyInterner};
use super::output::{OutputBuilder, WindowRows};
use super::{Emitted, Trigger};

/// A live session as checkpointed.
#[derive(Debug, Clone)]
pub struct Session {
    /// Grouping key.
    pub key: KeyId,
    /// Time of the first event.
    pub start: i64,
    /// Time of the last event.
    pub last: i64,
    /// Changed since the last emission.
    pub dirty: bool,
    /// The row written for this session (upsert mode) and the start it was written with, kept
    /// to retract it later.
    pub written: Option<(i64, Vec<ScalarValue>)>,
}

/// Per-session aggregate state of a session window query.
#[derive(Debug)]
pub struct SessionWindows {
    gap: i64,
    sessions: Vec<Session>,
    /// The session each session was merged into (itself while it is live).
    merged_into: Vec<usize>,
    by_key: HashMap<KeyId, Vec<usize>>,
}

impl SessionWindows {
    /// Sessions closed by `gap` nanoseconds of inactivity.
    pub fn new(gap: i64) -> Self {
        Self { gap, sessions: vec![], merged_into: vec![], by_key: HashMap::default() }
    }

    /// Number of sessions held (live or merged this micro-batch).
    pub fn num_groups(&self) -> usize {
        self.sessions.len()
    }

    fn live(&self, id: usize) -> usize {
        let mut id = id;
        while self.merged_into[id] != id {
            id = self.merged_into[id];
        }
        id
    }

    /// The session of each row, opening, extending and merging sessions as needed.
    pub fn assign(&mut self, keys: &[KeyId], times: &[i64]) -> Vec<usize> {
        let gap = self.gap;
        let mut ids = Vec::with_capacity(keys.len());
        for (&key, &t) in keys.iter().zip(times) {
            let list = self.by_key.entry(key).or_default();
            let touching: Vec<usize> = list
                .iter()
                .copied()
                .filter(|&s| {
                    let session = &self.sessions[s];
                    t > session.start.saturating_sub(gap) && t < session.last.saturating_add(gap)
                })
                .collect();
            let id = match touching.split_first() {
                None => {
                    let id = self.sessions.len();
                    self.sessions.push(Session {
                        key,
                        start: t,
                        last: t,
                        dirty: true,
                        written: None,
                    });
                    self.merged_into.push(id);
                    list.push(id);
                    id
                }
                Some((&survivor, others)) => {
                    let (mut start, mut last) = (t, t);
                    for &s in &touching {
                        start = start.min(self.sessions[s].start);
                        last = last.max(self.sessions[s].last);
                    }
                    for &other in others {
                        self.merged_into[other] = survivor;
                    }
                    list.retain(|s| !others.contains(s));
                    let session = &mut self.sessions[survivor];
                    session.start = start;
                    session.last = last;
                    session.dirty = true;
                    survivor
                }
            };
            ids.push(id);
        }
        ids
    }

    /// Emits what `trigger` asks for and drops closed sessions.
    pub fn emit(
        &mut self,
        trigger: Trigger,
        aggregates: &mut AggregateSet,
        keys: &mut KeyInterner,
        output: &OutputBuilder,
    ) -> DfResult<Emitted> {
        let bound = trigger.close_bound();
        let gap = self.gap;
        let n = self.sessions.len();
        let is_live = |id: usize| self.merged_into[id] == id;
        let closed = |s: &Session| s.last.saturating_add(gap) <= bound;
        let outputs: Vec<usize> = (0..n)
            .filter(|&id| is_live(id))
            .filter(|&id| {
                let s = &self.sessions[id];
                if trigger.on_close { closed(s) } else { s.dirty }
            })
            .collect();
        let retracted: Vec<Vec<ScalarValue>> = (0..n)
            .filter_map(|id| {
                let s = &self.sessions[id];
                let (start, row) = s.written.as_ref()?;
                (!is_live(id) || *start != s.start).then(|| row.clone())
            })
            .collect();
        let any_closed = (0..n).any(|id| is_live(id) && closed(&self.sessions[id]));
        if outputs.is_empty()
            && retracted.is_empty()
            && !any_closed
            && n == self.by_key.values().map(Vec::len).sum::<usize>()
        {
            return Ok(Emitted::default());
        }

        let state = aggregates.take_state(n)?;
        let position: HashMap<usize, usize> =
            outputs.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let (mut rows, mut targets) = (vec![], vec![]);
        for id in 0..n {
            if let Some(&target) = position.get(&self.live(id)) {
                rows.push(id as u32);
                targets.push(target);
            }
        }
        let mut windows = WindowRows::default();
        for &id in &outputs {
            let s = &self.sessions[id];
            windows.push(s.key, s.start, s.last + gap);
        }
        let values = aggregates.evaluate(&state, &rows, &targets, outputs.len())?;
        let upserts =
            if windows.is_empty() { None } else { Some(output.build(keys, &windows, values)?) };
        if let (Some(batch), false) = (&upserts, trigger.on_close) {
            for (row, &id) in outputs.iter().enumerate() {
                self.sessions[id].written =
                    Some((self.sessions[id].start, row_values(batch, row)?));
            }
        }
        let deletes = retraction_batch(output, retracted)?;

        let kept: Vec<usize> =
            (0..n).filter(|&id| is_live(id) && !closed(&self.sessions[id])).collect();
        let new_index: HashMap<usize, usize> =
            kept.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let (mut rows, mut targets) = (vec![], vec![]);
        for id in 0..n {
            if let Some(&target) = new_index.get(&self.live(id)) {
                rows.push(id as u32);
                targets.push(target);
            }
        }
        aggregates.restore(&state, &rows, &targets, kept.len())?;
        let sessions: Vec<Session> =
            kept.iter().map(|&id| Session { dirty: false, ..self.sessions[id].clone() }).collect();
        self.rebuild(sessions, keys);
        Ok(Emitted { upserts, deletes })
    }

    /// Every session, in group order. Only valid right after an emission, when no session is
    /// merged into another.
    pub fn export(&self) -> Vec<Session> {
        self.sessions.clone()
    }

    /// Replaces the sessions with checkpointed ones.
    pub fn import(&mut self, sessions: Vec<Session>, keys: &mut KeyInterner) {
        self.rebuild(sessions, keys);
    }

    fn rebuild(&mut self, mut sessions: Vec<Session>, keys: &mut KeyInterner) {
        if keys.len() > 1024 {
            let live: datafusion::common::HashSet<KeyId> = sessions.iter().map(|s| s.key).collect();
            if live.len() * 2 < keys.len() {
                let remap = keys.retain(|key| live.contains(&key));
                for s in sessions.iter_mut() {
                    s.key = remap[s.key as usize].unwrap_or_default();
                }
            }
        }
        self.by_key.clear();
        for (id, s) in sessions.iter().enumerate() {
            self.by_key.entry(s.key).or_default().push(id);
        }
        self.merged_into = (0..sessions.len()).collect();
        self.sessions = sessions;
    }
}

fn row_values(batch: &RecordBatch, row: usize) -> DfResult<Vec<ScalarValue>> {
    batch.columns().iter().map(|c| ScalarValue::try_from_array(c, row)).collect()
}

fn retraction_batch(
    output: &OutputBuilder,
    rows: Vec<Vec<ScalarValue>>,
) -> DfResult<Option<RecordBatch>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = (0..output.schema.fields().len())
        .map(|c| ScalarValue::iter_to_array(rows.iter().map(|r| r[c].clone())))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Some(RecordBatch::try_new(output.schema.clone(), columns)?))
}
