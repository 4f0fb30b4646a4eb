//! `engine explain`: the logical plan and the streaming stages of a query.

use std::fmt::Write;

use datafusion::physical_plan::displayable;

use super::{QueryPlan, Stages};
use crate::time::window::WindowSpec;

/// A human-readable description of how `query` runs.
pub fn explain(query: &QueryPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "query {} ({})", query.name, query.location);
    let _ = writeln!(out, "  source: {} ({})", query.source.name, query.source.connector.name());
    if let Some(w) = &query.source.watermark {
        let _ = writeln!(out, "  watermark: {} (idle timeout {:?}, allowed lateness {:?})", w.column, query.options.idle_timeout, query.options.allowed_lateness);
    }
    match &query.stages {
        Stages::Stateless { plan } => {
            let _ = writeln!(out, "  stateless: every micro-batch flows through\n{}", indent(&displayable(plan.as_ref()).indent(true).to_string()));
        }
        Stages::Windowed(stages) => {
            if let Some(view) = &stages.view {
                let _ = writeln!(out, "  view stage:\n{}", indent(&displayable(view.as_ref()).indent(true).to_string()));
            }
            let window = match stages.assigner.spec() {
                WindowSpec::Tumble { size } => format!("TUMBLE size {}", seconds(size)),
                WindowSpec::Hop { slide, size } => format!("HOP slide {} size {} (state kept per {} slice)", seconds(slide), seconds(size), seconds(slide)),
                WindowSpec::Session { gap } => format!("SESSION gap {}", seconds(gap)),
            };
            let _ = writeln!(out, "  window: {window}, emit {:?}", query.emit);
            let _ = writeln!(out, "  pre-aggregate stage:\n{}", indent(&displayable(stages.pre.as_ref()).indent(true).to_string()));
            let _ = writeln!(out, "  incremental aggregate: {}", stages.aggregate.describe().join(", "));
            let _ = writeln!(out, "  post-aggregate stage:\n{}", indent(&displayable(stages.post.as_ref()).indent(true).to_string()));
        }
    }
    let _ = writeln!(out, "  sink: {} ({})", query.sink.name, query.sink.connector.name());
    let _ = writeln!(out, "  logical plan:\n{}", indent(&query.logical.display_indent().to_string()));
    out
}

fn seconds(nanos: i64) -> String {
    format!("{}s", nanos as f64 / 1e9)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
