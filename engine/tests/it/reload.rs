//! Hot reload the way a mounted ConfigMap changes: the files are symlinks into `..data`, which
//! is swapped atomically to a new directory. The added query starts, the removed one stops, and
//! the untouched one keeps running with its window state.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use engine::planner::PipelineOptions;
use engine::runtime::supervisor::{Supervisor, SupervisorConfig};

use crate::harness::*;

const SOURCE: &str = "CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL, \"timestamp\" BIGINT NOT NULL, \
    ts AS to_timestamp(\"timestamp\"), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
    WITH (connector = 'filesystem', path = '${TICKS}', format = 'json');";

fn counting(name: &str, size: &str) -> String {
    format!(
        "CREATE TABLE {name} WITH (connector = 'filesystem', path = '${{OUT}}/{name}', format = 'json');
         INSERT INTO {name} SELECT symbol, window_start, count(*) AS n
         FROM TUMBLE(ticks, ts, INTERVAL '{size}' MINUTE) GROUP BY symbol, window_start, window_end;"
    )
}

/// Writes a ConfigMap-style version directory and points `..data` (and the file links) at it.
fn publish(dir: &Path, version: &str, files: &[(&str, String)]) {
    let target = dir.join(version);
    std::fs::create_dir_all(&target).unwrap();
    for (name, text) in files {
        std::fs::write(target.join(name), text).unwrap();
    }
    let temp = dir.join("..data_tmp");
    symlink(version, &temp).unwrap();
    std::fs::rename(&temp, dir.join("..data")).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, _) in files {
        symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
    }
}

#[tokio::test]
async fn swapping_the_configmap_adds_removes_and_keeps_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let ticks_dir = tmp.path().join("ticks");
    std::fs::create_dir_all(&ticks_dir).unwrap();
    let first: Vec<Tick> = (0..30)
        .map(|i| Tick { symbol: "A".into(), price: 1.0, day_volume: None, timestamp: 600 + i })
        .collect();
    std::fs::write(
        ticks_dir.join("a.jsonl"),
        first.iter().map(|t| t.json() + "\n").collect::<String>(),
    )
    .unwrap();
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    publish(
        &queries,
        "..v1",
        &[
            ("00_sources.sql", SOURCE.into()),
            ("10_kept.sql", counting("kept", "1")),
            ("20_removed.sql", counting("removed", "1")),
        ],
    );

    let vars = |name: &str| match name {
        "TICKS" => Some(ticks_dir.display().to_string()),
        "OUT" => Some(tmp.path().join("out").display().to_string()),
        _ => None,
    };
    let config = SupervisorConfig {
        dir: queries.clone(),
        options: PipelineOptions::default(),
        trigger_interval: Some(Duration::from_millis(20)),
        once: false,
        state_dir: None,
        schema: engine::catalog::SchemaSource::default(),
        readiness: Default::default(),
    };
    let mut supervisor = Supervisor::new(config);
    assert!(supervisor.reconcile(&vars).await.unwrap().is_empty());
    assert_eq!(supervisor.running(), vec!["10_kept", "20_removed"]);
    let kept = supervisor.generation("10_kept");
    assert!(!supervisor.changed());
    tokio::time::sleep(Duration::from_millis(500)).await;

    publish(
        &queries,
        "..v2",
        &[
            ("00_sources.sql", SOURCE.into()),
            ("10_kept.sql", counting("kept", "1")),
            ("30_added.sql", counting("added", "1")),
        ],
    );
    assert!(supervisor.changed(), "the ..data swap is seen");
    assert!(supervisor.reconcile(&vars).await.unwrap().is_empty());
    assert_eq!(supervisor.running(), vec!["10_kept", "30_added"]);
    assert_eq!(supervisor.generation("10_kept"), kept, "the untouched query was not restarted");

    // More ticks in the same minute: the kept query's window goes on counting from its state.
    let more: Vec<Tick> = (0..10)
        .map(|i| Tick { symbol: "A".into(), price: 1.0, day_volume: None, timestamp: 630 + i })
        .collect();
    std::fs::write(
        ticks_dir.join("b.jsonl"),
        more.iter().map(|t| t.json() + "\n").collect::<String>(),
    )
    .unwrap();
    let removed_files = std::fs::read_dir(tmp.path().join("out/removed")).unwrap().count();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kept_rows = apply_changelog(
            read_changelog(&tmp.path().join("out/kept")),
            &["symbol", "window_start"],
        );
        let added_rows = apply_changelog(
            read_changelog(&tmp.path().join("out/added")),
            &["symbol", "window_start"],
        );
        let count = |rows: &std::collections::BTreeMap<
            String,
            serde_json::Map<String, serde_json::Value>,
        >| { rows.values().map(|r| r["n"].as_i64().unwrap()).sum::<i64>() };
        if count(&kept_rows) == 40 && count(&added_rows) == 40 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kept counted {}, added counted {}",
            count(&kept_rows),
            count(&added_rows)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("out/removed")).unwrap().count(),
        removed_files,
        "the removed query stopped writing"
    );
    supervisor.stop_all().await;
}
