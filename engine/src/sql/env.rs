//! `${VAR}` and `${VAR:-default}` expansion in string literals.

/// Why a `${...}` reference could not be expanded; `offset` is the byte offset of its `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// Byte offset of the `$` that starts the reference.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Replaces every `${NAME}` and `${NAME:-default}` in `text` with the value `lookup` gives for
/// `NAME`. An unset variable without a default is an error that names it; a `$` not followed by
/// `{` is kept as it is.
pub fn expand_vars(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let offset = consumed + start;
        let body_start = start + 2;
        let Some(len) = rest[body_start..].find('}') else {
            return Err(ExpandError {
                offset,
                message: "unterminated '${': add a closing '}'".into(),
            });
        };
        let body = &rest[body_start..body_start + len];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_var_name(name) {
            return Err(ExpandError {
                offset,
                message: format!(
                    "'${{{body}}}' is not a variable reference: names are letters, digits and '_'"
                ),
            });
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(ExpandError {
                    offset,
                    message: format!(
                        "environment variable {name} is not set; set it or write '${{{name}:-default}}'"
                    ),
                });
            }
        }
        let next = body_start + len + 1;
        consumed += next;
        rest = &rest[next..];
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "BROKERS").then(|| "k1:9092,k2:9092".to_string())
    }

    #[test]
    fn expands_set_variable_and_defaults() {
        assert_eq!(expand_vars("${BROKERS}", &env).unwrap(), "k1:9092,k2:9092");
        assert_eq!(expand_vars("x${MISSING:-localhost:9092}y", &env).unwrap(), "xlocalhost:9092y");
        assert_eq!(expand_vars("${BROKERS:-other}", &env).unwrap(), "k1:9092,k2:9092");
        assert_eq!(expand_vars("${MISSING:-}", &env).unwrap(), "");
        assert_eq!(
            expand_vars("cost $5 and ${BROKERS}!", &env).unwrap(),
            "cost $5 and k1:9092,k2:9092!"
        );
    }

    #[test]
    fn unset_variable_is_named() {
        let err = expand_vars("ab${NOPE}", &env).unwrap_err();
        assert_eq!(err.offset, 2);
        assert!(err.message.contains("NOPE is not set"), "{}", err.message);
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(expand_vars("${OPEN", &env).unwrap_err().message.contains("unterminated"));
        assert!(expand_vars("x ${1X}", &env).unwrap_err().message.contains("not a variable"));
    }
}
