//! `engine run`.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{RunArgs, load_and_plan, print_errors, process_env};

use crate::checkpoint::CheckpointStore;
use crate::connector::cassandra::schema::apply_schema;
use crate::planner::PipelineOptions;
use crate::runtime::QueryRunner;
use crate::telemetry::http::{Readiness, serve};

/// Runs every query that planned; broken files are reported and skipped.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.apply_schema {
        let applied = apply_schema(dir, &args.cassandra_hosts, Duration::from_secs(300)).await?;
        tracing::info!(statements = applied, dir = %dir.display(), "schema applied");
    }
    let (mut pipeline, errors) =
        load_and_plan(&args.queries, &process_env, &PipelineOptions::default()).await;
    print_errors(&errors);
    if pipeline.queries.is_empty() {
        anyhow::bail!("no query to run in {}", args.queries.display());
    }
    let shutdown = CancellationToken::new();
    let readiness = Readiness::default();
    let addr = serve(args.metrics_addr, readiness.clone(), shutdown.clone()).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    spawn_signal_handler(shutdown.clone());

    let mut tasks = tokio::task::JoinSet::new();
    for mut query in pipeline.queries.drain(..) {
        if let Some(interval) = args.trigger_interval {
            query.options.trigger_interval = interval;
        }
        let name = query.name.clone();
        let mut runner = QueryRunner::new(query, args.once).await?;
        if let Some(dir) = &args.state_dir {
            runner = runner.with_checkpoints(CheckpointStore::open(dir, &name)?).await?;
        }
        tracing::info!(query = %name, "query started");
        let token = shutdown.clone();
        tasks.spawn(async move { (name, runner.run(token).await) });
    }
    readiness.set(true);
    let mut failed = !errors.is_empty();
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined?;
        match result {
            Ok(stats) => tracing::info!(
                query = %name,
                rows_in = stats.rows_in,
                rows_out = stats.rows_out,
                late = stats.late,
                malformed = stats.malformed,
                elapsed = ?stats.elapsed,
                events_per_second = stats.events_per_second().round(),
                batch_p50 = ?stats.batch_quantile(0.5),
                batch_p99 = ?stats.batch_quantile(0.99),
                "query stopped"
            ),
            Err(err) => {
                tracing::error!(query = %name, error = %err, "query failed");
                failed = true;
            }
        }
    }
    shutdown.cancel();
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn spawn_signal_handler(shutdown: CancellationToken) {
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
