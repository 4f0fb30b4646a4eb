//! `engine check DIR [--schema CQL_DIR]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{print_errors, process_env};
use crate::catalog::SchemaSource;
use crate::planner::PipelineOptions;
use crate::runtime::load::load_and_plan;

/// Prints every error as `file:line:col: message`; exit code 1 when there are any. Cassandra
/// sinks are checked against the CQL files of `schema`, else against the server if it answers;
/// when neither, a note says their columns were not checked and how to check them.
pub async fn check(dir: &Path, schema: Option<PathBuf>) -> ExitCode {
    let source = SchemaSource::offline(schema);
    let (pipeline, errors) =
        load_and_plan(dir, &process_env, &PipelineOptions::default(), &source).await;
    print_errors(&errors);
    for table in &pipeline.tables {
        if let Some(why) = &table.undescribed {
            eprintln!("{}: note: {why}", table.location);
        }
    }
    if errors.is_empty() {
        println!("ok: {} tables, {} queries", pipeline.tables.len(), pipeline.queries.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" });
        ExitCode::from(1)
    }
}
