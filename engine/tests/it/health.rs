//! Error classes as a running engine shows them: a query stopped by an internal error (here a
//! checkpoint it cannot restore) stops alone, and `/readyz` answers 503 naming it and the error,
//! while the other query keeps running and writing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use engine::catalog::SchemaSource;
use engine::checkpoint::CheckpointStore;
use engine::error::ErrorClass;
use engine::planner::PipelineOptions;
use engine::runtime::QueryRunner;
use engine::runtime::load::load_and_plan;
use engine::runtime::supervisor::{Supervisor, SupervisorConfig};
use engine::telemetry::http::{Readiness, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

const SOURCES: &str = "
CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL, \"timestamp\" BIGINT NOT NULL)
    WITH (connector = 'filesystem', path = '${TICKS}', format = 'json');
CREATE TABLE out_a WITH (connector = 'filesystem', path = '${OUT}/a', format = 'json');
CREATE TABLE out_b WITH (connector = 'filesystem', path = '${OUT}/b', format = 'json');
";

/// `GET path` on the admin endpoint: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn vars(dir: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("TICKS".to_string(), dir.join("ticks").display().to_string()),
        ("OUT".to_string(), dir.join("out").display().to_string()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_stops_only_its_query_and_readyz_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::write(queries.join("00_sources.sql"), SOURCES).unwrap();
    std::fs::write(
        queries.join("health_a.sql"),
        "INSERT INTO out_a SELECT symbol, price FROM ticks;",
    )
    .unwrap();
    std::fs::write(
        queries.join("health_b.sql"),
        "INSERT INTO out_b SELECT symbol, price FROM ticks;",
    )
    .unwrap();
    let ticks = generate(3, 3, 300, 0);
    write_partitions(&dir.path().join("ticks"), std::slice::from_ref(&ticks));
    let vars = vars(dir.path());
    let state = dir.path().join("state");

    // Query a checkpoints once, then its checkpoint is damaged: restoring it is a broken
    // invariant, not an outage.
    let (mut pipeline, errors) = load_and_plan(
        &queries,
        &|n| vars.get(n).cloned(),
        &PipelineOptions::default(),
        &SchemaSource::default(),
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    let a = pipeline.queries.remove(0);
    assert_eq!(a.name, "health_a");
    let store = CheckpointStore::open(&state, "health_a").unwrap();
    let runner = QueryRunner::new(a, true).await.unwrap().with_checkpoints(store).await.unwrap();
    runner.run(CancellationToken::new()).await.unwrap();
    let manifest_path = state.join("health_a/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["watermarks"] = serde_json::json!({ "partitions": "damaged" });
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    std::fs::remove_dir_all(dir.path().join("out/a")).unwrap();

    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let addr =
        serve("127.0.0.1:0".parse().unwrap(), readiness.clone(), shutdown.clone()).await.unwrap();
    let mut supervisor = Supervisor::new(SupervisorConfig {
        dir: queries.clone(),
        options: PipelineOptions::default(),
        trigger_interval: Some(Duration::from_millis(50)),
        once: false,
        state_dir: Some(state.clone()),
        readiness: readiness.clone(),
        schema: SchemaSource::default(),
    });
    let lookup = |n: &str| vars.get(n).cloned();
    assert!(supervisor.reconcile(&lookup).await.unwrap().is_empty());
    readiness.set(true);

    // Query b runs to the end of its input; query a stopped alone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while read_changelog(&dir.path().join("out/b")).len() < ticks.len() {
        assert!(tokio::time::Instant::now() < deadline, "query b did not copy its input");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = supervisor.collect_finished().await;
    assert_eq!(stopped.len(), 1, "only query health_a stopped");
    assert_eq!(stopped[0].name, "health_a");
    let err = stopped[0].result.as_ref().unwrap_err();
    assert_eq!(err.class(), ErrorClass::Internal, "{err}");
    assert_eq!(supervisor.running(), vec!["health_b"]);
    assert!(read_changelog(&dir.path().join("out/a")).is_empty());

    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains(
            "query health_a: failed (internal error): internal error: checkpointed watermarks"
        ),
        "{body}"
    );
    assert!(body.contains("query health_b: running"), "{body}");
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains(r#"engine_query_state{query="health_a",state="failed"} 1"#),
        "{metrics}"
    );
    for stopped in supervisor.stop_all().await {
        stopped.result.unwrap();
    }
    shutdown.cancel();
}
