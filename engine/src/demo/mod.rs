//! `engine demo`: the whole pipeline in one process, on embedded defaults.
//!
//! ```text
//!  feed (ingest simulate) ─▶ broker (librdkafka mock cluster, market.ticks, 3 partitions)
//!        ─▶ Supervisor (queries/*.sql, Kafka source) ─▶ Cassandra sink ─▶ store (kassandra
//!        over CQL on 127.0.0.1, schema from cql/) ─▶ view (latest candle per symbol, via CQL)
//! ```
//!
//! The queries run exactly as in production: the Kafka source and the Cassandra sink talk to
//! the embedded servers over their wire protocols. `${VAR}`s come from the demo (the servers'
//! addresses and names), never from the process environment, and checkpoints go to a temporary
//! directory removed on exit.

mod broker;
mod feed;
mod store;
mod view;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use self::broker::EmbeddedBroker;
use self::feed::Feed;
use self::store::EmbeddedStore;
use self::view::{CandleReader, Screen, render};
use crate::catalog::SchemaSource;
use crate::connector::cassandra::schema::apply_schema;
use crate::error::{EngineError, Result};
use crate::planner::PipelineOptions;
use crate::runtime::supervisor::{Supervisor, SupervisorConfig, log_stopped};

/// The topic the feed produces to (the shipped queries' default `${TICKS_TOPIC}`).
pub const TOPIC: &str = "market.ticks";
/// Partitions of the topic.
pub const PARTITIONS: i32 = 3;
/// Where the Kafka source copies malformed messages (`${TICKS_DEAD_LETTER_TOPIC}`).
const DEAD_LETTER_TOPIC: &str = "market.ticks.dead-letter";
/// The keyspace `cql/` creates (the shipped queries' default `${CASSANDRA_KEYSPACE}`).
pub const KEYSPACE: &str = "market";
/// The table the view reads.
const CANDLES: &str = "candles_1m";
/// How often the view is refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// How long applying the schema may wait for the store.
const SCHEMA_PATIENCE: Duration = Duration::from_secs(30);

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Simulated instruments.
    pub symbols: usize,
    /// Simulated events per second, over all instruments.
    pub rate: f64,
    /// The query directory; `None` finds the shipped `queries/`.
    pub queries: Option<PathBuf>,
    /// The Cassandra schema directory; `None` finds the shipped `cql/`.
    pub schema: Option<PathBuf>,
    /// Port of the CQL store on 127.0.0.1 (0: any free port).
    pub cql_port: u16,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Redraw the view in place (the output is a terminal).
    pub interactive: bool,
    /// How the user runs this binary, for the REPL command shown.
    pub program: String,
}

/// Runs the demo until `shutdown` is cancelled or the configured duration passes, writing the
/// live view to `out`. Returns whether a query file was refused or a query failed.
pub async fn run(
    config: DemoConfig,
    out: &mut dyn Write,
    shutdown: CancellationToken,
) -> Result<bool> {
    let started = tokio::time::Instant::now();
    let mut demo = Demo::start(&config).await?;
    let watched = demo.watch(&config, out, &shutdown, started).await;
    let (failed, produced) = demo.stop().await?;
    watched?;
    write_out(out, &format!("demo stopped after {produced} ticks; its data is gone\n"))?;
    Ok(failed)
}

/// Everything the demo started, in start order.
struct Demo {
    workdir: tempfile::TempDir,
    broker: EmbeddedBroker,
    store: EmbeddedStore,
    feed: Feed,
    supervisor: Supervisor,
    reader: CandleReader,
    queries: PathBuf,
    schema: PathBuf,
    failed: bool,
}

impl Demo {
    /// Starts the servers, applies the schema, starts the feed and the queries.
    async fn start(config: &DemoConfig) -> Result<Self> {
        let queries = locate(config.queries.as_deref(), "queries", "--queries")?;
        let schema = locate(config.schema.as_deref(), "cql", "--schema")?;
        let workdir = tempfile::Builder::new()
            .prefix("engine-demo-")
            .tempdir()
            .map_err(|e| EngineError::io("cannot create the demo's temporary directory", e))?;
        let broker = EmbeddedBroker::start(&[(TOPIC, PARTITIONS), (DEAD_LETTER_TOPIC, 1)])?;
        let brokers = broker.bootstrap_servers();
        let store = EmbeddedStore::start(config.cql_port).await?;
        let cql = store.addr().to_string();
        apply_schema(&schema, std::slice::from_ref(&cql), SCHEMA_PATIENCE).await?;
        let feed = Feed::start(&brokers, TOPIC, config.symbols, config.rate)?;
        let vars = HashMap::from([
            ("KAFKA_BROKERS", brokers),
            ("TICKS_TOPIC", TOPIC.to_string()),
            ("TICKS_DEAD_LETTER_TOPIC", DEAD_LETTER_TOPIC.to_string()),
            ("CASSANDRA_HOSTS", cql.clone()),
            ("CASSANDRA_KEYSPACE", KEYSPACE.to_string()),
        ]);
        let mut supervisor = Supervisor::new(SupervisorConfig {
            dir: queries.clone(),
            options: PipelineOptions::default(),
            trigger_interval: None,
            once: false,
            state_dir: Some(workdir.path().join("state")),
            schema: SchemaSource::live(Some(schema.clone())),
            readiness: Default::default(),
        });
        let errors = supervisor.reconcile(&|name| vars.get(name).cloned()).await?;
        for err in &errors {
            tracing::error!("{err}");
        }
        if supervisor.running().is_empty() {
            return Err(EngineError::Config(format!("no query to run in {}", queries.display())));
        }
        let reader = CandleReader::connect(&cql, KEYSPACE, CANDLES).await?;
        let failed = !errors.is_empty();
        Ok(Self { workdir, broker, store, feed, supervisor, reader, queries, schema, failed })
    }

    /// What runs where, and how to query it from another terminal.
    fn header(&self, config: &DemoConfig) -> String {
        let brokers = self.broker.bootstrap_servers();
        let cql = self.store.addr();
        format!(
            "engine demo: {symbols} simulated symbols at {rate} ticks/s -> Kafka -> {queries} -> Cassandra\n\
             \x20 Kafka broker (librdkafka mock)  {brokers}  topic {TOPIC}, {PARTITIONS} partitions\n\
             \x20 CQL store (kassandra)           {cql}  keyspace {KEYSPACE}, schema from {schema}\n\
             \x20 queries running                 {running}\n\
             Query the same data from another terminal:\n\
             \x20 KAFKA_BROKERS={brokers} CASSANDRA_HOSTS={cql} {program} repl --queries {queries}\n\
             Stop with Ctrl-C. Latest 1-minute candle per symbol ({KEYSPACE}.{CANDLES}, read back over CQL):\n",
            symbols = config.symbols,
            rate = config.rate,
            queries = self.queries.display(),
            schema = self.schema.display(),
            running = self.supervisor.running().join(", "),
            program = config.program,
        )
    }

    /// Shows the header, then the candles every second until `shutdown`, the configured
    /// duration, or the feed failing.
    async fn watch(
        &mut self,
        config: &DemoConfig,
        out: &mut dyn Write,
        shutdown: &CancellationToken,
        started: tokio::time::Instant,
    ) -> Result<()> {
        write_out(out, &self.header(config))?;
        let mut screen = Screen::new(config.interactive);
        let deadline = config.duration.map(|d| started + d);
        loop {
            let stop_at = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = stop_at => return Ok(()),
                () = tokio::time::sleep(REFRESH) => {}
            }
            for stopped in self.supervisor.collect_finished().await {
                self.failed |= log_stopped(&stopped);
            }
            if !self.feed.is_running() {
                return Ok(());
            }
            match self.reader.latest().await {
                Ok(candles) => {
                    let (produced, now) = (self.feed.delivered(), SystemTime::now());
                    let frame = render(&candles, produced, now, screen.max_lines());
                    screen.show(out, &frame).map_err(terminal_error)?;
                }
                Err(err) => tracing::warn!(error = %err, "cannot read the candles back"),
            }
        }
    }

    /// Stops the simulator, then the queries after their micro-batch, then the servers, and
    /// removes the temporary directory. Returns whether anything failed and the ticks produced.
    async fn stop(mut self) -> Result<(bool, u64)> {
        let produced = self.feed.stop().await;
        for stopped in self.supervisor.stop_all().await {
            self.failed |= log_stopped(&stopped);
        }
        drop(self.reader);
        self.store.stop().await;
        drop(self.broker);
        self.workdir
            .close()
            .map_err(|e| EngineError::io("cannot remove the demo's temporary directory", e))?;
        Ok((self.failed, produced?))
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(terminal_error)
}

fn terminal_error(err: std::io::Error) -> EngineError {
    EngineError::io("cannot write the demo's view", err)
}

/// `given`, or else the first directory called `name` in the current directory, the running
/// binary's directory or one of their parents (`cargo run` from anywhere in the repository
/// finds the shipped one); made absolute.
fn locate(given: Option<&Path>, name: &str, flag: &str) -> Result<PathBuf> {
    let dir = match given {
        Some(dir) => dir.to_path_buf(),
        None => {
            let cwd = std::env::current_dir().ok();
            let exe_dir = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.to_owned()));
            let found = [cwd, exe_dir]
                .into_iter()
                .flatten()
                .find_map(|start| start.ancestors().map(|a| a.join(name)).find(|d| d.is_dir()));
            found.ok_or_else(|| {
                EngineError::Config(format!(
                    "cannot find the shipped {name}/ directory above the current directory or the \
                     engine binary; pass {flag} DIR"
                ))
            })?
        }
    };
    dir.canonicalize().map_err(|e| EngineError::io(format!("cannot open {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_directories_are_found_from_inside_the_repository() {
        // Unit tests run in engine/: queries/ and cql/ are one level up.
        let queries = locate(None, "queries", "--queries").unwrap();
        assert!(queries.join("10_candles_1m.sql").is_file(), "{}", queries.display());
        assert!(locate(None, "cql", "--schema").unwrap().join("00_keyspace.cql").is_file());
        let err = locate(Some(Path::new("/nonexistent/q")), "queries", "--queries").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/q"), "{err}");
    }
}
