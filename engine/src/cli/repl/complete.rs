//! The line editor's helper: tab completion (the word being typed, completed by
//! [`Completions`]) and multi-line input (what was typed runs once every statement in it ends
//! with `;`).

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::input::is_complete;
use crate::repl::{Completions, Names};

/// Completion and validation for the prompt.
#[derive(Debug, Default)]
pub struct ReplHelper {
    completions: Completions,
}

impl ReplHelper {
    /// A helper completing `names`.
    pub fn new(names: Names) -> Self {
        Self { completions: Completions::new(names) }
    }

    /// Replaces the names (after a statement created or dropped a view).
    pub fn set_names(&mut self, names: Names) {
        self.completions.set_names(names);
    }
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
            .completions
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
