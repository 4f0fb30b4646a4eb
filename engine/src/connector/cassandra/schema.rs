//! Applies `.cql` schema files (`engine run --apply-schema DIR`): every file of the directory
//! in name order, statement by statement. The files are expected to be idempotent
//! (`IF NOT EXISTS`), so applying them on every start is safe.

use std::path::Path;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::error::{EngineError, Result};

/// The statements of a `.cql` file: `--` comments dropped, split at `;`.
pub fn statements(text: &str) -> Vec<String> {
    let without_comments: String = text
        .lines()
        .map(|line| match line.find("--") {
            Some(at) if !line[..at].contains('\'') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Connects to `hosts`, retrying with backoff for up to `patience` (the database may start
/// after the engine), then applies every `*.cql` file of `dir`.
pub async fn apply_schema(dir: &Path, hosts: &[String], patience: Duration) -> Result<usize> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::io(format!("cannot list schema directory {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cql"))
        .collect();
    files.sort();
    let session = connect_with_retry(hosts, patience).await?;
    let mut applied = 0;
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| EngineError::io(format!("cannot read {}", file.display()), e))?;
        for statement in statements(&text) {
            session.query_unpaged(statement.as_str(), &[]).await.map_err(|e| {
                EngineError::connector(
                    "cassandra schema",
                    format!("{}: {e} in: {statement}", file.display()),
                )
            })?;
            applied += 1;
        }
    }
    Ok(applied)
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

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn comments_are_dropped_and_statements_split() {
        let text = "-- header\nCREATE KEYSPACE IF NOT EXISTS m -- trailing\n  WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n\nCREATE TABLE IF NOT EXISTS m.t (a text PRIMARY KEY, b text) WITH comment = 'x -- y';\n";
        assert_eq!(
            statements(text),
            vec![
                "CREATE KEYSPACE IF NOT EXISTS m WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
                "CREATE TABLE IF NOT EXISTS m.t (a text PRIMARY KEY, b text) WITH comment = 'x -- y'",
            ]
        );
    }
}
