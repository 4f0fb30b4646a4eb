//! Applies `.cql` schema files (`engine run --apply-schema DIR`): every file of the directory
//! in name order, statement by statement. The files are expected to be idempotent
//! (`IF NOT EXISTS`), so applying them on every start is safe.

use std::path::Path;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::error::{EngineError, Result};

/// Connects to `hosts`, retrying with backoff for up to `patience` (the database may start
/// after the engine), then applies every `*.cql` file of `dir`.
pub async fn apply_schema(dir: &Path, hosts: &[String], patience: Duration) -> Result<usize> {
    let statements = super::cql::read_dir(dir)?;
    let session = connect_with_retry(hosts, patience).await?;
    for statement in &statements {
        session.query_unpaged(statement.text.as_str(), &[]).await.map_err(|e| {
            EngineError::connector(
                "cassandra schema",
                format!("{}: {e} in: {}", statement.location, statement.text),
            )
        })?;
    }
    Ok(statements.len())
}

/// Connects to `hosts` (not awaiting schema agreement, which a single node cannot report),
/// retrying with backoff for up to `patience`.
pub async fn connect_with_retry(hosts: &[String], patience: Duration) -> Result<Session> {
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        let attempt = SessionBuilder::new()
            .known_nodes(hosts)
            .connection_timeout(Duration::from_secs(5))
            .auto_await_schema_agreement(false)
            .build()
            .await;
        match attempt {
            Ok(session) => return Ok(session),
            Err(err) if started.elapsed() + wait < patience => {
                tracing::warn!(hosts = %hosts.join(","), error = %err, retry_in = ?wait, "Cassandra not reachable yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(err) => {
                return Err(EngineError::connector(
                    "cassandra schema",
                    format!(
                        "cannot connect to {} ({err}); check --cassandra-hosts / CASSANDRA_HOSTS",
                        hosts.join(",")
                    ),
                ));
            }
        }
    }
}
