//! `engine run`.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{RunArgs, print_errors, process_env};
use crate::catalog::SchemaSource;
use crate::connector::cassandra::schema::apply_schema;
use crate::planner::PipelineOptions;
use crate::runtime::supervisor::{Supervisor, SupervisorConfig, log_stopped};
use crate::telemetry::http::{Readiness, serve};

/// How often the query directory is checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Runs every query that planned (broken files are reported and skipped) and, unless `--once`,
/// applies changes to the query directory while running.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Signals first, so that Ctrl-C at any point stops cleanly; then the endpoints, so that
    // /healthz answers while the schema waits for Cassandra (/readyz does not).
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let readiness = Readiness::default();
    let addr = serve(args.metrics_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    if let Some(dir) = &args.apply_schema {
        let applied = apply_schema(dir, &args.cassandra_hosts, Duration::from_secs(300)).await?;
        tracing::info!(statements = applied, dir = %dir.display(), "schema applied");
    }
    let mut supervisor = Supervisor::new(SupervisorConfig {
        dir: args.queries.clone(),
        options: PipelineOptions {
            redirect: args.redirect.redirect(),
            ..PipelineOptions::default()
        },
        trigger_interval: args.trigger_interval,
        once: args.once,
        state_dir: args.state_dir.clone(),
        schema: SchemaSource::live(args.schema.clone().or_else(|| args.apply_schema.clone())),
        readiness: readiness.clone(),
    });
    let errors = supervisor.reconcile(&process_env).await?;
    print_errors(&errors);
    if supervisor.running().is_empty() {
        anyhow::bail!("no query to run in {}", args.queries.display());
    }
    readiness.set(true);

    let mut failed = !errors.is_empty();
    let tick = if args.once { Duration::from_millis(50) } else { RELOAD_CHECK };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
        }
        for stopped in supervisor.collect_finished().await {
            failed |= log_stopped(&stopped);
        }
        // Every query stopped: read to the end (`--once`), or stopped on errors retrying cannot
        // fix (a following query stops on nothing else): the exit code says which.
        if supervisor.running().is_empty() && (args.once || failed) {
            break;
        }
        if !args.once && supervisor.changed() {
            tracing::info!(dir = %args.queries.display(), "query files changed; reloading");
            match supervisor.reconcile(&process_env).await {
                Ok(errors) => print_errors(&errors),
                Err(err) => {
                    tracing::error!(error = %err, "reload failed; the running queries go on")
                }
            }
        }
    }
    for stopped in supervisor.stop_all().await {
        failed |= log_stopped(&stopped);
    }
    shutdown.cancel();
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
pub(super) fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            () = terminate => {}
        }
        tracing::info!("stopping: finishing the current micro-batch");
        shutdown.cancel();
    });
}
