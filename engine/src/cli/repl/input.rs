//! What the user typed, cut into backslash commands and SQL statements.
//!
//! A statement ends with `;` outside quotes and comments; a backslash command is a line that
//! starts with `\` where no statement is open. Both the prompt (to know when input is complete)
//! and `-e`/standard input (to run it) cut text this way.

/// A backslash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `\q`: leave.
    Quit,
    /// `\timing`: print (or stop printing) how long each statement took.
    Timing,
    /// `\d`: list the tables; `\d name`: describe one.
    Describe(Option<String>),
    /// `\?`: the commands.
    Help,
    /// Anything else starting with `\`.
    Unknown(String),
}

impl Command {
    fn parse(line: &str) -> Self {
        let mut words = line.split_whitespace();
        match (words.next().unwrap_or_default(), words.next()) {
            ("\\q", None) => Self::Quit,
            ("\\timing", None) => Self::Timing,
            ("\\d", table) => Self::Describe(table.map(str::to_string)),
            ("\\?" | "\\h", None) => Self::Help,
            _ => Self::Unknown(line.trim().to_string()),
        }
    }
}

/// One thing to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A backslash command.
    Command(Command),
    /// An SQL statement, from its first token to before its `;`.
    Sql(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Quoted(char),
    LineComment,
    BlockComment,
}

/// Cuts `text` into commands and statements. The last statement may lack its `;`; statements
/// holding only comments are dropped.
pub fn split(text: &str) -> Vec<Input> {
    scan(text).0
}

/// Whether `text` can run as it is: every statement in it is ended by `;` (or it holds only
/// commands, comments and blanks).
pub fn is_complete(text: &str) -> bool {
    !scan(text).1
}

/// The inputs of `text`, and whether a statement is still open at its end.
fn scan(text: &str) -> (Vec<Input>, bool) {
    let mut inputs = vec![];
    let mut state = State::Code;
    // Byte offset where the open statement's first token starts, if it has one.
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        match state {
            State::Quoted(quote) if c == quote => state = State::Code,
            State::Quoted(_) => {}
            State::LineComment if c == '\n' => state = State::Code,
            State::LineComment => {}
            State::BlockComment if c == '*' && next == Some('/') => {
                chars.next();
                state = State::Code;
            }
            State::BlockComment => {}
            State::Code => match c {
                '-' if next == Some('-') => state = State::LineComment,
                '/' if next == Some('*') => {
                    chars.next();
                    state = State::BlockComment;
                }
                '\\' if start.is_none() => {
                    let end = text[at..].find('\n').map_or(text.len(), |n| at + n);
                    inputs.push(Input::Command(Command::parse(&text[at..end])));
                    while chars.peek().is_some_and(|&(i, _)| i < end) {
                        chars.next();
                    }
                }
                ';' => {
                    if let Some(first) = start.take() {
                        inputs.push(Input::Sql(text[first..at].trim_end().to_string()));
                    }
                }
                c if c.is_whitespace() => {}
                c => {
                    start.get_or_insert(at);
                    if c == '\'' || c == '"' {
                        state = State::Quoted(c);
                    }
                }
            },
        }
    }
    let open = start.is_some() || matches!(state, State::Quoted(_) | State::BlockComment);
    if let Some(first) = start {
        inputs.push(Input::Sql(text[first..].trim_end().to_string()));
    }
    (inputs, open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(s: &str) -> Input {
        Input::Sql(s.to_string())
    }

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let text = "SELECT ';' AS a; -- a ; comment\nSELECT \"x;\" /* ; */ FROM t;\n  SELECT 3";
        assert_eq!(
            split(text),
            [sql("SELECT ';' AS a"), sql("SELECT \"x;\" /* ; */ FROM t"), sql("SELECT 3")]
        );
    }

    #[test]
    fn a_statement_starts_at_its_first_token_after_comments() {
        assert_eq!(split("-- why\n\n  SELECT\n  1;"), [sql("SELECT\n  1")]);
        assert!(split("-- only a comment\n").is_empty());
    }

    #[test]
    fn commands_are_lines_starting_with_a_backslash_between_statements() {
        let text = "\\timing\nSELECT 1;\n\\d ticks\n\\q";
        assert_eq!(
            split(text),
            [
                Input::Command(Command::Timing),
                sql("SELECT 1"),
                Input::Command(Command::Describe(Some("ticks".into()))),
                Input::Command(Command::Quit),
            ]
        );
        assert_eq!(split("\\x"), [Input::Command(Command::Unknown("\\x".into()))]);
    }

    #[test]
    fn input_is_complete_when_no_statement_is_open() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(is_complete("\\d"));
        assert!(is_complete("   "));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 1;\nSELECT"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1 /* ; */"));
    }
}
