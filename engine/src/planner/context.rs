//! The DataFusion session every query is planned in.

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

/// A fresh session: one partition (a micro-batch is small and ordered), spans collected so
/// errors carry positions, and no rule that turns `count(DISTINCT x)` into a second aggregation
/// (the streaming aggregate keeps distinct sets itself).
pub fn new_session() -> SessionContext {
    let mut config = SessionConfig::new().with_target_partitions(1).with_batch_size(8192);
    config.options_mut().sql_parser.collect_spans = true;
    config.options_mut().execution.time_zone = None;
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    let rules = state
        .optimizers()
        .iter()
        .filter(|rule| rule.name() != "single_distinct_aggregation_to_group_by")
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(state).with_optimizer_rules(rules).build();
    SessionContext::new_with_state(state)
}
