//! Our dialect on top of sqlparser: the token stream of a whole file is parsed statement by
//! statement, so every position is a position in the file.
//!
//! Grammar of the extensions (everything else is sqlparser's `GenericDialect`):
//!
//! ```text
//! CREATE TABLE [IF NOT EXISTS] name [ ( element [, ...] ) ] [ WITH ( option [, ...] ) ]
//!   element := column_name data_type [NOT NULL | NULL] [METADATA [FROM 'key']]
//!            | column_name AS expr                          -- computed column
//!            | WATERMARK FOR column_name AS expr
//!            | PRIMARY KEY ( column_name [, ...] ) [NOT ENFORCED]
//!   option  := key = value       -- key: 'quoted.key' or dotted.identifier; value: literal
//! INSERT INTO name [( column [, ...] )] query [EMIT ON WINDOW CLOSE]
//! SET key = value
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::env::expand_vars;
use crate::error::{EngineError, Location};
use crate::options::WithOption;

/// A node with the position where it starts in its file.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// Where the node starts.
    pub location: Location,
    /// The node.
    pub node: T,
}

/// One statement of a query file.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE TABLE`: a source, a sink, or both.
    CreateTable(CreateTable),
    /// `CREATE VIEW name AS query`.
    CreateView(CreateView),
    /// `INSERT INTO sink query [EMIT ON WINDOW CLOSE]`: a continuous query.
    Insert(InsertInto),
    /// `SET key = value`: a pipeline option.
    Set(SetOption),
}

/// `CREATE TABLE name (elements) WITH (options)`.
#[derive(Debug, Clone)]
pub struct CreateTable {
    /// Table name, normalized (unquoted names are lower-cased).
    pub name: String,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Columns, computed columns and the watermark, in declaration order.
    pub elements: Vec<Located<TableElement>>,
    /// `PRIMARY KEY (...)`, if declared.
    pub primary_key: Vec<String>,
    /// The `WITH (...)` options in the order written.
    pub options: Vec<WithOption>,
}

/// One element between the parentheses of `CREATE TABLE`.
#[derive(Debug, Clone)]
pub enum TableElement {
    /// A physical or metadata column.
    Column(ColumnDef),
    /// `name AS expr`, computed from the other columns of the row.
    Computed {
        /// Column name.
        name: String,
        /// The expression.
        expr: ast::Expr,
    },
    /// `WATERMARK FOR column AS expr`.
    Watermark(Watermark),
}

/// `name type [NOT NULL] [METADATA FROM 'key']`.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Declared SQL type.
    pub data_type: ast::DataType,
    /// False when declared `NOT NULL`.
    pub nullable: bool,
    /// `METADATA FROM 'key'`: the connector fills the column (offset, partition, ...).
    pub metadata: Option<String>,
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// The event-time column.
    pub column: String,
    /// The watermark expression, e.g. `ts - INTERVAL '5' SECOND`.
    pub expr: ast::Expr,
}

/// `CREATE VIEW name AS query`.
#[derive(Debug, Clone)]
pub struct CreateView {
    /// View name, normalized.
    pub name: String,
    /// The view's query.
    pub query: Box<ast::Query>,
}

/// When a windowed query writes its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Emit {
    /// Every micro-batch upserts the windows it changed (the default).
    #[default]
    OnUpdate,
    /// `EMIT ON WINDOW CLOSE`: each window once, when the watermark passes its end.
    OnWindowClose,
}

/// `INSERT INTO name [(columns)] query [EMIT ON WINDOW CLOSE]`.
#[derive(Debug, Clone)]
pub struct InsertInto {
    /// Target table, normalized.
    pub table: String,
    /// Explicit target columns, if listed.
    pub columns: Vec<String>,
    /// The continuous query.
    pub query: Box<ast::Query>,
    /// Emit mode.
    pub emit: Emit,
}

/// `SET key = value`.
#[derive(Debug, Clone)]
pub struct SetOption {
    /// Option name, e.g. `pipeline.trigger-interval`.
    pub key: String,
    /// Its value as written (quotes removed).
    pub value: String,
}

/// Parses a whole query file. Returns every statement that parsed and an error for each one
/// that did not; parsing resumes after the `;` that ends a broken statement.
pub fn parse_sql(
    file: &Arc<PathBuf>,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Located<Statement>>, Vec<EngineError>) {
    let dialect = GenericDialect {};
    let tokens = match Tokenizer::new(&dialect, text).tokenize_with_location() {
        Ok(tokens) => tokens,
        Err(err) => {
            let location = Location::new(file, err.location.line, err.location.column);
            return (vec![], vec![EngineError::sql(location, err.message)]);
        }
    };
    let mut statements = vec![];
    let mut errors = vec![];
    for mut chunk in split_statements(tokens) {
        if let Err(err) = expand_string_tokens(file, &mut chunk, env) {
            errors.push(err);
            continue;
        }
        match parse_statement(file, chunk) {
            Ok(statement) => statements.push(statement),
            Err(err) => errors.push(err),
        }
    }
    (statements, errors)
}

/// Splits a token stream at `;` into statements without whitespace and comments at either end,
/// dropping empty ones.
fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut chunks = vec![];
    let mut current = vec![];
    for token in tokens {
        match token.token {
            Token::SemiColon | Token::EOF => {
                push_trimmed(&mut chunks, std::mem::take(&mut current));
            }
            _ => current.push(token),
        }
    }
    push_trimmed(&mut chunks, current);
    chunks
}

fn push_trimmed(chunks: &mut Vec<Vec<TokenWithSpan>>, mut chunk: Vec<TokenWithSpan>) {
    while chunk.last().is_some_and(|t| matches!(t.token, Token::Whitespace(_))) {
        chunk.pop();
    }
    let first = chunk.iter().position(|t| !matches!(t.token, Token::Whitespace(_)));
    if let Some(first) = first {
        chunk.drain(..first);
        chunks.push(chunk);
    }
}

/// Expands `${VAR}` references inside single-quoted strings.
fn expand_string_tokens(
    file: &Arc<PathBuf>,
    chunk: &mut [TokenWithSpan],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), EngineError> {
    for token in chunk.iter_mut() {
        if let Token::SingleQuotedString(text) = &token.token {
            if !text.contains("${") {
                continue;
            }
            let expanded = expand_vars(text, env).map_err(|err| {
                let start = token.span.start;
                let before = &text[..err.offset];
                let (line, column) = match before.rfind('\n') {
                    Some(nl) => (
                        start.line + before.matches('\n').count() as u64,
                        before[nl + 1..].chars().count() as u64 + 1,
                    ),
                    None => (start.line, start.column + 1 + before.chars().count() as u64),
                };
                EngineError::sql(Location::new(file, line, column), err.message)
            })?;
            token.token = Token::SingleQuotedString(expanded);
        }
    }
    Ok(())
}

fn parse_statement(
    file: &Arc<PathBuf>,
    mut chunk: Vec<TokenWithSpan>,
) -> Result<Located<Statement>, EngineError> {
    let start = chunk[0].span.start;
    let location = Location::new(file, start.line, start.column);
    let emit = strip_emit_clause(&mut chunk);
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(chunk);
    let failure = |parser: &Parser, err: ParserError| parser_error(file, parser, err);

    let first = word_at(&parser, 0);
    let second = word_at(&parser, 1);
    let statement = match (first.as_deref(), second.as_deref()) {
        (Some("CREATE"), Some("TABLE")) => Statement::CreateTable(
            parse_create_table(file, &mut parser).map_err(|e| failure(&parser, e))?,
        ),
        (Some("SET"), _) => {
            Statement::Set(parse_set(&mut parser).map_err(|e| failure(&parser, e))?)
        }
        (Some("CREATE" | "INSERT"), _) => {
            let parsed = parser.parse_statement().map_err(|e| failure(&parser, e))?;
            from_sqlparser(&location, parsed, emit)?
        }
        _ => {
            let found = parser.peek_token();
            return Err(EngineError::sql(
                token_location(file, &found),
                format!(
                    "expected CREATE TABLE, CREATE VIEW, INSERT INTO or SET, found {}",
                    found.token
                ),
            ));
        }
    };
    if emit == Emit::OnWindowClose && !matches!(statement, Statement::Insert(_)) {
        return Err(EngineError::sql(location, "EMIT ON WINDOW CLOSE only ends an INSERT INTO"));
    }
    let rest = parser.peek_token();
    if rest.token != Token::EOF {
        return Err(EngineError::sql(
            token_location(file, &rest),
            format!("unexpected {} after the end of the statement; is a ';' missing?", rest.token),
        ));
    }
    Ok(Located { location, node: statement })
}

/// Removes a trailing `EMIT ON WINDOW CLOSE` from the statement's tokens.
fn strip_emit_clause(chunk: &mut Vec<TokenWithSpan>) -> Emit {
    const CLAUSE: [&str; 4] = ["EMIT", "ON", "WINDOW", "CLOSE"];
    let words: Vec<usize> = chunk
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .take(4)
        .map(|(i, _)| i)
        .collect();
    let matches = words.len() == 4
        && words.iter().rev().zip(CLAUSE).all(|(&i, expected)| {
            matches!(&chunk[i].token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(expected))
        });
    if matches {
        chunk.truncate(words[3]);
        while chunk.last().is_some_and(|t| matches!(t.token, Token::Whitespace(_))) {
            chunk.pop();
        }
        Emit::OnWindowClose
    } else {
        Emit::OnUpdate
    }
}

/// The upper-cased unquoted word `n` non-whitespace tokens ahead, if it is one.
fn word_at(parser: &Parser, n: usize) -> Option<String> {
    let token = match n {
        0 => parser.peek_tokens::<1>()[0].clone(),
        _ => parser.peek_tokens::<2>()[1].clone(),
    };
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn from_sqlparser(
    location: &Location,
    statement: ast::Statement,
    emit: Emit,
) -> Result<Statement, EngineError> {
    match statement {
        ast::Statement::CreateView(view) => {
            if view.materialized {
                return crate::sql_err!(
                    location,
                    "MATERIALIZED views are not supported; use CREATE VIEW"
                );
            }
            if !view.columns.is_empty() {
                return crate::sql_err!(
                    location,
                    "a view's column list is not supported; alias the columns in its query"
                );
            }
            Ok(Statement::CreateView(CreateView {
                name: object_name(location, &view.name)?,
                query: view.query,
            }))
        }
        ast::Statement::Insert(insert) => {
            let ast::TableObject::TableName(name) = &insert.table else {
                return crate::sql_err!(location, "INSERT INTO needs a table name");
            };
            let Some(query) = insert.source else {
                return crate::sql_err!(location, "INSERT INTO needs a SELECT query");
            };
            let columns = insert
                .columns
                .iter()
                .map(|c| object_name(location, c))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Statement::Insert(InsertInto {
                table: object_name(location, name)?,
                columns,
                query,
                emit,
            }))
        }
        other => crate::sql_err!(
            location,
            "unsupported statement '{}': a query file holds CREATE TABLE, CREATE VIEW, INSERT INTO and SET",
            first_words(&other.to_string())
        ),
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Normalizes an identifier the way DataFusion does: unquoted names are lower-cased.
pub fn normalize_ident(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

fn object_name(location: &Location, name: &ast::ObjectName) -> Result<String, EngineError> {
    match name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(ident)] => Ok(normalize_ident(ident)),
        _ => crate::sql_err!(
            location,
            "'{name}': qualified names are not supported; use a plain table name"
        ),
    }
}

fn parse_create_table(file: &Arc<PathBuf>, p: &mut Parser) -> Result<CreateTable, ParserError> {
    p.expect_keywords(&[Keyword::CREATE, Keyword::TABLE])?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = normalize_ident(&p.parse_identifier()?);
    let mut elements = vec![];
    let mut primary_key = vec![];
    if p.consume_token(&Token::LParen) {
        loop {
            let start = p.peek_token();
            if p.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
                if !primary_key.is_empty() {
                    return parser_fail(&start, "PRIMARY KEY is specified more than once");
                }
                p.expect_token(&Token::LParen)?;
                primary_key = p
                    .parse_comma_separated(|p| p.parse_identifier())?
                    .iter()
                    .map(normalize_ident)
                    .collect();
                p.expect_token(&Token::RParen)?;
                // Informational in Flink too: keys are never enforced on a stream.
                let _not_enforced = p.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]);
            } else {
                let element = parse_table_element(p)?;
                elements.push(Located { location: token_location(file, &start), node: element });
            }
            if !p.consume_token(&Token::Comma) {
                p.expect_token(&Token::RParen)?;
                break;
            }
        }
    }
    let mut options = vec![];
    if p.parse_keyword(Keyword::WITH) {
        p.expect_token(&Token::LParen)?;
        options = p.parse_comma_separated(|p| parse_option(file, p))?;
        p.expect_token(&Token::RParen)?;
    }
    Ok(CreateTable { name, if_not_exists, elements, primary_key, options })
}

fn parse_table_element(p: &mut Parser) -> Result<TableElement, ParserError> {
    let is_watermark = matches!(
        p.peek_tokens::<2>(),
        [Token::Word(a), Token::Word(b)]
            if a.quote_style.is_none() && a.value.eq_ignore_ascii_case("WATERMARK") && b.keyword == Keyword::FOR
    );
    if is_watermark {
        p.next_token();
        p.expect_keyword_is(Keyword::FOR)?;
        let column = normalize_ident(&p.parse_identifier()?);
        p.expect_keyword_is(Keyword::AS)?;
        return Ok(TableElement::Watermark(Watermark { column, expr: p.parse_expr()? }));
    }
    let name = normalize_ident(&p.parse_identifier()?);
    if p.parse_keyword(Keyword::AS) {
        return Ok(TableElement::Computed { name, expr: p.parse_expr()? });
    }
    let data_type = p.parse_data_type()?;
    let mut nullable = true;
    let mut metadata = None;
    loop {
        if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            nullable = false;
        } else if p.parse_keyword(Keyword::NULL) {
            nullable = true;
        } else if matches!(&p.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("METADATA"))
        {
            p.next_token();
            metadata = Some(if p.parse_keyword(Keyword::FROM) {
                p.parse_literal_string()?
            } else {
                name.clone()
            });
            // VIRTUAL only matters for sinks that would write metadata back; ours never do.
            let _virtual = p.parse_keyword(Keyword::VIRTUAL);
        } else {
            break;
        }
    }
    Ok(TableElement::Column(ColumnDef { name, data_type, nullable, metadata }))
}

fn parse_option(file: &Arc<PathBuf>, p: &mut Parser) -> Result<WithOption, ParserError> {
    let start = p.peek_token();
    let key = parse_option_key(p)?;
    p.expect_token(&Token::Eq)?;
    let value = parse_option_value(p)?;
    Ok(WithOption { key, value, location: token_location(file, &start) })
}

/// `'quoted.key'` or `dotted.identifier`.
fn parse_option_key(p: &mut Parser) -> Result<String, ParserError> {
    let token = p.next_token();
    match token.token {
        Token::SingleQuotedString(s) => Ok(s),
        Token::Word(w) => {
            let mut key = w.value;
            while p.consume_token(&Token::Period) {
                key.push('.');
                key.push_str(&p.parse_identifier()?.value);
            }
            Ok(key)
        }
        _ => parser_fail(&token, &format!("expected an option name, found {}", token.token)),
    }
}

fn parse_option_value(p: &mut Parser) -> Result<String, ParserError> {
    let token = p.next_token();
    match token.token {
        Token::SingleQuotedString(s) => Ok(s),
        Token::Number(n, _) => Ok(n),
        Token::Word(w) if w.quote_style.is_none() => Ok(w.value),
        _ => parser_fail(&token, &format!("expected a quoted option value, found {}", token.token)),
    }
}

fn parse_set(p: &mut Parser) -> Result<SetOption, ParserError> {
    p.expect_keyword_is(Keyword::SET)?;
    let key = parse_option_key(p)?;
    if !p.consume_token(&Token::Eq) {
        p.expect_keyword_is(Keyword::TO)?;
    }
    let value = parse_option_value(p)?;
    Ok(SetOption { key, value })
}

fn parser_fail<T>(at: &TokenWithSpan, message: &str) -> Result<T, ParserError> {
    Err(ParserError::ParserError(format!(
        "{message} at Line: {}, Column: {}",
        at.span.start.line, at.span.start.column
    )))
}

fn token_location(file: &Arc<PathBuf>, token: &TokenWithSpan) -> Location {
    Location::new(file, token.span.start.line, token.span.start.column)
}

/// Turns a sqlparser error into `file:line:col: message`, taking the position from the
/// message when sqlparser put one there, else from the parser's current token.
fn parser_error(file: &Arc<PathBuf>, parser: &Parser, err: ParserError) -> EngineError {
    let message = match err {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    if let Some((text, line, column)) = split_position(&message) {
        return EngineError::sql(Location::new(file, line, column), text.to_string());
    }
    let at = parser.peek_token();
    EngineError::sql(token_location(file, &at), message)
}

/// Splits sqlparser's `message at Line: L, Column: C` into the message, line and column.
pub(crate) fn split_position(message: &str) -> Option<(&str, u64, u64)> {
    let (text, position) = message.rsplit_once(" at Line: ")?;
    let (line, column) = position.split_once(", Column: ")?;
    Some((text, line.trim().parse().ok()?, column.trim().parse().ok()?))
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CreateTable(t) => t.fmt(f),
            Statement::CreateView(v) => {
                write!(f, "CREATE VIEW {} AS {}", quote_ident(&v.name), v.query)
            }
            Statement::Insert(i) => {
                write!(f, "INSERT INTO {}", quote_ident(&i.table))?;
                if !i.columns.is_empty() {
                    let cols: Vec<_> = i.columns.iter().map(|c| quote_ident(c)).collect();
                    write!(f, " ({})", cols.join(", "))?;
                }
                write!(f, " {}", i.query)?;
                if i.emit == Emit::OnWindowClose {
                    f.write_str(" EMIT ON WINDOW CLOSE")?;
                }
                Ok(())
            }
            Statement::Set(s) => write!(f, "SET '{}' = '{}'", s.key, s.value.replace('\'', "''")),
        }
    }
}

impl fmt::Display for CreateTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CREATE TABLE ")?;
        if self.if_not_exists {
            f.write_str("IF NOT EXISTS ")?;
        }
        f.write_str(&quote_ident(&self.name))?;
        let mut parts: Vec<String> = self.elements.iter().map(|e| e.node.to_string()).collect();
        if !self.primary_key.is_empty() {
            let key: Vec<_> = self.primary_key.iter().map(|c| quote_ident(c)).collect();
            parts.push(format!("PRIMARY KEY ({}) NOT ENFORCED", key.join(", ")));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        if !self.options.is_empty() {
            let options: Vec<_> = self.options.iter().map(|o| o.to_string()).collect();
            write!(f, " WITH ({})", options.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for TableElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableElement::Column(c) => {
                write!(f, "{} {}", quote_ident(&c.name), c.data_type)?;
                if !c.nullable {
                    f.write_str(" NOT NULL")?;
                }
                if let Some(key) = &c.metadata {
                    write!(f, " METADATA FROM '{key}'")?;
                }
                Ok(())
            }
            TableElement::Computed { name, expr } => write!(f, "{} AS {expr}", quote_ident(name)),
            TableElement::Watermark(w) => {
                write!(f, "WATERMARK FOR {} AS {}", quote_ident(&w.column), w.expr)
            }
        }
    }
}

/// Quotes an identifier when it would not survive normalization unquoted.
pub fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !is_keyword(name);
    if plain { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

fn is_keyword(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    datafusion::sql::sqlparser::keywords::ALL_KEYWORDS.binary_search(&upper.as_str()).is_ok()
}
