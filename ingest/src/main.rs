//! `ingest`: TwelveData WebSocket feed into Kafka, a market-data simulator, and a capture replayer.

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ingest::config::{ApiKey, IngestConfig};
use ingest::logging::{self, LogFormat};
use ingest::metrics::Health;
use ingest::producer::TickProducer;
use ingest::redact::Redactor;
use ingest::replay::{self, Speed};
use ingest::run::FLUSH_TIMEOUT;
use ingest::simulate::{self, GeneratorConfig, Pacing, TickGenerator};
use ingest::sink::{KafkaSink, LineSink};
use tokio_util::sync::CancellationToken;

const ENV_HELP: &str = "\
Environment:
  TWELVEDATA_API_KEY  TwelveData API key (required by `run`; sent in the X-TD-APIKEY header, never read from
                      the config file; replaced by [REDACTED] in every log line, error and panic message)
  TWELVEDATA_URL      WebSocket endpoint, overrides twelvedata.url  (default wss://ws.twelvedata.com/v1/quotes/price)
  KAFKA_BROKERS       bootstrap servers, overrides kafka.brokers   (default 127.0.0.1:9092)
  SYMBOLS             comma-separated symbols, overrides twelvedata.symbols (e.g. AAPL,EUR/USD,RY:TSX)
  TOPIC               overrides kafka.topic                         (default market.ticks)
  TOPIC_PARTITIONS    overrides kafka.partitions: create the topic with this many partitions
                      if it does not exist (default: never create it)
  RUST_LOG            log filter (default info); logs go to stderr
  NO_COLOR            set (non-empty): no colour in the logs; without it, colour only when stderr is a terminal

Config file (--config ingest.toml; unknown keys are errors; durations like \"10s\", \"500ms\"):
  [kafka]        brokers, topic, partitions, replication (1), compression = none|gzip|snappy|lz4, delivery_timeout,
                 [kafka.properties] extra librdkafka settings
  [twelvedata]   url, symbols = [..], heartbeat_interval (10s), idle_timeout (30s), connect_timeout (10s)
  [twelvedata.backoff]  initial (500ms), max (60s), multiplier (2), jitter (0.5), reset_after (30s)
  [metrics]      listen (0.0.0.0:9102): /metrics, /healthz, /readyz

See docs/ingest.md for the details.";

/// TwelveData WebSocket feed into Kafka, plus a simulator and a replayer.
#[derive(Parser)]
#[command(name = "ingest", version, after_help = ENV_HELP)]
struct Cli {
    /// TOML config file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run` (the default subcommand).
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Stream TwelveData price events into Kafka (the default).
    Run(RunArgs),
    /// Generate realistic price events (geometric Brownian motion) with no API key.
    Simulate(SimulateArgs),
    /// Send a recorded JSON-lines capture again, at the original or a faster pace.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Also append every price event to this JSON-lines capture (for `ingest replay`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// JSON lines on stdout.
    Stdout,
    /// The configured Kafka topic (key = symbol).
    Kafka,
}

#[derive(Args)]
struct SimulateArgs {
    /// Number of instruments (real tickers first, then SIM0030, SIM0031...).
    #[arg(long, default_value_t = 10)]
    symbols: usize,
    /// Events per second (also spaces the event timestamps).
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 1000.0)]
    rate: f64,
    /// Stop after this much time (rate × duration events), e.g. 10s, 5m.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// RNG seed; with --start, the output is identical on every run.
    #[arg(long)]
    seed: Option<u64>,
    /// Event time of the first event: RFC 3339 (2024-05-01T13:30:00Z) or UNIX seconds. Default: now.
    #[arg(long, value_parser = parse_start)]
    start: Option<SystemTime>,
    /// Where events go.
    #[arg(long, value_enum, default_value_t = Output::Stdout)]
    output: Output,
    /// Do not pace in wall-clock time: emit as fast as possible (timestamps still follow --rate).
    #[arg(long)]
    unthrottled: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// JSON-lines capture written by `ingest run --record`.
    file: PathBuf,
    /// Pace: 1 = original spacing, 10 = ten times faster, max = no waiting.
    #[arg(long, default_value = "1")]
    speed: Speed,
    /// Where events go.
    #[arg(long, value_enum, default_value_t = Output::Kafka)]
    output: Output,
}

fn parse_start(s: &str) -> Result<SystemTime, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("{e}: use RFC 3339 (2024-05-01T13:30:00Z) or UNIX seconds (1714570200)")
    })
}

/// Cancels the token on SIGINT or SIGTERM.
fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        token.cancel();
    });
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Read before anything is logged: the key is redacted from every line, whatever the command.
    let redactor = Redactor::new(ApiKey::from_env().ok().as_ref().map(ApiKey::expose));
    logging::install_panic_hook(redactor.clone());
    logging::init(cli.log_format, redactor.clone());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            logging::report_error(&redactor, &anyhow::Error::new(error).context("tokio runtime"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            logging::report_error(&redactor, &error);
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let config = IngestConfig::load(cli.config.as_deref())?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    if cli.command.is_some() && cli.run.record.is_some() {
        bail!("--record belongs to `run`: write `ingest run --record FILE`");
    }
    match cli.command {
        None => run(&config, cli.run, &shutdown).await,
        Some(Command::Run(args)) => run(&config, args, &shutdown).await,
        Some(Command::Simulate(args)) => simulate(&config, args, &shutdown).await,
        Some(Command::Replay(args)) => replay(&config, args, &shutdown).await,
    }
}

async fn run(
    config: &IngestConfig,
    args: RunArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    config.require_symbols()?;
    let api_key = ApiKey::from_env()?;
    let health = Arc::new(Health::default());
    ingest::metrics::serve(config.metrics.listen, Arc::clone(&health), shutdown.clone()).await?;
    let summary =
        ingest::run::run(config, api_key, args.record.as_deref(), health, shutdown).await?;
    tracing::info!(
        prices = summary.client.prices,
        delivered = summary.delivered,
        delivery_errors = summary.delivery_errors,
        reconnects = summary.client.reconnects,
        malformed = summary.client.malformed,
        refused = %summary.refused.join(","),
        "stopped"
    );
    Ok(())
}

async fn simulate(
    config: &IngestConfig,
    args: SimulateArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut generator = TickGenerator::new(&GeneratorConfig {
        symbols: args.symbols,
        rate: args.rate,
        seed,
        start: args.start.unwrap_or_else(SystemTime::now),
    })?;
    let count = args.count.or_else(|| args.duration.map(|d| simulate::events_for(d, args.rate)));
    let pacing = if args.unthrottled { Pacing::Unthrottled } else { Pacing::Realtime(args.rate) };
    tracing::info!(
        symbols = args.symbols,
        rate = args.rate,
        seed,
        count = ?count,
        "simulating"
    );
    let started = Instant::now();
    let events = match args.output {
        Output::Stdout => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let token = shutdown.clone();
            tokio::spawn(async move {
                token.cancelled().await;
                flag.store(true, Ordering::Relaxed);
            });
            // Unbuffered handle on fd 1: std's stdout is line-buffered, far too slow here.
            let out = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
            tokio::task::spawn_blocking(move || {
                simulate::write_lines(&mut generator, out, count, pacing, &stop)
            })
            .await
            .context("simulator thread")?
            .context("writing to stdout")?
        }
        Output::Kafka => {
            let producer = Arc::new(TickProducer::connect(&config.kafka).await?);
            let sent = simulate::produce(&mut generator, &producer, count, pacing, shutdown).await;
            producer.flush_async(FLUSH_TIMEOUT).await?;
            let sent = sent?;
            let failed = producer.stats().failed();
            if failed > 0 {
                bail!("{failed} of {sent} messages failed delivery to {}", producer.topic());
            }
            tracing::info!(delivered = producer.stats().delivered(), "producer flushed");
            sent
        }
    };
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        events,
        seconds = format!("{secs:.3}"),
        events_per_second = format!("{:.0}", events as f64 / secs),
        "simulation finished"
    );
    Ok(())
}

async fn replay(
    config: &IngestConfig,
    args: ReplayArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let stats = match args.output {
        Output::Stdout => {
            let out = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
            let mut sink = LineSink::new(io::BufWriter::new(out));
            let stats = replay::replay(&args.file, args.speed, &mut sink, shutdown).await?;
            sink.flush().context("writing to stdout")?;
            stats
        }
        Output::Kafka => {
            let producer = Arc::new(TickProducer::connect(&config.kafka).await?);
            let mut sink = KafkaSink(Arc::clone(&producer));
            let stats = replay::replay(&args.file, args.speed, &mut sink, shutdown).await;
            producer.flush_async(FLUSH_TIMEOUT).await?;
            let failed = producer.stats().failed();
            if failed > 0 {
                bail!("{failed} messages failed delivery to {}", producer.topic());
            }
            stats?
        }
    };
    tracing::info!(events = stats.events, skipped = stats.skipped, "replay finished");
    Ok(())
}
