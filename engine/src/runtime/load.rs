//! From a directory of query files to planned queries: load, declare, discover the columns of
//! tables kept in a store, plan. Discovery sits between declaring and planning so that the
//! planner never touches the network.

use std::path::Path;

use crate::catalog::{SchemaSource, discover};
use crate::error::EngineError;
use crate::planner::{Pipeline, PipelineOptions, declare, plan_declared};
use crate::sql::{VarLookup, load_dir};

/// Loads and plans `dir` (`${VAR}` from `vars`), describing store tables as `schema` says.
/// Returns the pipeline and every error found: a broken file does not stop the others.
pub async fn load_and_plan(
    dir: &Path,
    vars: VarLookup<'_>,
    options: &PipelineOptions,
    schema: &SchemaSource,
) -> (Pipeline, Vec<EngineError>) {
    let (files, mut errors) = load_dir(dir, vars);
    let (mut declarations, mut declare_errors) = declare(&files, options);
    errors.append(&mut declare_errors);
    errors.append(&mut discover(&mut declarations.tables, schema).await);
    let (pipeline, mut plan_errors) = plan_declared(declarations).await;
    errors.append(&mut plan_errors);
    (pipeline, errors)
}
