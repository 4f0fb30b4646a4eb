//! The shipped Cassandra schema (`cql/`) applies cleanly twice, and every shipped query,
//! pointed at its Cassandra table instead of files, plans against that schema: the tables have
//! the columns, types and primary keys the queries write.

use std::path::Path;
use std::time::Duration;

use engine::cli::load_and_plan;
use engine::connector::cassandra::schema::apply_schema;
use engine::planner::PipelineOptions;

use crate::harness::shipped_queries;
use crate::servers::cql_hosts;

#[tokio::test]
async fn the_shipped_schema_applies_twice_and_fits_every_shipped_query() {
    let hosts: Vec<String> = cql_hosts().split(',').map(str::to_string).collect();
    let cql = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cql");
    let first = apply_schema(&cql, &hosts, Duration::from_secs(10)).await.unwrap();
    let second = apply_schema(&cql, &hosts, Duration::from_secs(10)).await.unwrap();
    assert!(first >= 4 && first == second, "applied {first} then {second} statements");

    let tmp = tempfile::tempdir().unwrap();
    let mut sinks = 0;
    for entry in std::fs::read_dir(shipped_queries()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "sql") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        // Each sink `CREATE TABLE name WITH (connector = 'filesystem', ...)` becomes the
        // Cassandra table of the same name.
        let sink = text
            .find("WITH (\n    connector = 'filesystem'")
            .filter(|&at| !text[..at].trim_end().ends_with(')'));
        if let Some(start) = sink {
            let end = start + text[start..].find(");").unwrap() + 1;
            let name = text[..start].trim_end().rsplit(' ').next().unwrap().to_string();
            let options = format!(
                "WITH (connector = 'cassandra', hosts = '{}', keyspace = 'market', 'table' = '{name}')",
                hosts.join(",")
            );
            text.replace_range(start..end, &options);
            sinks += 1;
        }
        std::fs::write(tmp.path().join(path.file_name().unwrap()), text).unwrap();
    }
    assert_eq!(sinks, 3, "every shipped query's sink was pointed at Cassandra");
    let (pipeline, errors) =
        load_and_plan(tmp.path(), &|_| None, &PipelineOptions::default()).await;
    let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(pipeline.queries.len(), 3);
}
