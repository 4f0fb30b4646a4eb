//! The command line: `run`, `check`, `explain` and `demo`. The only module that prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod check;
#[cfg(feature = "demo")]
mod demo;
mod explain;
mod repl;
mod run;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::EngineError;
use crate::planner::Redirect;
use crate::sql::process_env;

/// Streaming SQL over market data: windowed queries in `.sql` files, run continuously.
#[derive(Debug, Parser)]
#[command(name = "engine", version, about)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every query of a directory continuously (or once over bounded input with --once).
    Run(RunArgs),
    /// Validate every query file: parse, plan, types, streamability. Non-zero exit on errors.
    Check {
        /// Directory of .sql files (or one file).
        dir: PathBuf,
        /// Check Cassandra sinks against the tables these `.cql` files create (the files the
        /// deployment applies), without a server. Without it, the server is asked if it answers.
        #[arg(long, value_name = "DIR")]
        schema: Option<PathBuf>,
    },
    /// Show how the queries of a file run (other files of its directory supply declarations).
    Explain {
        /// The .sql file.
        file: PathBuf,
        /// Take Cassandra sinks' columns from these `.cql` files, without a server.
        #[arg(long, value_name = "DIR")]
        schema: Option<PathBuf>,
    },
    /// A SQL prompt over the tables and views of the query files (-e or piped input: run and exit).
    Repl(repl::ReplArgs),
    /// Run the whole pipeline in one process: an embedded Kafka broker and CQL store,
    /// simulated ticks and the shipped queries, with the live candles on the terminal.
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
}

/// `engine run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Directory of .sql files, loaded in name order.
    #[arg(long, default_value = "queries")]
    pub queries: PathBuf,
    /// Time between micro-batches (overrides SET 'trigger-interval').
    #[arg(long, value_parser = parse_duration)]
    pub trigger_interval: Option<Duration>,
    /// Process all available input, close every window, and exit (backtests).
    #[arg(long)]
    pub once: bool,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
    /// Checkpoint source positions and window state here after every micro-batch, and resume
    /// from it on start (one subdirectory per query). Without it, a restart starts over.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Apply the `.cql` files of this directory (name order, idempotent statements) to
    /// Cassandra before starting the queries; the live tables must then match them.
    #[arg(long, value_name = "DIR")]
    pub apply_schema: Option<PathBuf>,
    /// Refuse to start when a Cassandra table the queries write differs from the one these
    /// `.cql` files create (default: the --apply-schema directory).
    #[arg(long, value_name = "DIR")]
    pub schema: Option<PathBuf>,
    /// Tables redirected to files (backtests).
    #[command(flatten)]
    pub redirect: RedirectArgs,
    /// Cassandra contact points for --apply-schema.
    #[arg(long, env = "CASSANDRA_HOSTS", default_value = "localhost:9042", value_delimiter = ',')]
    pub cassandra_hosts: Vec<String>,
}

/// `--replay` and `--sink-dir`: the same query files with tables redirected to files.
#[derive(Debug, Clone, clap::Args)]
pub struct RedirectArgs {
    /// Read source TABLE from the JSON-lines files at PATH (a file, or a directory with one file
    /// per partition) instead of its connector. Repeatable.
    #[arg(long, value_name = "TABLE=PATH", value_parser = parse_replay)]
    pub replay: Vec<(String, PathBuf)>,
    /// Treat every sink table as JSON lines under DIR/<table> instead of its connector.
    #[arg(long, value_name = "DIR")]
    pub sink_dir: Option<PathBuf>,
}

impl RedirectArgs {
    /// The planner's view of the flags.
    pub fn redirect(&self) -> Redirect {
        Redirect { sources: self.replay.clone(), sinks: self.sink_dir.clone() }
    }
}

fn parse_replay(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((table, path)) if !table.trim().is_empty() && !path.is_empty() => {
            Ok((table.trim().to_ascii_lowercase(), PathBuf::from(path)))
        }
        _ => Err(format!("expected TABLE=PATH, e.g. ticks=data/ticks, found '{text}'")),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::options::parse_duration(text)
}

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_tracing(cli.log_format, cli.command.default_log_filter());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Check { dir, schema } => Ok(check::check(&dir, schema).await),
            Command::Explain { file, schema } => explain::explain(&file, schema).await,
            Command::Repl(args) => repl::repl(args).await,
            #[cfg(feature = "demo")]
            Command::Demo(args) => demo::demo(args).await,
        }
    })
}

impl Command {
    /// The log filter when RUST_LOG is not set.
    fn default_log_filter(&self) -> &'static str {
        match self {
            // The demo's live view owns the terminal. The embedded CQL store logs every query it
            // refuses, and the driver complains about the system tables it lacks, every second.
            #[cfg(feature = "demo")]
            Self::Demo(_) => "warn,kassandra=off,scylla::cluster::metadata=off",
            // Interactive commands show the user's results and the engine's own messages;
            // dependencies (the CQL driver's connection chatter) only when something is wrong.
            // The driver warns on every connection to a server with partial system tables (the
            // demo's CQL store); a server that is really unusable fails the statement itself.
            Self::Repl(_) => "warn,engine=info,scylla::cluster::metadata=error",
            // A server that does not answer is reported once, in `check`'s own note.
            Self::Check { .. } | Self::Explain { .. } => "warn,engine=info,scylla=off",
            Self::Run(_) => "info",
        }
    }
}

fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ignored = match format {
        LogFormat::Text => builder.with_ansi(colour_on_stderr()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Colour only for a terminal, and never with `NO_COLOR` set to anything (no-color.org): logs
/// sent to a file or a pipe stay free of escape sequences.
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn print_errors(errors: &[EngineError]) {
    for err in errors {
        eprintln!("{err}");
    }
}
