//! Metric names and the recorder. Labels stay bounded: query, source, partition; never symbol.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Rows read from the source, per query.
pub const ROWS_IN: &str = "engine_rows_in_total";
/// Rows written to the sink, per query.
pub const ROWS_OUT: &str = "engine_rows_out_total";
/// Wall time of one micro-batch, per query.
pub const BATCH_DURATION: &str = "engine_batch_duration_seconds";
/// Wall clock minus watermark, per query.
pub const WATERMARK_DELAY: &str = "engine_watermark_delay_seconds";
/// Events dropped for being later than the allowed lateness, per query.
pub const LATE_EVENTS: &str = "engine_late_events_total";
/// Records that could not be decoded, per query.
pub const MALFORMED: &str = "engine_malformed_total";
/// Failed sink writes (each retried), per query.
pub const SINK_ERRORS: &str = "engine_sink_errors_total";
/// Failed micro-batches (a source or server outage; each retried with backoff), per query.
pub const SOURCE_ERRORS: &str = "engine_source_errors_total";
/// Messages behind the source's end (Kafka: high watermark minus next offset), per query and
/// partition.
pub const CONSUMER_LAG: &str = "engine_consumer_lag";
/// Seconds from the earliest record timestamp of a micro-batch (Kafka: when it was produced) to
/// the sink acknowledging the batch, per query: the end-to-end latency. A summary (quantiles).
pub const RECORD_TO_SINK: &str = "engine_record_to_sink_seconds";
/// Window groups held in state, per query.
pub const WINDOW_GROUPS: &str = "engine_window_groups";
/// Bytes of aggregate state held, per query (as the accumulators report it).
pub const STATE_BYTES: &str = "engine_state_bytes";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle.
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
        handle
    })
}
