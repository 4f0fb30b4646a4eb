//! Every SQL example in docs/sql.md is executed: the first block is the prelude (the `ticks`
//! source); each other plain `sql` block is planned with it and run once over generated ticks;
//! `sql check` blocks are planned only; `sql error` blocks must fail with their `-- error:` text.

use std::collections::HashMap;
use std::path::Path;

use engine::catalog::SchemaSource;
use engine::connector::ConnectorSpec;
use engine::planner::PipelineOptions;
use engine::runtime::QueryRunner;
use engine::runtime::load::load_and_plan;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// A ```sql block of a markdown file: its kind (the words after `sql`), text and first line.
pub struct Block {
    pub kind: String,
    pub sql: String,
    pub line: usize,
}

/// The ```sql blocks of `markdown`.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = vec![];
    let mut current: Option<Block> = None;
    for (number, line) in markdown.lines().enumerate() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) if info.starts_with("sql") => {
                let kind = info.trim_start_matches("sql").trim().to_string();
                current = Some(Block { kind, sql: String::new(), line: number + 1 });
            }
            (Some(_), Some(_)) => blocks.push(current.take().expect("inside a block")),
            (Some(block), None) => {
                block.sql.push_str(line);
                block.sql.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn every_example_in_the_sql_guide_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sql.md");
    let markdown = std::fs::read_to_string(&path).unwrap();
    let blocks = blocks(&markdown);
    assert!(blocks.len() >= 10, "docs/sql.md lost its examples");
    let prelude = &blocks[0].sql;
    for block in &blocks[1..] {
        let context = format!("docs/sql.md block at line {}", block.line);
        let dir = tempfile::tempdir().unwrap();
        let parts = partition_by_symbol(&generate(block.line as u64, 4, 300, 5), 2);
        write_partitions(&dir.path().join("ticks"), &parts);
        let queries = dir.path().join("queries");
        std::fs::create_dir_all(&queries).unwrap();
        std::fs::write(queries.join("00_prelude.sql"), prelude).unwrap();
        std::fs::write(
            queries.join("01_nowhere.sql"),
            "CREATE TABLE nowhere WITH (connector = 'blackhole');",
        )
        .unwrap();
        std::fs::write(queries.join("10_example.sql"), &block.sql).unwrap();
        let vars = HashMap::from([
            ("TICKS_PATH".to_string(), dir.path().join("ticks").display().to_string()),
            ("OUTPUT_PATH".to_string(), dir.path().join("out").display().to_string()),
        ]);
        let (pipeline, errors) = load_and_plan(
            &queries,
            &|n| vars.get(n).cloned(),
            &PipelineOptions::default(),
            &SchemaSource::default(),
        )
        .await;
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        match block.kind.as_str() {
            "error" => {
                let expected = block
                    .sql
                    .lines()
                    .find_map(|l| l.strip_prefix("-- error: "))
                    .expect("an error block says which error");
                assert!(
                    messages.iter().any(|m| m.contains(expected)),
                    "{context}: expected '{expected}', got {messages:?}"
                );
            }
            "check" => assert!(messages.is_empty(), "{context}: {messages:?}"),
            "" => {
                assert!(messages.is_empty(), "{context}: {messages:?}");
                assert!(
                    !pipeline.queries.is_empty() || !block.sql.contains("INSERT"),
                    "{context}: no query planned"
                );
                for query in pipeline.queries {
                    let output = match &query.sink.connector {
                        ConnectorSpec::Filesystem(options) => Some(options.path.clone()),
                        _ => None,
                    };
                    let runner = QueryRunner::new(query, true).await.unwrap();
                    runner
                        .run(CancellationToken::new())
                        .await
                        .unwrap_or_else(|e| panic!("{context}: {e}"));
                    if let Some(output) = output {
                        assert!(
                            !read_changelog(&output).is_empty(),
                            "{context}: nothing written to {}",
                            output.display()
                        );
                    }
                }
            }
            other => panic!("{context}: unknown block kind '{other}'"),
        }
    }
}
