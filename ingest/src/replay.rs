//! Replays a JSON-lines capture of price events (as written by `ingest run --record FILE`).
//!
//! Events keep their original spacing, taken from their `timestamp` fields (UNIX seconds), divided by
//! the speed factor; `--speed max` sends them as fast as the sink takes them. Lines that are not price
//! events are reported with their line number and skipped.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::sink::{PriceSink, SinkError};
use crate::twelvedata::protocol::{ServerEvent, parse_server_message, truncate_for_log};

/// Replay pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Original spacing divided by this factor (1 = real time).
    Factor(f64),
    /// No waiting.
    Max,
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Self::Max);
        }
        match s.trim_end_matches(['x', 'X']).parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Self::Factor(f)),
            _ => Err(format!(
                "invalid speed {s:?}: use a positive factor such as 1, 10 or 0.5, or \"max\""
            )),
        }
    }
}

/// Replay failures.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The capture cannot be opened.
    #[error("cannot open capture {path}: {source}")]
    Open {
        /// Capture file.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// Reading failed midway.
    #[error("cannot read capture {path} after line {line}: {source}")]
    Read {
        /// Capture file.
        path: PathBuf,
        /// Last line read.
        line: u64,
        /// I/O error.
        source: std::io::Error,
    },
    /// The destination failed.
    #[error("sink failed at {path}:{line}: {source}")]
    Sink {
        /// Capture file.
        path: PathBuf,
        /// Line being sent.
        line: u64,
        /// Sink error.
        source: SinkError,
    },
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Events sent to the sink.
    pub events: u64,
    /// Lines skipped (blank lines are not counted).
    pub skipped: u64,
}

/// Sends every price event of the capture at `path` to `sink`, paced by `speed`, until the end of
/// the file or `shutdown`.
pub async fn replay<S: PriceSink>(
    path: &Path,
    speed: Speed,
    sink: &mut S,
    shutdown: &CancellationToken,
) -> Result<ReplayStats, ReplayError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| ReplayError::Open { path: path.to_owned(), source })?;
    let mut lines = tokio::io::BufReader::with_capacity(1 << 16, file).lines();
    let mut stats = ReplayStats::default();
    let mut line_no = 0u64;
    let mut origin: Option<(i64, Instant)> = None;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(source) => {
                return Err(ReplayError::Read { path: path.to_owned(), line: line_no, source });
            }
        };
        line_no += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let price = match parse_server_message(text) {
            Ok(ServerEvent::Price(price)) => price,
            Ok(other) => {
                stats.skipped += 1;
                tracing::warn!(at = %format!("{}:{line_no}", path.display()), kind = other.kind(), "skipping a line that is not a price event");
                continue;
            }
            Err(error) => {
                stats.skipped += 1;
                tracing::warn!(at = %format!("{}:{line_no}", path.display()), %error, line = %truncate_for_log(text, 200), "skipping a malformed line");
                continue;
            }
        };
        if let Speed::Factor(factor) = speed {
            let (first_ts, started) = *origin.get_or_insert((price.timestamp, Instant::now()));
            let offset = (price.timestamp - first_ts).max(0) as f64 / factor;
            let due = started + Duration::from_secs_f64(offset);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        } else if shutdown.is_cancelled() {
            break;
        }
        sink.on_price(&price.symbol, text, Instant::now())
            .await
            .map_err(|source| ReplayError::Sink { path: path.to_owned(), line: line_no, source })?;
        stats.events += 1;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::sink::LineSink;

    fn capture() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, r#"{{"event":"price","symbol":"AAPL","timestamp":1000,"price":1.5}}"#).unwrap();
        writeln!(f, "garbage").unwrap();
        writeln!(f).unwrap();
        writeln!(f, r#"{{"event":"heartbeat","status":"ok"}}"#).unwrap();
        writeln!(f, r#"{{"event":"price","symbol":"MSFT","timestamp":1010,"price":2.5}}"#).unwrap();
        writeln!(f, r#"{{"event":"price","symbol":"AAPL","timestamp":1020,"price":1.6}}"#).unwrap();
        f
    }

    #[test]
    fn speed_parsing() {
        assert_eq!("max".parse(), Ok(Speed::Max));
        assert_eq!("10x".parse(), Ok(Speed::Factor(10.0)));
        assert_eq!("0.5".parse(), Ok(Speed::Factor(0.5)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn replays_with_original_spacing_scaled_by_speed() {
        let f = capture();
        let mut sink = LineSink::new(Vec::new());
        let started = Instant::now();
        let stats = replay(f.path(), Speed::Factor(10.0), &mut sink, &CancellationToken::new())
            .await
            .unwrap();
        // 20 s of event time at 10x: 2 s.
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(stats, ReplayStats { events: 3, skipped: 2 });
    }

    #[tokio::test]
    async fn max_speed_sends_everything_in_order() {
        let f = capture();
        let mut out = Vec::new();
        {
            let mut sink = LineSink::new(&mut out);
            replay(f.path(), Speed::Max, &mut sink, &CancellationToken::new()).await.unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let symbols: Vec<&str> =
            text.lines().map(|l| if l.contains("AAPL") { "AAPL" } else { "MSFT" }).collect();
        assert_eq!(symbols, ["AAPL", "MSFT", "AAPL"]);
    }

    #[tokio::test]
    async fn missing_file_is_a_clear_error() {
        let mut sink = LineSink::new(Vec::new());
        let err = replay(
            Path::new("/nonexistent.jsonl"),
            Speed::Max,
            &mut sink,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("cannot open capture /nonexistent.jsonl"), "{err}");
    }
}
