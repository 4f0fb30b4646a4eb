//! `engine explain FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{print_errors, process_env};
use crate::catalog::SchemaSource;
use crate::planner::{PipelineOptions, explain as describe};
use crate::runtime::load::load_and_plan;

/// Prints how each query of `file` runs (Cassandra sinks as `engine check` takes them).
pub async fn explain(file: &Path, schema: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if !file.is_file() {
        anyhow::bail!("{} is not a file; explain takes one .sql file", file.display());
    }
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let source = SchemaSource::offline(schema);
    let (pipeline, errors) =
        load_and_plan(dir, &process_env, &PipelineOptions::default(), &source).await;
    let ours: Vec<_> = errors
        .into_iter()
        .filter(|e| e.to_string().starts_with(&file.display().to_string()))
        .collect();
    let queries: Vec<_> =
        pipeline.queries.iter().filter(|q| q.location.file.as_path() == file).collect();
    for query in &queries {
        println!("{}", describe(query));
    }
    if !ours.is_empty() {
        print_errors(&ours);
        return Ok(ExitCode::from(1));
    }
    if queries.is_empty() {
        println!("{} declares no INSERT INTO queries", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
