//! Backtests: the same query files with their sources read from, and their sinks written to,
//! JSON-lines files. Columns, computed columns, watermarks and queries stay exactly as declared;
//! only the connector of the redirected tables changes.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::options::WithOption;
use crate::sql::{CreateTable, QueryFile, Statement};

/// Which tables a run reads from or writes to files instead of their connectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirect {
    /// Source tables read from JSON-lines files (a file or a directory) instead: `(table, path)`.
    /// Metadata `offset` and `partition` become the line number and the file's index.
    pub sources: Vec<(String, PathBuf)>,
    /// Every table written by an `INSERT INTO` becomes JSON lines under `<dir>/<table>`.
    pub sinks: Option<PathBuf>,
}

/// Options kept from the declared table: they are about event time, not the connector.
const KEPT: &[&str] = &["watermark.idle-timeout"];

impl Redirect {
    /// Whether nothing is redirected.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.sinks.is_none()
    }

    /// The table names of `sources` that no file declares, for an error message.
    pub fn undeclared_sources(&self, files: &[QueryFile]) -> Vec<String> {
        let declared: HashSet<&str> = create_tables(files).map(|c| c.name.as_str()).collect();
        self.sources
            .iter()
            .filter(|(name, _)| !declared.contains(name.as_str()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The `WITH` options `create` is resolved with: its own, or a filesystem connector when
    /// the table is redirected. `sinks` are the tables some `INSERT INTO` writes.
    pub fn options_for(&self, create: &CreateTable, sinks: &HashSet<String>) -> Vec<WithOption> {
        let path = match self.sources.iter().find(|(name, _)| *name == create.name) {
            Some((_, path)) => Some(path.clone()),
            None => self
                .sinks
                .as_ref()
                .filter(|_| sinks.contains(&create.name))
                .map(|dir| dir.join(&create.name)),
        };
        let Some(path) = path else { return create.options.clone() };
        // The connector options point at the statement's first option, so errors land inside
        // the `WITH (...)` the user wrote.
        let Some(anchor) = create.options.first().map(|o| o.location.clone()) else {
            return create.options.clone();
        };
        let option = |key: &str, value: String| WithOption {
            key: key.to_string(),
            value,
            location: anchor.clone(),
        };
        let mut options = vec![
            option("connector", "filesystem".to_string()),
            option("path", path.display().to_string()),
            option("format", "json".to_string()),
        ];
        options.extend(create.options.iter().filter(|o| KEPT.contains(&o.key.as_str())).cloned());
        options
    }
}

/// The tables some `INSERT INTO` of `files` writes.
pub fn insert_targets(files: &[QueryFile]) -> HashSet<String> {
    files
        .iter()
        .flat_map(|f| &f.statements)
        .filter_map(|s| match &s.node {
            Statement::Insert(insert) => Some(insert.table.clone()),
            _ => None,
        })
        .collect()
}

fn create_tables(files: &[QueryFile]) -> impl Iterator<Item = &CreateTable> {
    files.iter().flat_map(|f| &f.statements).filter_map(|s| match &s.node {
        Statement::CreateTable(create) => Some(create),
        _ => None,
    })
}
