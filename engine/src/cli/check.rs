//! `engine check DIR`.

use std::path::Path;
use std::process::ExitCode;

use super::{load_and_plan, print_errors, process_env};
use crate::planner::PipelineOptions;

/// Prints every error as `file:line:col: message`; exit code 1 when there are any.
pub async fn check(dir: &Path) -> ExitCode {
    let (pipeline, errors) = load_and_plan(dir, &process_env, &PipelineOptions::default()).await;
    print_errors(&errors);
    if errors.is_empty() {
        println!("ok: {} tables, {} queries", pipeline.tables.len(), pipeline.queries.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" });
        ExitCode::from(1)
    }
}
