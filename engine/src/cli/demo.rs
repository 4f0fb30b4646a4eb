//! `engine demo`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::parse_duration;
use super::run::spawn_signal_handler;
use crate::demo::DemoConfig;

/// `engine demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated instruments (real tickers first, then SIM0030, SIM0031, ...).
    #[arg(long, default_value_t = 24)]
    pub symbols: usize,
    /// Simulated ticks per second, over all instruments.
    #[arg(long, default_value_t = 40.0)]
    pub rate: f64,
    /// Directory of .sql files [default: the shipped queries/, found from the current directory
    /// or the binary's].
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,
    /// Cassandra schema applied to the embedded store [default: the shipped cql/].
    #[arg(long, value_name = "DIR")]
    pub schema: Option<PathBuf>,
    /// Port of the embedded CQL store on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub cql_port: u16,
    /// Stop by itself after this long (e.g. 20s); otherwise run until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// Runs the demo until Ctrl-C, SIGTERM or `--duration`.
pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let mut stdout = std::io::stdout();
    let config = DemoConfig {
        symbols: args.symbols,
        rate: args.rate,
        queries: args.queries,
        schema: args.schema,
        cql_port: args.cql_port,
        duration: args.duration,
        interactive: stdout.is_terminal(),
        program: std::env::current_exe()
            .map_or_else(|_| "engine".to_string(), |exe| exe.display().to_string()),
    };
    let failed = crate::demo::run(config, &mut stdout, shutdown).await?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
