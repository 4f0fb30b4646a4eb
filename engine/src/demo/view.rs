//! The demo's terminal view: the latest 1-minute candle of every symbol, read back from the CQL
//! store, as a compact table redrawn in place (or printed every few seconds when the output is
//! not a terminal).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;

use crate::connector::cassandra::schema::connect_with_retry;
use crate::error::{EngineError, Result};

/// How long connecting to the store may take.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
/// How often the table is printed when the output is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The newest candle of one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct Candle {
    /// The instrument.
    pub symbol: String,
    /// Start of the minute, milliseconds since the epoch.
    pub window_start: i64,
    /// First price of the minute.
    pub open: Option<f64>,
    /// Highest price.
    pub high: Option<f64>,
    /// Lowest price.
    pub low: Option<f64>,
    /// Last price so far.
    pub close: Option<f64>,
    /// Ticks in the minute so far.
    pub ticks: Option<i64>,
}

/// Reads the candles table through CQL.
pub struct CandleReader {
    session: Session,
    select: String,
}

impl CandleReader {
    /// Connects to the store at `addr` to read `keyspace.table`.
    pub async fn connect(addr: &str, keyspace: &str, table: &str) -> Result<Self> {
        let session = connect_with_retry(&[addr.to_string()], CONNECT_PATIENCE).await?;
        let select = format!(
            "SELECT symbol, window_start, open, high, low, close, ticks FROM {keyspace}.{table}"
        );
        Ok(Self { session, select })
    }

    /// The newest candle of every symbol, by symbol. (A whole-table paged read: the CQL store
    /// ignores clustering order and range predicates, and the demo's table stays small.)
    pub async fn latest(&self) -> Result<Vec<Candle>> {
        type Row =
            (String, CqlTimestamp, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<i64>);
        let failed = |e: &dyn std::fmt::Display| EngineError::connector("demo view", e.to_string());
        let rows: Vec<Row> = self
            .session
            .query_iter(self.select.as_str(), ())
            .await
            .map_err(|e| failed(&e))?
            .rows_stream::<Row>()
            .map_err(|e| failed(&e))?
            .try_collect()
            .await
            .map_err(|e| failed(&e))?;
        let mut latest: BTreeMap<String, Candle> = BTreeMap::new();
        for (symbol, start, open, high, low, close, ticks) in rows {
            let newer = latest.get(&symbol).is_none_or(|c| c.window_start < start.0);
            if newer {
                let candle = Candle {
                    symbol: symbol.clone(),
                    window_start: start.0,
                    open,
                    high,
                    low,
                    close,
                    ticks,
                };
                latest.insert(symbol, candle);
            }
        }
        Ok(latest.into_values().collect())
    }
}

/// The table of `candles` under a status line, in at most `max_lines` lines.
pub fn render(candles: &[Candle], produced: u64, now: SystemTime, max_lines: usize) -> String {
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut frame = format!(
        "{} UTC  ticks produced: {produced}  symbols with candles: {}\n",
        clock(now_ms, true),
        candles.len()
    );
    if candles.is_empty() {
        frame.push_str("waiting for the first candles (written within a few seconds)\n");
        return frame;
    }
    frame.push_str(&format!(
        "{:<9} {:>6} {:>11} {:>11} {:>11} {:>11} {:>8} {:>6}\n",
        "symbol", "minute", "open", "high", "low", "close", "change", "ticks"
    ));
    let price = |p: Option<f64>| p.map_or_else(|| "-".to_string(), |p| format!("{p:.2}"));
    // The status line and the column names, then as many rows as fit with a last line for the
    // rest.
    let fit =
        if candles.len() + 2 <= max_lines { candles.len() } else { max_lines.saturating_sub(3) };
    for c in &candles[..fit] {
        let change = match (c.open, c.close) {
            (Some(open), Some(close)) if open != 0.0 => {
                // Moves that round to zero show as +0.00%, not -0.00%.
                let percent = (close / open - 1.0) * 100.0;
                format!("{:+.2}%", if percent.abs() < 0.005 { 0.0 } else { percent })
            }
            _ => "-".to_string(),
        };
        frame.push_str(&format!(
            "{:<9} {:>6} {:>11} {:>11} {:>11} {:>11} {:>8} {:>6}\n",
            c.symbol,
            clock(c.window_start, false),
            price(c.open),
            price(c.high),
            price(c.low),
            price(c.close),
            change,
            c.ticks.map_or_else(|| "-".to_string(), |t| t.to_string()),
        ));
    }
    if fit < candles.len() {
        frame.push_str(&format!(
            "... and {} more (a taller terminal shows them)\n",
            candles.len() - fit
        ));
    }
    frame
}

/// `HH:MM` (or `HH:MM:SS`) of a UTC time given in milliseconds since the epoch.
fn clock(millis: i64, seconds: bool) -> String {
    let of_day = millis.div_euclid(1000).rem_euclid(86_400);
    let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    if seconds { format!("{h:02}:{m:02}:{s:02}") } else { format!("{h:02}:{m:02}") }
}

/// Where frames go: redrawn in place on a terminal, printed now and then otherwise.
#[derive(Debug)]
pub struct Screen {
    interactive: bool,
    drawn_lines: usize,
    last_printed: Option<Instant>,
}

impl Screen {
    /// A screen that redraws in place with ANSI escape codes when `interactive`.
    pub fn new(interactive: bool) -> Self {
        Self { interactive, drawn_lines: 0, last_printed: None }
    }

    /// How many lines a frame may take: on a terminal, one less than its height, so that
    /// redrawing in place never scrolls.
    pub fn max_lines(&self) -> usize {
        match terminal_size::terminal_size() {
            Some((_, terminal_size::Height(rows))) if self.interactive => {
                usize::from(rows).saturating_sub(1).max(4)
            }
            _ => usize::MAX,
        }
    }

    /// Shows `frame` (whole lines): over the previous frame on a terminal; otherwise printed
    /// below it, at most every few seconds.
    pub fn show(&mut self, out: &mut dyn Write, frame: &str) -> io::Result<()> {
        if self.interactive {
            if self.drawn_lines > 0 {
                // Cursor to the start of the previous frame's first line, then clear below.
                write!(out, "\x1b[{}F", self.drawn_lines)?;
            }
            write!(out, "\x1b[J{frame}")?;
            self.drawn_lines = frame.lines().count();
        } else if self.last_printed.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
            writeln!(out, "{frame}")?;
            self.last_printed = Some(Instant::now());
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candle(symbol: &str, window_start: i64) -> Candle {
        Candle {
            symbol: symbol.into(),
            window_start,
            open: Some(100.0),
            high: Some(102.5),
            low: Some(99.0),
            close: Some(101.0),
            ticks: Some(42),
        }
    }

    #[test]
    fn the_table_shows_each_symbols_minute_prices_change_and_ticks() {
        let now = UNIX_EPOCH + Duration::from_millis(1_714_570_265_000);
        let frame = render(&[candle("AAPL", 1_714_570_260_000)], 1234, now, usize::MAX);
        let lines: Vec<&str> = frame.lines().collect();
        assert_eq!(lines[0], "13:31:05 UTC  ticks produced: 1234  symbols with candles: 1");
        assert!(lines[1].starts_with("symbol    minute        open"), "{}", lines[1]);
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["AAPL", "13:31", "100.00", "102.50", "99.00", "101.00", "+1.00%", "42"]
        );
        assert!(render(&[], 0, now, usize::MAX).contains("waiting for the first candles"));
    }

    #[test]
    fn a_table_taller_than_the_terminal_is_cut() {
        let now = UNIX_EPOCH;
        let candles: Vec<Candle> = (0..10).map(|i| candle(&format!("S{i}"), 0)).collect();
        assert_eq!(render(&candles, 0, now, 12).lines().count(), 12, "all fit");
        let frame = render(&candles, 0, now, 8);
        assert_eq!(frame.lines().count(), 8);
        assert!(frame.lines().any(|l| l.starts_with("S4 ")), "{frame}");
        assert_eq!(frame.lines().last(), Some("... and 5 more (a taller terminal shows them)"));
    }

    #[test]
    fn a_terminal_frame_replaces_the_previous_one() {
        let mut screen = Screen::new(true);
        let mut out = Vec::new();
        screen.show(&mut out, "a\nb\n").unwrap();
        screen.show(&mut out, "c\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "\x1b[Ja\nb\n\x1b[2F\x1b[Jc\n");
    }

    #[test]
    fn plain_output_prints_now_and_then() {
        let mut screen = Screen::new(false);
        let mut out = Vec::new();
        screen.show(&mut out, "a\n").unwrap();
        screen.show(&mut out, "b\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\n\n");
    }
}
