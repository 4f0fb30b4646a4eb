//! Watermarks per source partition, combined as the minimum over the partitions that count.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PartitionClock {
    watermark: Option<i64>,
    #[serde(skip, default = "Instant::now")]
    last_data: Instant,
    finished: bool,
}

/// Tracks the watermark of every partition of one source and the combined watermark.
///
/// A partition counts until it has been idle (no rows) for the idle timeout, or, for bounded
/// input, until it is finished. The combined watermark is the minimum over the partitions that
/// count, and never goes back.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    partitions: Vec<PartitionClock>,
    idle_timeout: Option<Duration>,
    current: Option<i64>,
}

impl WatermarkTracker {
    /// A tracker with no partitions yet; `idle_timeout` of `None` means partitions never idle.
    pub fn new(idle_timeout: Option<Duration>) -> Self {
        Self { partitions: vec![], idle_timeout, current: None }
    }

    fn partition(&mut self, partition: usize, now: Instant) -> &mut PartitionClock {
        while self.partitions.len() <= partition {
            self.partitions.push(PartitionClock {
                watermark: None,
                last_data: now,
                finished: false,
            });
        }
        &mut self.partitions[partition]
    }

    /// Makes `partition` known (it holds the watermark back until it has data or idles).
    pub fn register(&mut self, partition: usize, now: Instant) {
        self.partition(partition, now);
    }

    /// Records that `partition` delivered rows whose greatest watermark value is `watermark`.
    pub fn observe(&mut self, partition: usize, watermark: Option<i64>, now: Instant) {
        let clock = self.partition(partition, now);
        clock.last_data = now;
        if let Some(w) = watermark {
            clock.watermark = Some(clock.watermark.map_or(w, |old| old.max(w)));
        }
    }

    /// Records that `partition` has no more rows, ever (bounded input).
    pub fn finish(&mut self, partition: usize, now: Instant) {
        self.partition(partition, now).finished = true;
    }

    /// Recomputes the combined watermark at `now` and returns it.
    pub fn advance(&mut self, now: Instant) -> Option<i64> {
        let idle_timeout = self.idle_timeout;
        let mut counting = self
            .partitions
            .iter()
            .filter(|p| !p.finished)
            .filter(|p| idle_timeout.is_none_or(|t| now.duration_since(p.last_data) < t))
            .peekable();
        if counting.peek().is_none() {
            // Everything is idle or finished: the furthest partition decides.
            let furthest = self.partitions.iter().filter_map(|p| p.watermark).max();
            self.raise(furthest);
        } else if let Some(min) = counting.map(|p| p.watermark).collect::<Option<Vec<_>>>() {
            self.raise(min.into_iter().min());
        }
        self.current
    }

    fn raise(&mut self, candidate: Option<i64>) {
        if let Some(c) = candidate {
            self.current = Some(self.current.map_or(c, |old| old.max(c)));
        }
    }

    /// Number of partitions known.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Whether every known partition is finished (bounded input read to its end).
    pub fn all_finished(&self) -> bool {
        self.partitions.iter().all(|p| p.finished)
    }

    /// Per-partition watermarks, finished flags and the combined watermark, for a checkpoint.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({ "partitions": self.partitions, "current": self.current })
    }

    /// Restores a [`snapshot`](Self::snapshot); partitions count as active from `now`.
    pub fn restore(&mut self, snapshot: &serde_json::Value, now: Instant) -> Result<(), String> {
        let mut partitions: Vec<PartitionClock> =
            serde_json::from_value(snapshot["partitions"].clone()).map_err(|e| e.to_string())?;
        for p in &mut partitions {
            p.last_data = now;
        }
        self.partitions = partitions;
        self.current =
            serde_json::from_value(snapshot["current"].clone()).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The combined watermark as of the last [`advance`](Self::advance).
    pub fn current(&self) -> Option<i64> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_across_partitions_and_monotonic() {
        let now = Instant::now();
        let mut w = WatermarkTracker::new(None);
        w.register(0, now);
        w.register(1, now);
        w.observe(0, Some(100), now);
        assert_eq!(w.advance(now), None, "partition 1 has no data yet");
        w.observe(1, Some(50), now);
        assert_eq!(w.advance(now), Some(50));
        w.observe(1, Some(200), now);
        assert_eq!(w.advance(now), Some(100));
        w.observe(0, Some(90), now);
        assert_eq!(w.advance(now), Some(100), "never goes back");
    }

    #[test]
    fn idle_partition_does_not_stall() {
        let start = Instant::now();
        let mut w = WatermarkTracker::new(Some(Duration::from_secs(5)));
        w.observe(0, Some(10), start);
        w.observe(1, Some(1000), start);
        assert_eq!(w.advance(start), Some(10));
        let later = start + Duration::from_secs(6);
        w.observe(1, Some(2000), later);
        assert_eq!(w.advance(later), Some(2000), "partition 0 idle");
        w.observe(0, Some(20), later);
        assert_eq!(w.advance(later), Some(2000), "active again but never back");
    }

    #[test]
    fn finished_partitions_do_not_count() {
        let now = Instant::now();
        let mut w = WatermarkTracker::new(None);
        w.observe(0, Some(10), now);
        w.observe(1, Some(500), now);
        w.finish(0, now);
        assert_eq!(w.advance(now), Some(500));
    }
}
