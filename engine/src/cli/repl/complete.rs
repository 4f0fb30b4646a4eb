//! The line editor's helper: tab completion of SQL keywords, table names and column names, and
//! multi-line input (what was typed runs once every statement in it ends with `;`).

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::input::is_complete;
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

/// Completion and validation for the prompt.
#[derive(Debug, Default)]
pub struct ReplHelper {
    names: Names,
}

impl ReplHelper {
    /// A helper completing `names`.
    pub fn new(names: Names) -> Self {
        Self { names }
    }

    /// Replaces the names (after a statement created or dropped a view).
    pub fn set_names(&mut self, names: Names) {
        self.names = names;
    }

    /// The completions of `prefix`, the word being typed after `before` (`quoted`: after an
    /// opening `"`, so only names).
    fn candidates(&self, before: &str, prefix: &str, quoted: bool) -> Vec<String> {
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

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let typed = &line[..pos];
        let mut start = typed
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        // A name being typed in quotes is replaced together with its opening quote.
        if typed[..start].ends_with('"') {
            start -= 1;
        }
        let prefix = typed[start..].trim_start_matches('"');
        let quoted = prefix.len() < typed.len() - start;
        let candidates = self
            .candidates(&typed[..start], prefix, quoted)
            .into_iter()
            .map(|word| Pair { display: word.clone(), replacement: word })
            .collect();
        Ok((start, candidates))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ReplHelper {
        ReplHelper::new(vec![
            (
                "ticks".into(),
                vec!["symbol".into(), "price".into(), "timestamp".into(), "Volume".into()],
            ),
            ("candles".into(), vec!["symbol".into(), "close".into()]),
        ])
    }

    fn complete(line: &str) -> (usize, Vec<String>) {
        let history = rustyline::history::DefaultHistory::new();
        let ctx = Context::new(&history);
        let (start, pairs) = helper().complete(line, line.len(), &ctx).unwrap();
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn table_names_after_from() {
        assert_eq!(complete("SELECT * FROM ti"), (14, vec!["ticks".to_string()]));
        assert_eq!(complete("select * from ").1, ["candles", "ticks"]);
        assert_eq!(complete("\\d c").1, ["candles"]);
    }

    #[test]
    fn columns_of_the_tables_mentioned_and_keywords_in_the_case_typed() {
        assert_eq!(complete("SELECT cl").1, ["close"]);
        assert_eq!(complete("SELECT * FROM ticks WHERE cl").1, Vec::<String>::new());
        assert_eq!(complete("sel").1, ["select"]);
        assert_eq!(complete("SEL").1, ["SELECT"]);
        assert_eq!(complete("SELECT window_s").1, ["window_start"]);
    }

    #[test]
    fn names_that_need_quotes_are_quoted() {
        assert_eq!(complete("SELECT \"tim").1, ["\"timestamp\""]);
        assert_eq!(complete("SELECT \"tim").0, 7);
        assert_eq!(complete("SELECT tim").1, ["timestamp"], "DataFusion reads it unquoted");
        assert_eq!(complete("SELECT vol").1, ["\"Volume\""]);
        assert_eq!(complete("SELECT \"sym").1, ["\"symbol\""], "the quote typed is kept");
    }
}
