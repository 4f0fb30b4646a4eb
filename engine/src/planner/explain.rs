//! `engine explain`: the logical plan and the streaming stages of a query.

use datafusion::physical_plan::{ExecutionPlan, displayable};

use super::{QueryPlan, Stages};
use crate::time::window::WindowSpec;

/// A human-readable description of how `query` runs.
pub fn explain(query: &QueryPlan) -> String {
    let mut lines = vec![
        format!("query {} ({})", query.name, query.location),
        format!("  source: {} ({})", query.source.name, query.source.connector_name()),
    ];
    if let Some(w) = &query.source.watermark {
        lines.push(format!(
            "  watermark: {} (idle timeout {:?}, allowed lateness {:?})",
            w.column, query.options.idle_timeout, query.options.allowed_lateness
        ));
    }
    match &query.stages {
        Stages::Stateless { plan } => {
            lines
                .push(format!("  stateless, every micro-batch flows through:\n{}", physical(plan)));
        }
        Stages::Windowed(stages) => {
            if let Some(view) = &stages.view {
                lines.push(format!("  view stage:\n{}", physical(view)));
            }
            let window = match stages.assigner.spec() {
                WindowSpec::Tumble { size, offset } => {
                    format!("TUMBLE size {} offset {}", seconds(size), seconds(offset))
                }
                WindowSpec::Hop { slide, size, offset } => format!(
                    "HOP slide {} size {} offset {} (state kept per {} slice)",
                    seconds(slide),
                    seconds(size),
                    seconds(offset),
                    seconds(slide)
                ),
                WindowSpec::Session { gap } => format!("SESSION gap {}", seconds(gap)),
            };
            lines.push(format!("  window: {window}, emit {:?}", query.emit));
            lines.push(format!("  pre-aggregate stage:\n{}", physical(&stages.pre)));
            lines.push(format!(
                "  incremental aggregate: {}",
                stages.aggregate.describe().join(", ")
            ));
            lines.push(format!("  post-aggregate stage:\n{}", physical(&stages.post)));
        }
    }
    lines.push(format!("  sink: {} ({})", query.sink.name, query.sink.connector_name()));
    lines.push(format!("  logical plan:\n{}", indent(&query.logical.display_indent().to_string())));
    lines.join("\n")
}

fn physical(plan: &std::sync::Arc<dyn ExecutionPlan>) -> String {
    indent(&displayable(plan.as_ref()).indent(true).to_string())
}

fn seconds(nanos: i64) -> String {
    format!("{}s", nanos as f64 / 1e9)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
