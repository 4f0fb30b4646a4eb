//! Which state each query is in and why: what `/readyz` answers and the `engine_query_state`
//! gauge shows.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::metrics::QueryMetrics;
use crate::error::{EngineError, ErrorClass};

/// Where a query stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    /// Opening its source and sink.
    Starting,
    /// Running micro-batches.
    Running,
    /// Retrying after a transient error (an outage): not ready.
    Retrying,
    /// Stopped after reading its bounded input, or asked to stop.
    Finished,
    /// Stopped on an error that retrying cannot fix.
    Failed,
}

impl QueryState {
    /// Every state, as the gauge's `state` label lists them.
    pub const ALL: [&'static str; 5] = ["starting", "running", "retrying", "finished", "failed"];

    /// The state's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Status {
    state: QueryState,
    /// The error that put the query in this state, with its class.
    why: Option<(ErrorClass, String)>,
}

#[derive(Debug, Default)]
struct Inner {
    /// All queries were started.
    started: AtomicBool,
    queries: Mutex<BTreeMap<String, Status>>,
}

/// Whether the engine is ready to serve, and the state of each query.
///
/// Ready once every query was started, and as long as no query is retrying an outage or
/// stopped on an internal error (a bug). A query stopped on a mistake in its SQL is reported
/// but does not make the engine unready: it needs a fixed file, not a restart.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Inner>);

impl Readiness {
    /// Marks the engine started (all queries launched) or not.
    pub fn set(&self, ready: bool) {
        self.0.started.store(ready, Ordering::SeqCst);
    }

    fn queries(&self) -> MutexGuard<'_, BTreeMap<String, Status>> {
        self.0.queries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Query `query` is now in `state`, because of `why` if an error put it there.
    pub fn report(&self, query: &str, state: QueryState, why: Option<&EngineError>) {
        let why = why.map(|e| (e.class(), e.to_string()));
        self.queries().insert(query.to_string(), Status { state, why });
        QueryMetrics::new(query).state_is(state.name(), &QueryState::ALL);
    }

    /// Forgets query `query` (removed from the directory).
    pub fn forget(&self, query: &str) {
        self.queries().remove(query);
        QueryMetrics::new(query).state_is("", &QueryState::ALL);
    }

    /// Whether the engine is ready, and one line per query saying where it stands.
    pub fn status(&self) -> (bool, String) {
        let mut ready = self.0.started.load(Ordering::SeqCst);
        let mut text = String::new();
        if !ready {
            text.push_str("starting\n");
        }
        for (name, status) in self.queries().iter() {
            let blocking = match (status.state, &status.why) {
                (QueryState::Retrying | QueryState::Starting, _) => true,
                (QueryState::Failed, Some((class, _))) => *class != ErrorClass::User,
                _ => false,
            };
            ready &= !blocking;
            text.push_str(&format!("query {name}: {}", status.state.name()));
            if let Some((class, error)) = &status.why {
                text.push_str(&format!(" ({class} error): {error}"));
            }
            text.push('\n');
        }
        (ready, if ready { format!("ready\n{text}") } else { text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unready_while_a_query_retries_or_failed_on_a_bug() {
        let readiness = Readiness::default();
        assert!(!readiness.status().0);
        readiness.set(true);
        readiness.report("a", QueryState::Running, None);
        readiness.report("b", QueryState::Running, None);
        assert!(readiness.status().0);
        let outage = EngineError::connector("cassandra sink 'c'", "connection refused");
        readiness.report("b", QueryState::Retrying, Some(&outage));
        let (ready, text) = readiness.status();
        assert!(!ready);
        assert!(text.contains("query b: retrying (transient error)"), "{text}");
        readiness.report("b", QueryState::Running, None);
        assert!(readiness.status().0);
        let bug = EngineError::Internal("state lost".into());
        readiness.report("a", QueryState::Failed, Some(&bug));
        let (ready, text) = readiness.status();
        assert!(!ready);
        assert!(text.contains("query a: failed (internal error): internal error: state lost"));
        let user = EngineError::Config("bad flag".into());
        readiness.report("a", QueryState::Failed, Some(&user));
        assert!(readiness.status().0);
    }
}
