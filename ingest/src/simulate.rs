//! Simulated TwelveData price events: geometric Brownian motion per symbol.
//!
//! [`TickGenerator`] is deterministic for a given seed and start time: event `n` carries the timestamp
//! `start + n / rate` (UNIX seconds, as TwelveData sends them), picks its symbol at random, moves that
//! symbol's price by `exp((mu - sigma²/2)·dt + sigma·√dt·Z)` over the simulated time since its last tick,
//! and adds a random trade size to its day volume (reset at UTC midnight). Messages are written in
//! TwelveData's `price` format straight into a reusable buffer (no intermediate JSON values).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp1, StandardNormal};
use tokio_util::sync::CancellationToken;

use crate::producer::{ProducerError, TickProducer};

/// Seconds in a trading year (252 days × 6.5 h): the unit for `sigma` and `mu`.
const TRADING_YEAR_SECONDS: f64 = 252.0 * 6.5 * 3600.0;
const DAY_SECONDS: i64 = 86_400;

/// Invalid generator settings.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimulateError {
    /// No symbols asked for.
    #[error("--symbols must be at least 1")]
    NoSymbols,
    /// Rate not a positive finite number.
    #[error("--rate must be a positive number of events per second, got {0}")]
    Rate(f64),
    /// Start time before 1970 or unrepresentable.
    #[error("--start must be after 1970-01-01T00:00:00Z")]
    Start,
}

/// Settings of a [`TickGenerator`].
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Number of instruments; the first ones are real tickers, the rest `SIM0001`, `SIM0002`...
    pub symbols: usize,
    /// Events per second of simulated time (spaces the event timestamps).
    pub rate: f64,
    /// RNG seed: same seed, start and settings give the same events.
    pub seed: u64,
    /// Simulated time of the first event.
    pub start: SystemTime,
}

/// Static description of a real instrument to start from.
struct Seed {
    symbol: &'static str,
    /// Fields between `"symbol"` and `"timestamp"`, already JSON.
    meta: &'static str,
    price: f64,
    sigma: f64,
    avg_daily_volume: f64,
}

const STOCK: &str = r#""currency":"USD","type":"Common Stock""#;

macro_rules! stock {
    ($sym:literal, $exch:literal, $mic:literal, $price:literal, $sigma:literal, $adv:literal) => {
        Seed {
            symbol: $sym,
            meta: concat!(
                r#""currency":"USD","exchange":""#,
                $exch,
                r#"","mic_code":""#,
                $mic,
                r#"","type":"Common Stock""#
            ),
            price: $price,
            sigma: $sigma,
            avg_daily_volume: $adv,
        }
    };
}

/// Real tickers with plausible prices, annual volatilities and average daily volumes.
const CATALOG: &[Seed] = &[
    stock!("AAPL", "NASDAQ", "XNGS", 189.5, 0.25, 55e6),
    stock!("MSFT", "NASDAQ", "XNGS", 415.2, 0.24, 22e6),
    stock!("NVDA", "NASDAQ", "XNGS", 121.4, 0.50, 300e6),
    stock!("AMZN", "NASDAQ", "XNGS", 182.3, 0.32, 45e6),
    stock!("GOOGL", "NASDAQ", "XNGS", 171.9, 0.29, 25e6),
    stock!("META", "NASDAQ", "XNGS", 498.7, 0.38, 15e6),
    stock!("TSLA", "NASDAQ", "XNGS", 177.6, 0.60, 95e6),
    Seed {
        symbol: "BTC/USD",
        meta: r#""currency_base":"Bitcoin","currency_quote":"US Dollar","exchange":"Coinbase Pro","type":"Digital Currency""#,
        price: 64250.0,
        sigma: 0.65,
        avg_daily_volume: 25e3,
    },
    Seed {
        symbol: "ETH/USD",
        meta: r#""currency_base":"Ethereum","currency_quote":"US Dollar","exchange":"Coinbase Pro","type":"Digital Currency""#,
        price: 3150.0,
        sigma: 0.75,
        avg_daily_volume: 350e3,
    },
    stock!("JPM", "NYSE", "XNYS", 198.4, 0.22, 9e6),
    stock!("V", "NYSE", "XNYS", 274.1, 0.20, 7e6),
    stock!("JNJ", "NYSE", "XNYS", 147.8, 0.16, 7e6),
    stock!("WMT", "NYSE", "XNYS", 60.3, 0.18, 18e6),
    stock!("XOM", "NYSE", "XNYS", 113.9, 0.26, 16e6),
    stock!("KO", "NYSE", "XNYS", 62.7, 0.15, 13e6),
    stock!("DIS", "NYSE", "XNYS", 104.2, 0.30, 10e6),
    stock!("BA", "NYSE", "XNYS", 181.5, 0.35, 8e6),
    stock!("NFLX", "NASDAQ", "XNGS", 621.1, 0.40, 4e6),
    stock!("AMD", "NASDAQ", "XNGS", 158.3, 0.52, 55e6),
    stock!("INTC", "NASDAQ", "XNGS", 30.9, 0.38, 40e6),
    stock!("CSCO", "NASDAQ", "XNGS", 47.2, 0.20, 18e6),
    stock!("PEP", "NASDAQ", "XNGS", 171.4, 0.15, 5e6),
    stock!("COST", "NASDAQ", "XNGS", 812.6, 0.21, 2e6),
    stock!("ORCL", "NYSE", "XNYS", 123.5, 0.30, 9e6),
    stock!("CRM", "NYSE", "XNYS", 287.3, 0.34, 6e6),
    stock!("IBM", "NYSE", "XNYS", 168.9, 0.22, 4e6),
    stock!("GS", "NYSE", "XNYS", 455.2, 0.27, 2.5e6),
    stock!("CAT", "NYSE", "XNYS", 338.4, 0.28, 3e6),
    stock!("PFE", "NYSE", "XNYS", 28.6, 0.22, 35e6),
    stock!("QQQ", "NASDAQ", "XNMS", 445.8, 0.20, 40e6),
];

/// One instrument's state.
struct Instrument {
    symbol: String,
    /// `{"event":"price","symbol":"...",<meta>,"timestamp":`
    prefix: Vec<u8>,
    price: f64,
    sigma: f64,
    mu: f64,
    /// Mean shares per tick, so the day volume reaches the average daily volume at the chosen rate.
    mean_trade: f64,
    avg_daily_volume: f64,
    day_volume: u64,
    day: i64,
    last_time: f64,
}

/// One generated event, borrowed from the generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick<'a> {
    /// Instrument ticker.
    pub symbol: &'a str,
    /// UNIX seconds.
    pub timestamp: i64,
    /// Price, rounded to 4 decimals as TwelveData sends it.
    pub price: f64,
    /// Shares traded so far this (UTC) day.
    pub day_volume: u64,
}

/// Deterministic generator of TwelveData-shaped price events.
pub struct TickGenerator {
    instruments: Vec<Instrument>,
    rng: ChaCha8Rng,
    start: f64,
    rate: f64,
    generated: u64,
}

impl TickGenerator {
    /// A generator for `config`.
    pub fn new(config: &GeneratorConfig) -> Result<Self, SimulateError> {
        if config.symbols == 0 {
            return Err(SimulateError::NoSymbols);
        }
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(SimulateError::Rate(config.rate));
        }
        let start = config
            .start
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SimulateError::Start)?
            .as_secs_f64();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let ticks_per_symbol_day = config.rate / config.symbols as f64 * DAY_SECONDS as f64;
        let day = (start as i64).div_euclid(DAY_SECONDS);
        let day_fraction = (start as i64).rem_euclid(DAY_SECONDS) as f64 / DAY_SECONDS as f64;
        let instruments = (0..config.symbols)
            .map(|i| {
                let (symbol, meta, price, sigma, adv) = match CATALOG.get(i) {
                    Some(s) => (
                        s.symbol.to_owned(),
                        s.meta.to_owned(),
                        s.price,
                        s.sigma,
                        s.avg_daily_volume,
                    ),
                    None => {
                        let price = (rng.random_range(10.0f64.ln()..500.0f64.ln())).exp();
                        let sigma = rng.random_range(0.15..0.6);
                        let adv = (rng.random_range(1e5f64.ln()..5e7f64.ln())).exp();
                        let meta = format!(r#"{STOCK},"exchange":"NYSE","mic_code":"XNYS""#);
                        (format!("SIM{i:04}"), meta, price, sigma, adv)
                    }
                };
                let mut prefix = Vec::with_capacity(64 + meta.len());
                prefix.extend_from_slice(br#"{"event":"price","symbol":""#);
                prefix.extend_from_slice(symbol.as_bytes());
                prefix.extend_from_slice(b"\",");
                prefix.extend_from_slice(meta.as_bytes());
                prefix.extend_from_slice(br#","timestamp":"#);
                Instrument {
                    symbol,
                    prefix,
                    price,
                    sigma,
                    mu: 0.05,
                    mean_trade: adv / ticks_per_symbol_day,
                    avg_daily_volume: adv,
                    day_volume: (adv * day_fraction) as u64,
                    day,
                    last_time: start,
                }
            })
            .collect();
        Ok(Self { instruments, rng, start, rate: config.rate, generated: 0 })
    }

    /// The tickers, in generation order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.instruments.iter().map(|i| i.symbol.as_str())
    }

    /// Events generated so far.
    pub fn generated(&self) -> u64 {
        self.generated
    }

    /// Advances by one event and returns it.
    pub fn next_tick(&mut self) -> Tick<'_> {
        let index = self.step();
        let inst = &self.instruments[index];
        Tick {
            symbol: &inst.symbol,
            timestamp: inst.last_time as i64,
            price: round4(inst.price),
            day_volume: inst.day_volume,
        }
    }

    /// Advances by one event, appends its JSON object (no newline) to `buf`, returns its symbol.
    pub fn next_json(&mut self, buf: &mut Vec<u8>) -> &str {
        let index = self.step();
        let inst = &self.instruments[index];
        let mut ints = itoa::Buffer::new();
        let mut floats = ryu::Buffer::new();
        buf.extend_from_slice(&inst.prefix);
        buf.extend_from_slice(ints.format(inst.last_time as i64).as_bytes());
        buf.extend_from_slice(br#","price":"#);
        buf.extend_from_slice(floats.format_finite(round4(inst.price)).as_bytes());
        buf.extend_from_slice(br#","day_volume":"#);
        buf.extend_from_slice(ints.format(inst.day_volume).as_bytes());
        buf.push(b'}');
        &inst.symbol
    }

    /// Moves the simulated clock and one instrument; returns the instrument's index.
    fn step(&mut self) -> usize {
        let now = self.start + self.generated as f64 / self.rate;
        self.generated += 1;
        let index = self.rng.random_range(0..self.instruments.len());
        let z: f64 = self.rng.sample(StandardNormal);
        let size: f64 = self.rng.sample(Exp1);
        let inst = &mut self.instruments[index];
        let dt = (now - inst.last_time).max(0.0) / TRADING_YEAR_SECONDS;
        let drift = (inst.mu - 0.5 * inst.sigma * inst.sigma) * dt;
        inst.price *= (drift + inst.sigma * dt.sqrt() * z).exp();
        inst.last_time = now;
        let day = (now as i64).div_euclid(DAY_SECONDS);
        if day != inst.day {
            inst.day = day;
            inst.day_volume = 0;
        }
        let trade = (inst.mean_trade * size).round().max(1.0) as u64;
        inst.day_volume = (inst.day_volume + trade).min((inst.avg_daily_volume * 4.0) as u64);
        index
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// How fast events are emitted in wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Emit event `n` at `n / rate` seconds after the start (catching up after stalls).
    Realtime(f64),
    /// As fast as the output accepts them.
    Unthrottled,
}

impl Pacing {
    /// Wall-clock offset at which event `n` is due, if paced.
    fn due(self, n: u64) -> Option<Duration> {
        match self {
            Self::Realtime(rate) => Some(Duration::from_secs_f64(n as f64 / rate)),
            Self::Unthrottled => None,
        }
    }

    /// Events between two clock (and stop flag) checks: about one millisecond's worth.
    fn check_every(self) -> u64 {
        match self {
            Self::Realtime(rate) => ((rate / 1000.0) as u64).max(1),
            Self::Unthrottled => 1024,
        }
    }
}

/// Writes `count` events (all if `None`) as JSON lines, paced, until `stop` is set; returns the
/// number written. A closed pipe (`| head`) ends the run normally.
pub fn write_lines<W: Write>(
    generator: &mut TickGenerator,
    out: W,
    count: Option<u64>,
    pacing: Pacing,
    stop: &AtomicBool,
) -> io::Result<u64> {
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    let mut line = Vec::with_capacity(256);
    let check_every = pacing.check_every();
    let started = Instant::now();
    let mut written = 0u64;
    let result = (|| {
        while count.is_none_or(|c| written < c) {
            if written.is_multiple_of(check_every) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(due) = pacing.due(written) {
                    let elapsed = started.elapsed();
                    if due > elapsed {
                        out.flush()?;
                        std::thread::sleep(due - elapsed);
                    }
                }
            }
            line.clear();
            generator.next_json(&mut line);
            line.push(b'\n');
            out.write_all(&line)?;
            written += 1;
        }
        out.flush()
    })();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(written),
        Err(e) => Err(e),
        Ok(()) => Ok(written),
    }
}

/// Produces `count` events (all if `None`) to Kafka, paced, until `shutdown`; returns the number
/// enqueued. The caller flushes the producer.
pub async fn produce(
    generator: &mut TickGenerator,
    producer: &TickProducer,
    count: Option<u64>,
    pacing: Pacing,
    shutdown: &CancellationToken,
) -> Result<u64, ProducerError> {
    let mut value = Vec::with_capacity(256);
    let check_every = pacing.check_every();
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    while count.is_none_or(|c| sent < c) {
        if sent.is_multiple_of(check_every) {
            if shutdown.is_cancelled() {
                break;
            }
            if let Some(due) = pacing.due(sent) {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(started + due) => {}
                }
            }
        }
        value.clear();
        let symbol = generator.next_json(&mut value);
        producer.send(symbol, &value).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Number of events for a run of `duration` at `rate` events/s.
pub fn events_for(duration: Duration, rate: f64) -> u64 {
    (duration.as_secs_f64() * rate).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> GeneratorConfig {
        GeneratorConfig {
            symbols: 40,
            rate: 1000.0,
            seed,
            start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn lines(seed: u64, n: u64) -> Vec<u8> {
        let mut g = TickGenerator::new(&config(seed)).unwrap();
        let mut out = Vec::new();
        write_lines(&mut g, &mut out, Some(n), Pacing::Unthrottled, &AtomicBool::new(false))
            .unwrap();
        out
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let a = lines(7, 5000);
        assert_eq!(a, lines(7, 5000));
        assert_ne!(a, lines(8, 5000));
    }

    #[test]
    fn events_are_twelvedata_price_messages() {
        let out = lines(1, 3000);
        let mut seen = std::collections::BTreeSet::new();
        let mut last_ts = 0;
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["event"], "price");
            let symbol = v["symbol"].as_str().unwrap();
            seen.insert(symbol.to_owned());
            let ts = v["timestamp"].as_i64().unwrap();
            assert!(ts >= last_ts, "timestamps go back: {ts} < {last_ts}");
            last_ts = ts;
            let price = v["price"].as_f64().unwrap();
            assert!(price > 0.0 && price.is_finite());
            assert!(v["day_volume"].as_u64().is_some());
            assert!(v["type"].is_string());
            let text = std::str::from_utf8(line).unwrap();
            assert!(matches!(
                crate::twelvedata::protocol::parse_server_message(text).unwrap(),
                crate::twelvedata::protocol::ServerEvent::Price(p) if p.symbol == symbol
            ));
        }
        assert_eq!(seen.len(), 40);
        assert!(seen.contains("AAPL") && seen.contains("BTC/USD") && seen.contains("SIM0039"));
        // 3000 events at 1000/s from 1_700_000_000: three seconds of event time.
        assert_eq!(last_ts, 1_700_000_002);
    }

    #[test]
    fn prices_follow_a_plausible_random_walk() {
        let mut g =
            TickGenerator::new(&GeneratorConfig { symbols: 1, rate: 10.0, ..config(3) }).unwrap();
        let first = g.next_tick().price;
        let mut max_move: f64 = 0.0;
        let mut prev = first;
        let mut last = first;
        // One simulated day at 10 ticks/s for AAPL.
        for _ in 0..864_000 {
            let t = g.next_tick();
            max_move = max_move.max((t.price / prev).ln().abs());
            prev = t.price;
            last = t.price;
        }
        assert!(max_move < 0.01, "a 0.1 s step moved {max_move}");
        let day_return = (last / first).ln().abs();
        assert!(day_return < 0.25, "one day moved {day_return}");
        assert_ne!(first, last);
    }

    #[test]
    fn day_volume_grows_and_resets_at_midnight() {
        let mut g = TickGenerator::new(&GeneratorConfig {
            symbols: 1,
            rate: 1.0,
            start: UNIX_EPOCH + Duration::from_secs(19_999 * 86_400 + 86_390),
            ..config(5)
        })
        .unwrap();
        let mut prev = g.next_tick().day_volume;
        assert!(prev > 50_000_000, "late in the day volume is near the daily average: {prev}");
        for _ in 0..8 {
            let v = g.next_tick().day_volume;
            assert!(v > prev);
            prev = v;
        }
        let mut after_midnight = g.next_tick();
        while after_midnight.timestamp < 20_000 * 86_400 {
            after_midnight = g.next_tick();
        }
        assert!(after_midnight.day_volume < 10_000, "{after_midnight:?}");
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert_eq!(
            TickGenerator::new(&GeneratorConfig { symbols: 0, ..config(1) }).err(),
            Some(SimulateError::NoSymbols)
        );
        assert_eq!(
            TickGenerator::new(&GeneratorConfig { rate: 0.0, ..config(1) }).err(),
            Some(SimulateError::Rate(0.0))
        );
    }

    #[test]
    fn events_for_duration() {
        assert_eq!(events_for(Duration::from_secs(10), 1500.0), 15_000);
        assert_eq!(events_for(Duration::from_millis(500), 3.0), 2);
    }
}
