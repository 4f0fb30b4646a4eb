//! Query files: a directory's `*.sql` files in name order, parsed with positions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parser::{Located, Statement, parse_sql};
use crate::error::{EngineError, Location};

/// The statements of one `.sql` file.
#[derive(Debug, Clone)]
pub struct QueryFile {
    /// Path as given on the command line (joined with the directory).
    pub path: Arc<PathBuf>,
    /// The statements that parsed.
    pub statements: Vec<Located<Statement>>,
}

/// Looks up a variable for `${VAR}` expansion.
pub type VarLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`VarLookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads and parses one file, expanding `${VAR}` with `vars`.
pub fn load_file(path: &Path, vars: VarLookup<'_>) -> Result<QueryFile, Vec<EngineError>> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        vec![EngineError::io(format!("cannot read query file {}", path.display()), err)]
    })?;
    let path = Arc::new(path.to_path_buf());
    let (statements, errors) = parse_sql(&path, &text, vars);
    if errors.is_empty() { Ok(QueryFile { path, statements }) } else { Err(errors) }
}

/// The `*.sql` files of `dir` (or `dir` itself when it is a file), sorted by name. Hidden
/// entries (such as a mounted ConfigMap's `..data`) are skipped.
pub fn sql_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|err| {
        EngineError::io(format!("cannot list query directory {}", dir.display()), err)
    })?;
    let mut files = vec![];
    for entry in entries {
        let entry =
            entry.map_err(|err| EngineError::io(format!("listing {}", dir.display()), err))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".sql") && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every query file of `dir`, expanding `${VAR}` with `vars`; returns the files that
/// parsed and every error found.
pub fn load_dir(dir: &Path, vars: VarLookup<'_>) -> (Vec<QueryFile>, Vec<EngineError>) {
    let files = match sql_files(dir) {
        Ok(files) => files,
        Err(err) => return (vec![], vec![err]),
    };
    if files.is_empty() {
        let err = EngineError::sql(
            Location::start_of(dir),
            "no .sql files here; point --queries at the directory holding your query files",
        );
        return (vec![], vec![err]);
    }
    let mut loaded = vec![];
    let mut errors = vec![];
    for file in files {
        match load_file(&file, vars) {
            Ok(parsed) => loaded.push(parsed),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    (loaded, errors)
}
