//! Every metric the engine exports, in one list with its labels and help text, and the typed
//! events the runtime emits. Labels stay bounded: query, partition, stage, state; never a
//! symbol or a record's values.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (a histogram, or a summary with quantiles).
    Histogram,
}

/// A metric: its name, kind, labels and help text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The exported name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it measures.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric { name, kind, labels, help }
}

/// Rows read from the source.
pub const ROWS_IN: Metric =
    metric("engine_rows_in_total", Kind::Counter, &["query"], "Rows read from the source.");
/// Rows written to the sink.
pub const ROWS_OUT: Metric = metric(
    "engine_rows_out_total",
    Kind::Counter,
    &["query"],
    "Rows written to the sink (upserts and deletes).",
);
/// Wall time of one micro-batch.
pub const BATCH_DURATION: Metric = metric(
    "engine_batch_duration_seconds",
    Kind::Histogram,
    &["query"],
    "Wall time of one micro-batch.",
);
/// Wall clock minus watermark.
pub const WATERMARK_DELAY: Metric = metric(
    "engine_watermark_delay_seconds",
    Kind::Gauge,
    &["query"],
    "Wall clock minus the query's watermark.",
);
/// Events dropped for being later than the allowed lateness.
pub const LATE_EVENTS: Metric = metric(
    "engine_late_events_total",
    Kind::Counter,
    &["query"],
    "Events dropped for arriving later than the allowed lateness.",
);
/// Records sent to the dead-letter destination, by the stage that found them bad.
pub const MALFORMED: Metric = metric(
    "engine_malformed_total",
    Kind::Counter,
    &["query", "stage"],
    "Records skipped and sent to the dead-letter destination (stage: decode, computed, \
     watermark, event-time, query, sink).",
);
/// Failed sink writes (each retried).
pub const SINK_ERRORS: Metric = metric(
    "engine_sink_errors_total",
    Kind::Counter,
    &["query"],
    "Failed sink or dead-letter writes, each retried with backoff.",
);
/// Failed micro-batches (an outage; each retried with backoff).
pub const SOURCE_ERRORS: Metric = metric(
    "engine_source_errors_total",
    Kind::Counter,
    &["query"],
    "Micro-batches failed on a transient error (an outage), each retried with backoff.",
);
/// Messages behind the source's end.
pub const CONSUMER_LAG: Metric = metric(
    "engine_consumer_lag",
    Kind::Gauge,
    &["query", "partition"],
    "Messages behind the source's end (Kafka: high watermark minus next offset).",
);
/// Seconds from the earliest record of a micro-batch to the sink's acknowledgement.
pub const RECORD_TO_SINK: Metric = metric(
    "engine_record_to_sink_seconds",
    Kind::Histogram,
    &["query"],
    "Seconds from the earliest record timestamp of a micro-batch (Kafka: when it was \
     produced) to the sink acknowledging it: the end-to-end latency (a summary).",
);
/// Window groups held in state.
pub const WINDOW_GROUPS: Metric =
    metric("engine_window_groups", Kind::Gauge, &["query"], "Window groups held in state.");
/// Bytes of aggregate state held.
pub const STATE_BYTES: Metric = metric(
    "engine_state_bytes",
    Kind::Gauge,
    &["query"],
    "Bytes of aggregate state held, as the accumulators report it.",
);
/// 1 for the state a query is in, 0 for the others.
pub const QUERY_STATE: Metric = metric(
    "engine_query_state",
    Kind::Gauge,
    &["query", "state"],
    "1 for the state the query is in (starting, running, retrying, finished, failed), 0 for \
     the others; /readyz says why.",
);

/// Every metric the engine exports.
pub const ALL: &[Metric] = &[
    ROWS_IN,
    ROWS_OUT,
    BATCH_DURATION,
    WATERMARK_DELAY,
    LATE_EVENTS,
    MALFORMED,
    SINK_ERRORS,
    SOURCE_ERRORS,
    CONSUMER_LAG,
    RECORD_TO_SINK,
    WINDOW_GROUPS,
    STATE_BYTES,
    QUERY_STATE,
];

/// The metric events of one query.
#[derive(Debug, Clone)]
pub struct QueryMetrics {
    query: String,
}

impl QueryMetrics {
    /// Events of query `query`.
    pub fn new(query: &str) -> Self {
        Self { query: query.to_string() }
    }

    fn counter(&self, metric: Metric, n: usize) {
        counter!(metric.name, "query" => self.query.clone()).increment(n as u64);
    }

    fn gauge(&self, metric: Metric, value: f64) {
        gauge!(metric.name, "query" => self.query.clone()).set(value);
    }

    fn seconds(&self, metric: Metric, value: f64) {
        histogram!(metric.name, "query" => self.query.clone()).record(value);
    }

    /// A micro-batch read `rows`.
    pub fn rows_in(&self, rows: usize) {
        self.counter(ROWS_IN, rows);
    }

    /// A micro-batch wrote `rows`.
    pub fn rows_out(&self, rows: usize) {
        self.counter(ROWS_OUT, rows);
    }

    /// `events` arrived too late and were dropped.
    pub fn late(&self, events: usize) {
        self.counter(LATE_EVENTS, events);
    }

    /// `records` were found bad at `stage` and dead-lettered.
    pub fn dead_lettered(&self, stage: &'static str, records: usize) {
        counter!(MALFORMED.name, "query" => self.query.clone(), "stage" => stage)
            .increment(records as u64);
    }

    /// A sink (or dead-letter) write failed and will be retried.
    pub fn sink_error(&self) {
        self.counter(SINK_ERRORS, 1);
    }

    /// A micro-batch failed on a transient error and will be retried.
    pub fn batch_error(&self) {
        self.counter(SOURCE_ERRORS, 1);
    }

    /// Partition `partition` is `lag` messages behind.
    pub fn lag(&self, partition: usize, lag: i64) {
        let labels = [("query", self.query.clone()), ("partition", partition.to_string())];
        gauge!(CONSUMER_LAG.name, &labels).set(lag as f64);
    }

    /// The oldest record of a micro-batch reached the sink after `wait`.
    pub fn record_to_sink(&self, wait: Duration) {
        self.seconds(RECORD_TO_SINK, wait.as_secs_f64());
    }

    /// A micro-batch took `took`.
    pub fn batch_duration(&self, took: Duration) {
        self.seconds(BATCH_DURATION, took.as_secs_f64());
    }

    /// The watermark is `delay` behind the wall clock.
    pub fn watermark_delay(&self, delay: f64) {
        self.gauge(WATERMARK_DELAY, delay);
    }

    /// The window state holds `groups` groups in `bytes`.
    pub fn state(&self, groups: usize, bytes: usize) {
        self.gauge(WINDOW_GROUPS, groups as f64);
        self.gauge(STATE_BYTES, bytes as f64);
    }

    /// The query is now in `state` (one of `states`).
    pub fn state_is(&self, state: &str, states: &[&'static str]) {
        for &each in states {
            let labels = [("query", self.query.clone()), ("state", each.to_string())];
            gauge!(QUERY_STATE.name, &labels).set(if each == state { 1.0 } else { 0.0 });
        }
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process, describes every metric, and returns its
/// handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".into()),
                &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            )
            .expect("bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness) may already be installed; ours then stays unused.
        let _ignored = metrics::set_global_recorder(recorder);
        for metric in ALL {
            match metric.kind {
                Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
                Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
                Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
            }
        }
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prometheus_shaped() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for metric in ALL {
            assert!(metric.name.starts_with("engine_"), "{}", metric.name);
            assert!(metric.labels.contains(&"query"), "{}", metric.name);
            assert_eq!(metric.kind == Kind::Counter, metric.name.ends_with("_total"));
        }
    }
}
