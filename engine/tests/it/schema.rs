//! The shipped Cassandra schema (`cql/`) applies cleanly twice, and every shipped query plans
//! against that schema (the tables have the columns, types and primary keys the queries write)
//! and writes it; the market dashboard's panel queries then return rows.

use std::path::Path;
use std::time::Duration;

use engine::catalog::SchemaSource;
use engine::connector::cassandra::schema::apply_schema;
use engine::planner::{PipelineOptions, Redirect};
use engine::runtime::load::load_and_plan;

use engine::runtime::QueryRunner;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

use crate::harness::{generate, partition_by_symbol, shipped_queries, write_partitions};
use crate::servers::{cql_hosts, cql_session};

#[tokio::test]
async fn the_shipped_schema_applies_twice_and_fits_every_shipped_query() {
    let hosts: Vec<String> = cql_hosts().split(',').map(str::to_string).collect();
    let cql = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cql");
    let first = apply_schema(&cql, &hosts, Duration::from_secs(10)).await.unwrap();
    let second = apply_schema(&cql, &hosts, Duration::from_secs(10)).await.unwrap();
    assert!(first >= 4 && first == second, "applied {first} then {second} statements");

    // The shipped queries as they are, their ticks replayed from files.
    let tmp = tempfile::tempdir().unwrap();
    let ticks_dir = tmp.path().join("ticks");
    let ticks = generate(5, 3, 400, 5);
    write_partitions(&ticks_dir, &partition_by_symbol(&ticks, 2));
    let options = PipelineOptions {
        redirect: Redirect { sources: vec![("ticks".into(), ticks_dir)], sinks: None },
        ..PipelineOptions::default()
    };
    let vars = |name: &str| (name == "CASSANDRA_HOSTS").then(cql_hosts);
    let (pipeline, errors) =
        load_and_plan(&shipped_queries(), &vars, &options, &SchemaSource::default()).await;
    let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(pipeline.queries.len(), 3);

    // The pipeline writes the tables, then every market dashboard panel query runs against
    // them with its variables and macros substituted as Grafana does ($__timeFrom/$__timeTo are
    // epoch milliseconds), and returns rows with the columns the panel selects.
    for query in pipeline.queries {
        QueryRunner::new(query, true).await.unwrap().run(CancellationToken::new()).await.unwrap();
    }
    let session = cql_session().await;
    let (from, to) = (
        ticks.iter().map(|t| t.timestamp).min().unwrap() - 3_600,
        ticks.iter().map(|t| t.timestamp).max().unwrap() + 3_600,
    );
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana/dashboards/market.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut executed = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(cql_text) = target["target"].as_str().or(target["query"].as_str()) else {
                continue;
            };
            let statement = cql_text
                .replace("$symbol", "SYM0")
                .replace("$__timeFrom", &(from * 1000).to_string())
                .replace("$__timeTo", &(to * 1000).to_string());
            let selected: Vec<String> = statement
                ["SELECT ".len()..statement.find(" FROM ").unwrap()]
                .split(',')
                .map(|c| c.trim().to_string())
                .collect();
            let pager = session
                .query_iter(statement.as_str(), ())
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
            let columns: Vec<String> =
                pager.column_specs().iter().map(|c| c.name().to_string()).collect();
            assert_eq!(columns, selected, "{statement}");
            let rows: Vec<_> =
                pager.rows_stream::<scylla::value::Row>().unwrap().try_collect().await.unwrap();
            assert!(!rows.is_empty(), "no rows for panel '{}': {statement}", panel["title"]);
            executed += 1;
        }
    }
    assert!(executed >= 5, "only {executed} panel queries found");
}
