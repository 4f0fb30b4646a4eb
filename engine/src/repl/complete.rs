//! Completion candidates for the prompt: SQL keywords, table names after `FROM` and the like,
//! and the columns of the tables a statement mentions, each quoted when it must be.

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::sql::parser::quote_ident;

/// The keywords offered: what ad-hoc queries over market data use, not every SQL keyword.
const KEYWORDS: &[&str] = &[
    "ALL",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "COUNT",
    "CREATE",
    "DAY",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "ELSE",
    "END",
    "EXPLAIN",
    "FIRST_VALUE",
    "FROM",
    "GROUP",
    "HAVING",
    "HOP",
    "HOUR",
    "IN",
    "INNER",
    "INTERVAL",
    "IS",
    "JOIN",
    "LAST_VALUE",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MAX",
    "MIN",
    "MINUTE",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "SECOND",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "SUM",
    "TABLES",
    "THEN",
    "TIMESTAMP",
    "TUMBLE",
    "UNION",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
];

/// Words after which only a table name makes sense.
const BEFORE_TABLE: &[&str] =
    &["FROM", "JOIN", "DESCRIBE", "DESC", "TABLE", "TUMBLE(", "HOP(", "SESSION("];

/// Columns every windowed relation has.
const WINDOW_COLUMNS: &[&str] = &["window_start", "window_end"];

/// The tables that can be queried, each with its columns.
pub type Names = Vec<(String, Vec<String>)>;

/// What the prompt completes: keywords, and the names of the tables and their columns.
#[derive(Debug, Default)]
pub struct Completions {
    names: Names,
}

impl Completions {
    /// Completions of keywords and `names`.
    pub fn new(names: Names) -> Self {
        Self { names }
    }

    /// Replaces the names (after a statement created or dropped a view).
    pub fn set_names(&mut self, names: Names) {
        self.names = names;
    }

    /// The completions of `prefix`, the word being typed after `before` (`quoted`: after an
    /// opening `"`, so only names), sorted, each as it must be typed.
    pub fn candidates(&self, before: &str, prefix: &str, quoted: bool) -> Vec<String> {
        let previous = before.split_whitespace().last().unwrap_or_default().to_ascii_uppercase();
        let name = |n: &str| if quoted { quote_always(n) } else { name(n) };
        let tables = self.names.iter().map(|(table, _)| table.as_str());
        let mut words: Vec<String> =
            if BEFORE_TABLE.contains(&previous.as_str()) || previous == "\\D" {
                tables.map(name).collect()
            } else if prefix.is_empty() {
                vec![]
            } else {
                let lower = prefix.chars().all(|c| !c.is_ascii_uppercase());
                let keywords = KEYWORDS
                    .iter()
                    .filter(|_| !quoted)
                    .map(|k| if lower { k.to_ascii_lowercase() } else { k.to_string() });
                let text = before.to_ascii_lowercase();
                let mentioned: Vec<&(String, Vec<String>)> =
                    self.names.iter().filter(|(table, _)| mentions(&text, table)).collect();
                let in_scope =
                    if mentioned.is_empty() { self.names.iter().collect() } else { mentioned };
                let columns = in_scope
                    .into_iter()
                    .flat_map(|(_, columns)| columns.iter().map(String::as_str))
                    .chain(WINDOW_COLUMNS.iter().copied())
                    .map(name);
                keywords.chain(tables.map(name)).chain(columns).collect()
            };
        let wanted = prefix.to_ascii_lowercase();
        words.retain(|w| w.trim_start_matches('"').to_ascii_lowercase().starts_with(&wanted));
        words.sort();
        words.dedup();
        words
    }
}

/// A table or column name as it must be typed: quoted unless it reads as that name unquoted
/// (`close` does; `timestamp` and `Price` do not).
fn name(name: &str) -> String {
    // Unquoted names are lower-cased, so any capital needs quotes.
    let plain = !name.chars().any(|c| c.is_uppercase())
        && Parser::new(&GenericDialect {})
        .try_with_sql(name)
        .and_then(|mut p| p.parse_expr())
        .is_ok_and(|e| matches!(e, Expr::Identifier(ident) if ident.quote_style.is_none() && ident.value == name));
    if plain { name.to_string() } else { quote_ident(name) }
}

fn quote_always(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `text` (lower-cased) names `table` as a word.
fn mentions(text: &str, table: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completions() -> Completions {
        Completions::new(vec![
            (
                "ticks".into(),
                vec!["symbol".into(), "price".into(), "timestamp".into(), "Volume".into()],
            ),
            ("candles".into(), vec!["symbol".into(), "close".into()]),
        ])
    }

    #[test]
    fn tables_after_from_and_columns_of_the_tables_mentioned() {
        let completions = completions();
        assert_eq!(completions.candidates("SELECT * FROM ", "", false), ["candles", "ticks"]);
        assert_eq!(completions.candidates("SELECT * FROM ticks WHERE ", "sy", false), ["symbol"]);
        assert_eq!(completions.candidates("SELECT ", "vol", false), ["\"Volume\""]);
        assert_eq!(completions.candidates("SELECT ", "sym", true), ["\"symbol\""]);
        assert!(completions.candidates("SELECT ", "", false).is_empty(), "nothing to complete");
    }
}
