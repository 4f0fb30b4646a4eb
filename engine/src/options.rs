//! `WITH (...)` options as a pull-bag: each connector takes the keys it understands and whatever
//! is left over is an error, except keys under a declared pass-through prefix. Neutral ground
//! between the SQL dialect that parses them and the connectors that read them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::error::{EngineError, Location};

/// One `key = 'value'` pair with its position.
#[derive(Debug, Clone)]
pub struct WithOption {
    /// The key as written (quotes removed).
    pub key: String,
    /// The value, after `${VAR}` expansion.
    pub value: String,
    /// Where the key starts.
    pub location: Location,
}

impl fmt::Display for WithOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' = '{}'", self.key, self.value.replace('\'', "''"))
    }
}

/// The options of one table, taken out one by one by the code that understands them.
#[derive(Debug, Clone)]
pub struct Options {
    table: String,
    statement: Location,
    remaining: BTreeMap<String, WithOption>,
}

impl Options {
    /// Collects `options`, refusing a key given twice.
    pub fn new(
        table: &str,
        statement: &Location,
        options: &[WithOption],
    ) -> Result<Self, EngineError> {
        let mut remaining = BTreeMap::new();
        for option in options {
            if remaining.insert(option.key.clone(), option.clone()).is_some() {
                return crate::sql_err!(
                    option.location,
                    "option '{}' is specified more than once",
                    option.key
                );
            }
        }
        Ok(Self { table: table.to_string(), statement: statement.clone(), remaining })
    }

    /// The table these options belong to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Where the table's statement starts.
    pub fn statement_location(&self) -> &Location {
        &self.statement
    }

    /// Takes an optional string option.
    pub fn pull_str(&mut self, key: &str) -> Option<WithOption> {
        self.remaining.remove(key)
    }

    /// Takes a required string option.
    pub fn pull_required(&mut self, key: &str, hint: &str) -> Result<WithOption, EngineError> {
        self.pull_str(key).ok_or_else(|| {
            EngineError::sql(
                self.statement.clone(),
                format!("table '{}' needs option '{key}' ({hint})", self.table),
            )
        })
    }

    /// Takes an optional option whose value must be one of `allowed`.
    pub fn pull_choice(
        &mut self,
        key: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, EngineError> {
        let Some(option) = self.pull_str(key) else { return Ok(None) };
        let lower = option.value.to_ascii_lowercase();
        match allowed.iter().find(|a| **a == lower) {
            Some(choice) => Ok(Some(*choice)),
            None => crate::sql_err!(
                option.location,
                "'{}' is not a valid value for '{key}'; expected one of: {}",
                option.value,
                allowed.join(", ")
            ),
        }
    }

    /// Takes an optional duration such as `'5 s'`, `'1s'`, `'500ms'` or `'2 minutes'`.
    pub fn pull_duration(&mut self, key: &str) -> Result<Option<Duration>, EngineError> {
        let Some(option) = self.pull_str(key) else { return Ok(None) };
        parse_duration(&option.value)
            .map(Some)
            .map_err(|message| EngineError::sql(option.location, format!("'{key}': {message}")))
    }

    /// Takes an optional positive integer.
    pub fn pull_u64(&mut self, key: &str) -> Result<Option<u64>, EngineError> {
        let Some(option) = self.pull_str(key) else { return Ok(None) };
        match option.value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => crate::sql_err!(
                option.location,
                "'{key}' must be a positive integer, found '{}'",
                option.value
            ),
        }
    }

    /// Takes an optional boolean (`true`/`false`).
    pub fn pull_bool(&mut self, key: &str) -> Result<Option<bool>, EngineError> {
        let Some(option) = self.pull_str(key) else { return Ok(None) };
        match option.value.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => crate::sql_err!(
                option.location,
                "'{key}' must be true or false, found '{}'",
                option.value
            ),
        }
    }

    /// Takes every option whose key starts with `prefix`, with the prefix removed.
    pub fn pull_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let keys: Vec<String> =
            self.remaining.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        keys.into_iter()
            .filter_map(|k| self.remaining.remove(&k))
            .map(|o| (o.key[prefix.len()..].to_string(), o.value))
            .collect()
    }

    /// Fails when options remain that no one took, naming them and what is accepted.
    pub fn finish(self, accepted: &[&str]) -> Result<(), EngineError> {
        let Some(first) = self.remaining.values().next() else { return Ok(()) };
        let unknown: Vec<_> = self.remaining.keys().map(|k| format!("'{k}'")).collect();
        crate::sql_err!(
            first.location,
            "unknown option{} {} for table '{}'; accepted options: {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", "),
            self.table,
            accepted.join(", ")
        )
    }
}

/// Parses `'5 s'`, `'1s'`, `'250ms'`, `'2 minutes'`, `'0'`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed).map_err(|err| {
        format!("'{text}' is not a duration ({err}); write e.g. '500ms', '5s' or '1 minute'")
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn option(key: &str, value: &str) -> WithOption {
        WithOption {
            key: key.into(),
            value: value.into(),
            location: Location::start_of(Path::new("t.sql")),
        }
    }

    #[test]
    fn leftovers_are_refused_by_name() {
        let location = Location::start_of(Path::new("t.sql"));
        let mut options = Options::new(
            "ticks",
            &location,
            &[option("path", "/d"), option("colour", "red"), option("properties.x", "1")],
        )
        .unwrap();
        assert_eq!(options.pull_str("path").unwrap().value, "/d");
        assert_eq!(options.pull_prefixed("properties."), vec![("x".into(), "1".into())]);
        let err = options.finish(&["path"]).unwrap_err().to_string();
        assert!(err.contains("unknown option 'colour' for table 'ticks'"), "{err}");
    }

    #[test]
    fn duplicate_key_is_refused() {
        let location = Location::start_of(Path::new("t.sql"));
        let err = Options::new("t", &location, &[option("a", "1"), option("a", "2")]).unwrap_err();
        assert!(err.to_string().contains("specified more than once"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2 minutes").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
    }
}
