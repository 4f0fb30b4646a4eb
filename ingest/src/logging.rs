//! Where `ingest` writes about itself, all on stderr and all through a [`Redactor`]: log lines (text or
//! JSON, from any crate, at any level), the report of the error that ends the process, and panics.
//! Colour only when stderr is a terminal and `NO_COLOR` is not set.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::panic::PanicHookInfo;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::redact::Redactor;

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` filter (default `info`), `format` on stderr, every line
/// redacted.
pub fn init(format: LogFormat, redactor: Redactor) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Redacting { redactor, inner: io::stderr });
    match format {
        LogFormat::Text => builder
            .with_ansi(use_colour(io::stderr().is_terminal(), std::env::var_os("NO_COLOR")))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Colour escapes only on a terminal, and never when `NO_COLOR` is set to a non-empty value
/// (<https://no-color.org>).
pub fn use_colour(is_terminal: bool, no_color: Option<OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Writes `Error: ` and the error with its causes to stderr, redacted (what `main` returning `Err` would
/// print, minus the secret).
pub fn report_error(redactor: &Redactor, error: &anyhow::Error) {
    write_stderr(&redactor.redact(&format!("Error: {error:?}\n")));
}

/// Makes every panic message go through `redactor` to stderr instead of the default hook.
pub fn install_panic_hook(redactor: Redactor) {
    std::panic::set_hook(panic_hook(redactor, write_stderr));
}

type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Send + Sync + 'static>;

/// A panic hook writing what the default hook writes (thread, location, message, backtrace when
/// `RUST_BACKTRACE` asks for one), redacted, to `out`.
fn panic_hook(redactor: Redactor, out: impl Fn(&str) + Send + Sync + 'static) -> PanicHook {
    Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let location = info.location().map_or_else(String::new, |l| format!(" at {l}"));
        let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("stack backtrace:\n{backtrace}"),
            _ => "note: run with `RUST_BACKTRACE=1` to display a backtrace\n".to_owned(),
        };
        let report = format!("\nthread '{name}' panicked{location}:\n{message}\n{backtrace}");
        out(&redactor.redact(&report));
    })
}

fn write_stderr(text: &str) {
    // Nowhere left to report a failure to write to stderr.
    let _ignored: io::Result<()> = io::stderr().lock().write_all(text.as_bytes());
}

/// A [`MakeWriter`] whose writers redact each log line before it reaches `inner`.
struct Redacting<M> {
    redactor: Redactor,
    inner: M,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            redactor: &self.redactor,
            inner: self.inner.make_writer(),
            line: Vec::new(),
        }
    }
}

/// Collects one event's output (the formatter writes each event through a fresh writer), then writes it
/// redacted: a secret split across two `write` calls is still found.
struct RedactingWriter<'a, W: Write> {
    redactor: &'a Redactor,
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> RedactingWriter<'_, W> {
    fn write_out(&mut self) -> io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.line);
        let result = self.inner.write_all(self.redactor.redact(&text).as_bytes());
        self.line.clear();
        result
    }
}

impl<W: Write> Write for RedactingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<'_, W> {
    fn drop(&mut self) {
        // A log line that cannot be written has nowhere else to go.
        let _ignored: io::Result<()> = self.write_out();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    const KEY: &str = "0123abcd4567ef89";

    /// Shared bytes standing in for stderr.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn log_lines_of_any_crate_and_format_are_redacted() {
        for json in [false, true] {
            let out = Captured::default();
            let writer = Redacting { redactor: Redactor::new([KEY]), inner: out.clone() };
            let builder = tracing_subscriber::fmt()
                .with_writer(writer)
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE);
            let subscriber: Box<dyn tracing::Subscriber + Send + Sync> =
                if json { Box::new(builder.json().finish()) } else { Box::new(builder.finish()) };
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!(header = %format!("x-td-apikey: {KEY}"), "connecting");
                tracing::trace!(target: "tungstenite::handshake::client", "Request: {:?}", format!("GET / HTTP/1.1\r\nx-td-apikey: {KEY}\r\n"));
            });
            let text = out.text();
            assert!(!text.contains(KEY), "{text}");
            assert_eq!(text.matches("[REDACTED]").count(), 2, "{text}");
            assert_eq!(text.lines().count(), 2, "{text}");
        }
    }

    #[test]
    fn a_secret_split_across_writes_is_still_redacted() {
        let out = Captured::default();
        let make = Redacting { redactor: Redactor::new([KEY]), inner: out.clone() };
        let mut writer = make.make_writer();
        writer.write_all(&KEY.as_bytes()[..5]).unwrap();
        writer.write_all(&KEY.as_bytes()[5..]).unwrap();
        writer.write_all(b"\n").unwrap();
        drop(writer);
        assert_eq!(out.text(), "[REDACTED]\n");
    }

    #[test]
    fn panic_messages_are_redacted() {
        let out = Captured::default();
        let sink = out.clone();
        let hook = panic_hook(Redactor::new([KEY]), move |text| {
            sink.0.lock().unwrap().extend_from_slice(text.as_bytes());
        });
        let previous = std::panic::take_hook();
        std::panic::set_hook(hook);
        let panicked = std::thread::Builder::new()
            .name("redaction-test".into())
            .spawn(|| panic!("bad key {KEY}"))
            .unwrap()
            .join();
        std::panic::set_hook(previous);
        assert!(panicked.is_err());
        let text = out.text();
        assert!(
            text.contains("thread 'redaction-test' panicked at ingest/src/logging.rs:"),
            "{text}"
        );
        assert!(text.contains("bad key [REDACTED]"), "{text}");
        assert!(!text.contains(KEY), "{text}");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsString::new())));
        assert!(!use_colour(true, Some(OsString::from("1"))));
        assert!(!use_colour(false, None));
    }
}
