//! Tumbling and hopping windows as slices.
//!
//! State is kept per (key, slice), a slice being `slide` wide. A window of `size` is the merge
//! of its `size / slide` slices, so an event is aggregated once however many hopping windows
//! contain it; a tumbling window is the case `slide == size`.

use datafusion::common::{HashMap, HashSet};
use datafusion::error::Result as DfResult;

use super::aggregates::AggregateSet;
use super::keys::{KeyId, KeyInterner};
use super::output::{OutputBuilder, WindowRows};
use super::{Emitted, Trigger};

/// Per-(key, slice) aggregate state of a tumbling or hopping window query.
#[derive(Debug)]
pub struct SlicedWindows {
    size: i64,
    slide: i64,
    groups: HashMap<(KeyId, i64), usize>,
    slices: Vec<(KeyId, i64)>,
    dirty: Vec<bool>,
    closed_through: i64,
}

impl SlicedWindows {
    /// Windows of `size` starting every `slide` nanoseconds; `size` is a multiple of `slide`.
    pub fn new(size: i64, slide: i64) -> Self {
        debug_assert!(size > 0 && slide > 0 && size % slide == 0);
        Self {
            size,
            slide,
            groups: HashMap::default(),
            slices: vec![],
            dirty: vec![],
            closed_through: i64::MIN,
        }
    }

    /// The slice width.
    pub fn slide(&self) -> i64 {
        self.slide
    }

    /// Number of (key, slice) groups held.
    pub fn num_groups(&self) -> usize {
        self.slices.len()
    }

    /// The group of each row: `slice_starts[i]` is the start of row `i`'s slice.
    pub fn assign(&mut self, keys: &[KeyId], slice_starts: &[i64]) -> Vec<usize> {
        let mut ids = Vec::with_capacity(keys.len());
        for (&key, &start) in keys.iter().zip(slice_starts) {
            let next = self.slices.len();
            let id = *self.groups.entry((key, start)).or_insert(next);
            if id == next {
                self.slices.push((key, start));
                self.dirty.push(false);
            }
            self.dirty[id] = true;
            ids.push(id);
        }
        ids
    }

    /// The windows a slice belongs to, by start.
    fn windows_of(&self, slice_start: i64) -> impl Iterator<Item = i64> + use<> {
        let (size, slide) = (self.size, self.slide);
        (0..size / slide).map(move |i| slice_start - i * slide)
    }

    /// Emits what `trigger` asks for and drops slices no open window needs.
    pub fn emit(
        &mut self,
        trigger: Trigger,
        aggregates: &mut AggregateSet,
        keys: &mut KeyInterner,
        output: &OutputBuilder,
    ) -> DfResult<Emitted> {
        let bound = trigger.close_bound();
        let mut windows: Vec<(KeyId, i64)> = vec![];
        if trigger.on_close {
            if bound > self.closed_through {
                for &(key, slice) in &self.slices {
                    for start in self.windows_of(slice) {
                        let end = start + self.size;
                        if end <= bound && end > self.closed_through {
                            windows.push((key, start));
                        }
                    }
                }
            }
        } else {
            for (id, &(key, slice)) in self.slices.iter().enumerate() {
                if self.dirty[id] {
                    windows.extend(self.windows_of(slice).map(|start| (key, start)));
                }
            }
        }
        windows.sort_unstable();
        windows.dedup();
        let expired = |slice: i64| slice + self.size <= bound;
        let any_expired = self.slices.iter().any(|&(_, slice)| expired(slice));
        self.dirty.iter_mut().for_each(|d| *d = false);
        self.closed_through = self.closed_through.max(bound);
        if windows.is_empty() && !any_expired {
            return Ok(Emitted::default());
        }

        let state = aggregates.take_state(self.slices.len())?;
        let mut rows = vec![];
        let mut targets = vec![];
        let mut out = WindowRows::default();
        for (index, &(key, start)) in windows.iter().enumerate() {
            for slice in (0..self.size / self.slide).map(|i| start + i * self.slide) {
                if let Some(&id) = self.groups.get(&(key, slice)) {
                    rows.push(id as u32);
                    targets.push(index);
                }
            }
            out.push(key, start, start + self.size);
        }
        let values = aggregates.evaluate(&state, &rows, &targets, windows.len())?;
        let upserts = if out.is_empty() { None } else { Some(output.build(keys, &out, values)?) };

        let kept: Vec<u32> = (0..self.slices.len())
            .filter(|&id| !expired(self.slices[id].1))
            .map(|id| id as u32)
            .collect();
        let targets: Vec<usize> = (0..kept.len()).collect();
        aggregates.restore(&state, &kept, &targets, kept.len())?;
        let slices: Vec<(KeyId, i64)> = kept.iter().map(|&id| self.slices[id as usize]).collect();
        self.rebuild(slices, keys);
        Ok(Emitted { upserts, deletes: None })
    }

    /// The (key, slice start) of every group, in group order, and the close bound reached.
    pub fn export(&self) -> (Vec<(KeyId, i64)>, i64) {
        (self.slices.clone(), self.closed_through)
    }

    /// Replaces the groups with checkpointed ones (group `i` is `slices[i]`).
    pub fn import(
        &mut self,
        slices: Vec<(KeyId, i64)>,
        closed_through: i64,
        keys: &mut KeyInterner,
    ) {
        self.closed_through = closed_through;
        self.rebuild(slices, keys);
    }

    fn rebuild(&mut self, mut slices: Vec<(KeyId, i64)>, keys: &mut KeyInterner) {
        let live: HashSet<KeyId> = slices.iter().map(|&(key, _)| key).collect();
        if keys.len() > 1024 && live.len() * 2 < keys.len() {
            let remap = keys.retain(|key| live.contains(&key));
            for (key, _) in slices.iter_mut() {
                *key = remap[*key as usize].unwrap_or_default();
            }
        }
        self.groups = slices.iter().enumerate().map(|(id, &slice)| (slice, id)).collect();
        self.dirty = vec![false; slices.len()];
        self.slices = slices;
    }
}
