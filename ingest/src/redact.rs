//! Secret redaction: every text `ingest` writes about itself (log lines of any crate, error reports,
//! panic messages) passes through a [`Redactor`] that replaces the API key wherever it occurs.
//!
//! The key is replaced in the forms in which a formatter can write it: as is, escaped by `{:?}`, escaped
//! as a JSON string (a JSON log line), both escapes stacked, percent-encoded (a URL), and in hex.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces registered secrets in text; cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first, so a longer form is never left half replaced.
    forms: Arc<[String]>,
}

impl Redactor {
    /// A redactor for `secrets` (empty ones are ignored).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut forms: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.as_ref().is_empty())
            .flat_map(|s| encodings(s.as_ref()))
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self { forms: forms.into() }
    }

    /// `text` with every occurrence of a secret replaced by [`REDACTED`]; borrowed when there is none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for form in self.forms.iter() {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
        out
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.forms.len())
    }
}

/// The forms in which `secret` can appear in formatted output.
fn encodings(secret: &str) -> Vec<String> {
    let debug = |s: &str| unquote(format!("{s:?}"));
    let json = |s: &str| unquote(serde_json::Value::from(s).to_string());
    let mut forms = vec![secret.to_owned()];
    for _ in 0..2 {
        let escaped: Vec<String> = forms.iter().flat_map(|f| [debug(f), json(f)]).collect();
        forms.extend(escaped);
    }
    forms.push(percent_encoded(secret));
    forms.push(hex(secret.as_bytes()));
    forms.push(hex(secret.as_bytes()).to_ascii_uppercase());
    forms
}

/// A quoted string literal without its quotes.
fn unquote(quoted: String) -> String {
    quoted[1..quoted.len() - 1].to_owned()
}

/// Every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").expect("writing to a String cannot fail");
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut out, b| {
        write!(out, "{b:02x}").expect("writing to a String cannot fail");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_and_borrows_when_clean() {
        let r = Redactor::new(["3f9c0a7e"]);
        assert_eq!(r.redact("k=3f9c0a7e, again 3f9c0a7e."), "k=[REDACTED], again [REDACTED].");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(Redactor::new([""; 1]).redact("text"), "text");
        assert_eq!(Redactor::default().redact("text"), "text");
    }

    #[test]
    fn escaped_forms_are_replaced_too() {
        let key = r#"ab"c\d/e+f="#;
        let r = Redactor::new([key]);
        // Each way of writing the key, applied to the key and to the marker: the redacted text must
        // be the marker written the same way (the marker has nothing to escape).
        let writes: [fn(&str) -> String; 4] = [
            |k| format!("{:?}", format!("x-td-apikey: {k}\r\n")),
            |k| serde_json::json!({ "message": format!("{:?}", format!("h: {k}")) }).to_string(),
            |k| serde_json::json!({ "key": k }).to_string(),
            |k| format!("{:?}", format!("{k:?}")),
        ];
        for write in writes {
            let text = write(key);
            assert_eq!(r.redact(&text), write(REDACTED), "{text}");
        }
        assert_eq!(r.redact("wss://h/p?k=ab%22c%5Cd%2Fe%2Bf%3D"), "wss://h/p?k=[REDACTED]");
        let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r.redact(&format!("payload: 0x{hex}")), "payload: 0x[REDACTED]");
        assert_eq!(r.redact(&hex.to_ascii_uppercase()), REDACTED);
    }

    #[test]
    fn the_debug_form_never_shows_a_secret() {
        assert!(!format!("{:?}", Redactor::new(["s3cr3t"])).contains("s3cr3t"));
    }
}
