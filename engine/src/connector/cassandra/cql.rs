//! CQL schema files (`cql/*.cql`): split into statements, and the tables they create read
//! without a server. `engine run --apply-schema` sends the statements; `engine check --schema`
//! checks queries against the tables; `engine run --schema` compares them with the live ones.
//!
//! Understood: `CREATE KEYSPACE`, `CREATE TABLE` (column types, `STATIC`, `PRIMARY KEY` inline or
//! `((partition), clustering)`, `WITH CLUSTERING ORDER BY`), `ALTER TABLE ... ADD / DROP`,
//! `DROP TABLE` and `USE`. Other statements (indexes, types, keyspace changes) do not change a
//! table's columns and are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CassandraTable, ColumnKind, CqlColumn};
use crate::error::{EngineError, Location, Result};

/// One statement of a CQL file.
#[derive(Debug, Clone)]
pub struct CqlStatement {
    /// Its text without comments, ready to send.
    pub text: String,
    /// Where it starts.
    pub location: Location,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// An unquoted word, lowercased.
    Word,
    /// A `"quoted"` identifier, case kept.
    Quoted,
    /// A string, number or other literal.
    Literal,
    /// One punctuation character.
    Symbol,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    text: String,
    line: u64,
    column: u64,
}

/// Splits `text` (the contents of `file`) into statements at `;`, dropping `--`, `//` and
/// `/* */` comments; strings and quoted names may hold either.
pub fn statements(file: &Arc<PathBuf>, text: &str) -> Result<Vec<CqlStatement>> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut column) = (0usize, 1u64, 1u64);
    let mut statements = vec![];
    let mut tokens: Vec<Token> = vec![];
    let mut current = String::new();
    let at = |line, column| Location::new(file, line, column);
    macro_rules! advance {
        ($n:expr) => {{
            for _ in 0..$n {
                if chars[i] == '\n' {
                    line += 1;
                    column = 1;
                } else {
                    column += 1;
                }
                i += 1;
            }
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') || c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                advance!(1);
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let (l, col) = (line, column);
            advance!(2);
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                advance!(1);
            }
            if i >= chars.len() {
                return crate::sql_err!(at(l, col), "unterminated /* comment");
            }
            advance!(2);
            space(&mut current);
            continue;
        }
        if c.is_whitespace() {
            space(&mut current);
            advance!(1);
            continue;
        }
        let (l, col, start) = (line, column, i);
        let kind = if c == ';' {
            advance!(1);
            let text = current.trim().to_string();
            if !tokens.is_empty() {
                let first = &tokens[0];
                statements.push(CqlStatement {
                    text,
                    location: at(first.line, first.column),
                    tokens: std::mem::take(&mut tokens),
                });
            }
            current.clear();
            continue;
        } else if c == '\'' || c == '"' {
            advance!(1);
            loop {
                if i >= chars.len() {
                    let what = if c == '\'' { "string" } else { "quoted name" };
                    return crate::sql_err!(at(l, col), "unterminated {what}");
                }
                if chars[i] == c {
                    if chars.get(i + 1) == Some(&c) {
                        advance!(2);
                        continue;
                    }
                    advance!(1);
                    break;
                }
                advance!(1);
            }
            if c == '\'' { Kind::Literal } else { Kind::Quoted }
        } else if c == '$' && next == Some('$') {
            advance!(2);
            while i < chars.len() && !(chars[i] == '$' && chars.get(i + 1) == Some(&'$')) {
                advance!(1);
            }
            if i >= chars.len() {
                return crate::sql_err!(at(l, col), "unterminated $$ string");
            }
            advance!(2);
            Kind::Literal
        } else if c.is_alphanumeric() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                advance!(1);
            }
            if c.is_ascii_digit() { Kind::Literal } else { Kind::Word }
        } else {
            advance!(1);
            Kind::Symbol
        };
        let raw: String = chars[start..i].iter().collect();
        current.push_str(&raw);
        let text = match kind {
            Kind::Word => raw.to_ascii_lowercase(),
            Kind::Quoted => raw[1..raw.len() - 1].replace("\"\"", "\""),
            _ => raw,
        };
        tokens.push(Token { kind, text, line: l, column: col });
    }
    if let Some(first) = tokens.first() {
        statements.push(CqlStatement {
            text: current.trim().to_string(),
            location: at(first.line, first.column),
            tokens,
        });
    }
    Ok(statements)
}

/// Whitespace and comments between tokens become one space.
fn space(text: &mut String) {
    if !text.is_empty() && !text.ends_with(' ') {
        text.push(' ');
    }
}

/// The `*.cql` files of `dir`, in name order.
pub fn schema_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::io(format!("cannot list schema directory {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cql"))
        .collect();
    files.sort();
    Ok(files)
}

/// The statements of every `*.cql` file of `dir`, in file-name order.
pub fn read_dir(dir: &Path) -> Result<Vec<CqlStatement>> {
    let mut all = vec![];
    for file in schema_files(dir)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| EngineError::io(format!("cannot read {}", file.display()), e))?;
        all.extend(statements(&Arc::new(file), &text)?);
    }
    Ok(all)
}

/// A table a CQL file creates.
#[derive(Debug, Clone)]
pub struct CqlTable {
    /// Its columns, in the order a server describes them.
    pub table: CassandraTable,
    /// Where it is created.
    pub location: Location,
    /// The clustering columns' order (`true`: descending).
    pub descending: Vec<(String, bool)>,
}

/// The tables a directory of CQL files creates, by `(keyspace, table)`.
#[derive(Debug, Clone, Default)]
pub struct CqlSchema {
    /// Where the files are, for messages.
    pub dir: PathBuf,
    tables: BTreeMap<(String, String), CqlTable>,
}

impl CqlSchema {
    /// Reads every `*.cql` file of `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut schema = Self { dir: dir.to_path_buf(), tables: BTreeMap::new() };
        let mut keyspace: Option<String> = None;
        for statement in read_dir(dir)? {
            let mut p = Parser { tokens: &statement.tokens, at: 0, statement: &statement };
            schema.apply(&mut p, &mut keyspace)?;
        }
        Ok(schema)
    }

    /// The table `keyspace.table`, if the files create it.
    pub fn table(&self, keyspace: &str, table: &str) -> Option<&CqlTable> {
        self.tables.get(&(keyspace.to_string(), table.to_string()))
    }

    fn apply(&mut self, p: &mut Parser<'_>, keyspace: &mut Option<String>) -> Result<()> {
        match (p.word(0), p.word(1)) {
            (Some("use"), _) => {
                p.at = 1;
                *keyspace = Some(p.name()?);
            }
            (Some("create"), Some("table" | "columnfamily")) => {
                p.at = 2;
                p.if_exists(&["if", "not", "exists"]);
                let (ks, name) = p.qualified(keyspace)?;
                let table = p.create_table(&name)?;
                self.tables.insert((ks, name), table);
            }
            (Some("drop"), Some("table" | "columnfamily")) => {
                p.at = 2;
                p.if_exists(&["if", "exists"]);
                let key = p.qualified(keyspace)?;
                self.tables.remove(&key);
            }
            (Some("alter"), Some("table" | "columnfamily")) => {
                p.at = 2;
                let key = p.qualified(keyspace)?;
                let Some(table) = self.tables.get_mut(&key) else {
                    return p.fail(&format!(
                        "ALTER TABLE {}.{}: no earlier statement creates the table",
                        key.0, key.1
                    ));
                };
                p.alter_table(&mut table.table)?;
            }
            _ => {}
        }
        Ok(())
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    statement: &'a CqlStatement,
}

impl Parser<'_> {
    fn word(&self, index: usize) -> Option<&str> {
        self.tokens.get(index).filter(|t| t.kind == Kind::Word).map(|t| t.text.as_str())
    }

    fn peek_is(&self, text: &str) -> bool {
        self.tokens
            .get(self.at)
            .is_some_and(|t| t.text == text && matches!(t.kind, Kind::Word | Kind::Symbol))
    }

    fn eat(&mut self, text: &str) -> bool {
        let found = self.peek_is(text);
        if found {
            self.at += 1;
        }
        found
    }

    fn location(&self) -> Location {
        match self.tokens.get(self.at).or(self.tokens.last()) {
            Some(t) => Location::new(&self.statement.location.file, t.line, t.column),
            None => self.statement.location.clone(),
        }
    }

    fn fail<T>(&self, message: &str) -> Result<T> {
        Err(EngineError::sql(self.location(), message.to_string()))
    }

    fn expect(&mut self, text: &str) -> Result<()> {
        if self.eat(text) {
            return Ok(());
        }
        let found = self.tokens.get(self.at).map_or("the end of the statement", |t| &t.text);
        self.fail(&format!("expected '{text}', found '{found}'"))
    }

    fn if_exists(&mut self, words: &[&str]) {
        if words.iter().enumerate().all(|(i, w)| {
            self.tokens.get(self.at + i).is_some_and(|t| t.kind == Kind::Word && t.text == *w)
        }) {
            self.at += words.len();
        }
    }

    fn name(&mut self) -> Result<String> {
        match self.tokens.get(self.at) {
            Some(t) if matches!(t.kind, Kind::Word | Kind::Quoted) => {
                self.at += 1;
                Ok(t.text.clone())
            }
            Some(t) => self.fail(&format!("expected a name, found '{}'", t.text)),
            None => self.fail("expected a name"),
        }
    }

    fn qualified(&mut self, keyspace: &Option<String>) -> Result<(String, String)> {
        let start = self.at;
        let first = self.name()?;
        if self.eat(".") {
            return Ok((first, self.name()?));
        }
        match keyspace {
            Some(ks) => Ok((ks.clone(), first)),
            None => {
                self.at = start;
                self.fail(&format!(
                "table '{first}' has no keyspace: write keyspace.{first} or USE a keyspace first"
                ))
            }
        }
    }

    /// A CQL type as `system_schema` spells it: lowercase, `varchar` as `text`, parameters
    /// separated by `, `.
    fn data_type(&mut self) -> Result<String> {
        let base = self.name()?;
        let base = if base == "varchar" { "text".to_string() } else { base };
        if !self.eat("<") {
            return Ok(base);
        }
        let mut parameters = vec![self.data_type()?];
        while self.eat(",") {
            parameters.push(self.data_type()?);
        }
        self.expect(">")?;
        Ok(format!("{base}<{}>", parameters.join(", ")))
    }

    fn name_list(&mut self) -> Result<Vec<String>> {
        self.expect("(")?;
        let mut names = vec![self.name()?];
        while self.eat(",") {
            names.push(self.name()?);
        }
        self.expect(")")?;
        Ok(names)
    }

    fn create_table(&mut self, name: &str) -> Result<CqlTable> {
        let location = self.statement.location.clone();
        self.expect("(")?;
        let mut columns: Vec<(String, String, bool, Location)> = vec![];
        let mut key: Option<(Vec<String>, Vec<String>)> = None;
        loop {
            if self.eat("primary") {
                self.expect("key")?;
                self.expect("(")?;
                let partition =
                    if self.peek_is("(") { self.name_list()? } else { vec![self.name()?] };
                let mut clustering = vec![];
                while self.eat(",") {
                    clustering.push(self.name()?);
                }
                self.expect(")")?;
                if key.replace((partition, clustering)).is_some() {
                    return self.fail(&format!("table '{name}' has more than one PRIMARY KEY"));
                }
            } else {
                let at = self.location();
                let column = self.name()?;
                let data_type = self.data_type()?;
                let is_static = self.eat("static");
                if self.eat("primary") {
                    self.expect("key")?;
                    if key.replace((vec![column.clone()], vec![])).is_some() {
                        return self.fail(&format!("table '{name}' has more than one PRIMARY KEY"));
                    }
                }
                if columns.iter().any(|c| c.0 == column) {
                    return Err(EngineError::sql(
                        at,
                        format!("column '{column}' is declared twice"),
                    ));
                }
                columns.push((column, data_type, is_static, at));
            }
            if !self.eat(",") {
                break;
            }
            if self.peek_is(")") {
                break;
            }
        }
        self.expect(")")?;
        let Some((partition, clustering)) = key else {
            return self.fail(&format!("table '{name}' has no PRIMARY KEY"));
        };
        for key_column in partition.iter().chain(&clustering) {
            if !columns.iter().any(|c| &c.0 == key_column) {
                return self.fail(&format!(
                    "PRIMARY KEY column '{key_column}' is not a column of table '{name}'"
                ));
            }
        }
        let mut descending: Vec<(String, bool)> =
            clustering.iter().map(|c| (c.clone(), false)).collect();
        if self.eat("with") {
            loop {
                if self.eat("clustering") {
                    self.expect("order")?;
                    self.expect("by")?;
                    self.expect("(")?;
                    loop {
                        let column = self.name()?;
                        let desc = if self.eat("desc") {
                            true
                        } else {
                            self.eat("asc");
                            false
                        };
                        match descending.iter_mut().find(|(c, _)| *c == column) {
                            Some(entry) => entry.1 = desc,
                            None => {
                                return self.fail(&format!(
                                    "CLUSTERING ORDER BY '{column}': not a clustering column of table '{name}'"
                                ));
                            }
                        }
                        if !self.eat(",") {
                            break;
                        }
                    }
                    self.expect(")")?;
                } else {
                    // Any other table property: `name = value` up to the next top-level AND.
                    let mut depth = 0usize;
                    while let Some(t) = self.tokens.get(self.at) {
                        if depth == 0 && t.kind == Kind::Word && t.text == "and" {
                            break;
                        }
                        match t.text.as_str() {
                            "{" | "[" | "(" if t.kind == Kind::Symbol => depth += 1,
                            "}" | "]" | ")" if t.kind == Kind::Symbol => {
                                depth = depth.saturating_sub(1)
                            }
                            _ => {}
                        }
                        self.at += 1;
                    }
                }
                if !self.eat("and") {
                    break;
                }
            }
        }
        if let Some(t) = self.tokens.get(self.at) {
            return self.fail(&format!("unexpected '{}' after the table definition", t.text));
        }
        let kind_of = |column: &str, is_static: bool| {
            if partition.iter().any(|k| k == column) {
                ColumnKind::PartitionKey
            } else if clustering.iter().any(|k| k == column) {
                ColumnKind::Clustering
            } else if is_static {
                ColumnKind::Static
            } else {
                ColumnKind::Regular
            }
        };
        // The order a server describes them in: partition key, clustering columns (key order),
        // then the rest by name.
        let position = |name: &str, kind: ColumnKind| match kind {
            ColumnKind::PartitionKey => partition.iter().position(|k| k == name).unwrap_or(0),
            ColumnKind::Clustering => clustering.iter().position(|k| k == name).unwrap_or(0),
            _ => 0,
        };
        let mut described: Vec<CqlColumn> = columns
            .into_iter()
            .map(|(name, cql_type, is_static, _)| {
                let kind = kind_of(&name, is_static);
                CqlColumn { name, cql_type, kind }
            })
            .collect();
        described.sort_by(|a, b| {
            (a.kind, position(&a.name, a.kind), &a.name).cmp(&(
                b.kind,
                position(&b.name, b.kind),
                &b.name,
            ))
        });
        Ok(CqlTable { table: CassandraTable { columns: described }, location, descending })
    }

    fn alter_table(&mut self, table: &mut CassandraTable) -> Result<()> {
        if self.eat("add") {
            self.if_exists(&["if", "not", "exists"]);
            let parenthesized = self.eat("(");
            loop {
                let name = self.name()?;
                let cql_type = self.data_type()?;
                let kind =
                    if self.eat("static") { ColumnKind::Static } else { ColumnKind::Regular };
                if table.column(&name).is_none() {
                    table.columns.push(CqlColumn { name, cql_type, kind });
                }
                if !self.eat(",") {
                    break;
                }
            }
            if parenthesized {
                self.expect(")")?;
            }
            // Key columns keep their order; the others go by kind and name, as a server lists them.
            table.columns.sort_by(|a, b| match (a.is_key(), b.is_key()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Less,
                (false, true) => std::cmp::Ordering::Greater,
                (false, false) => (a.kind, &a.name).cmp(&(b.kind, &b.name)),
            });
        } else if self.eat("drop") {
            self.if_exists(&["if", "exists"]);
            let names = if self.peek_is("(") { self.name_list()? } else { vec![self.name()?] };
            table.columns.retain(|c| !names.contains(&c.name));
        }
        Ok(())
    }
}

/// How the live table differs from the one the CQL files create; empty when they agree.
pub fn differences(live: &CassandraTable, files: &CassandraTable) -> Vec<String> {
    let mut found = vec![];
    let describe = |c: &CqlColumn| format!("{} {} ({:?})", c.name, c.cql_type, c.kind);
    for column in &files.columns {
        match live.column(&column.name) {
            None => found.push(format!("column {} is missing", column.name)),
            Some(l) if !same_type(&l.cql_type, &column.cql_type) || l.kind != column.kind => {
                found.push(format!("live {} vs files {}", describe(l), describe(column)));
            }
            Some(_) => {}
        }
    }
    for column in &live.columns {
        if files.column(&column.name).is_none() {
            found.push(format!("column {} is not in the files", column.name));
        }
    }
    if found.is_empty() && live.primary_key() != files.primary_key() {
        found.push(format!(
            "primary key ({}) vs files ({})",
            live.primary_key().join(", "),
            files.primary_key().join(", ")
        ));
    }
    found
}

fn same_type(a: &str, b: &str) -> bool {
    let norm = |t: &str| t.to_ascii_lowercase().replace(' ', "").replace("varchar", "text");
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CqlSchema> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.cql"), text).unwrap();
        CqlSchema::read(dir.path())
    }

    #[test]
    fn statements_drop_comments_and_split() {
        let file = Arc::new(PathBuf::from("s.cql"));
        let text = "-- header\nCREATE KEYSPACE IF NOT EXISTS m -- trailing\n  WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n\n/* a; b */ CREATE TABLE IF NOT EXISTS m.t (a text PRIMARY KEY, b text) WITH comment = 'x -- y; z';\n";
        let found = statements(&file, text).unwrap();
        let texts: Vec<_> = found.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS m"), "{}", texts[0]);
        assert!(!texts[0].contains("trailing"));
        assert!(texts[1].ends_with("WITH comment = 'x -- y; z'"), "{}", texts[1]);
        assert_eq!(found[1].location.to_string(), "s.cql:5:12");
    }

    #[test]
    fn tables_with_compound_keys_and_clustering_order() {
        let schema = parse(
            "CREATE KEYSPACE IF NOT EXISTS m WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};\n\
             CREATE TABLE IF NOT EXISTS m.c (\n  symbol text, \"Venue\" varchar, window_start timestamp, tags map<text,  frozen<list<int>>>,\n  open double, note text static,\n  PRIMARY KEY ((symbol, \"Venue\"), window_start)\n) WITH CLUSTERING ORDER BY (window_start DESC) AND compaction = {'class': 'X', 'a': '1'} AND default_time_to_live = 5;\n\
             USE m; ALTER TABLE c ADD volume bigint; CREATE TABLE gone (k int PRIMARY KEY); DROP TABLE gone;",
        )
        .unwrap();
        let table = &schema.table("m", "c").unwrap();
        let columns: Vec<_> = table
            .table
            .columns
            .iter()
            .map(|c| format!("{} {} {:?}", c.name, c.cql_type, c.kind))
            .collect();
        assert_eq!(
            columns,
            [
                "symbol text PartitionKey",
                "Venue text PartitionKey",
                "window_start timestamp Clustering",
                "note text Static",
                "open double Regular",
                "tags map<text, frozen<list<int>>> Regular",
                "volume bigint Regular",
            ]
        );
        assert_eq!(table.descending, [("window_start".to_string(), true)]);
        assert!(schema.table("m", "gone").is_none());
    }

    #[test]
    fn mistakes_have_positions() {
        let err = parse("CREATE TABLE m.t (a text, b int, PRIMARY KEY ((a), c));").unwrap_err();
        assert!(err.to_string().contains("PRIMARY KEY column 'c' is not a column"), "{err}");
        let err = parse("CREATE TABLE t (a text PRIMARY KEY);").unwrap_err();
        assert!(err.to_string().contains("a.cql:1:14: table 't' has no keyspace"), "{err}");
        let err = parse("CREATE TABLE m.t (a text PRIMARY KEY) WITH CLUSTERING ORDER BY (a DESC);")
            .unwrap_err();
        assert!(err.to_string().contains("not a clustering column"), "{err}");
    }

    #[test]
    fn differences_are_named() {
        let live =
            parse("CREATE TABLE m.t (a text, b bigint, c text, PRIMARY KEY (a, b));").unwrap();
        let files = parse("CREATE TABLE m.t (a text, b int, d text, PRIMARY KEY (a, b));").unwrap();
        let diff = differences(
            &live.table("m", "t").unwrap().table,
            &files.table("m", "t").unwrap().table,
        );
        assert_eq!(diff.len(), 3, "{diff:?}");
        assert!(diff[0].contains("live b bigint"), "{diff:?}");
        assert!(diff[1].contains("column d is missing"), "{diff:?}");
        assert!(diff[2].contains("column c is not in the files"), "{diff:?}");
        assert!(
            differences(&live.table("m", "t").unwrap().table, &live.table("m", "t").unwrap().table)
                .is_empty()
        );
    }
}
