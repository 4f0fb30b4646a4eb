//! `engine demo` as users run it: the built binary with its embedded broker and CQL store. While
//! it runs, the ticks topic is read back through the broker address it prints, and the candles
//! table through `engine repl -e` with the addresses it prints; the closed candles equal the batch
//! oracle over the ticks in the topic. Ctrl-C,
//! SIGTERM and `--duration` stop it cleanly with exit code 0.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

use ingest::simulate::{GeneratorConfig, TickGenerator};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::*;
use crate::oracle::CANDLES;

const KEY: &[&str] = &["symbol", "window_start"];
const TOPIC: &str = "market.ticks";
/// The shipped queries' watermark delay.
const WATERMARK_DELAY: i64 = 5;

/// A running `engine demo` and its standard output, line by line.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
            .arg("demo")
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: vec![] }
    }

    /// Waits for the line holding `needle`.
    fn line_with(&mut self, needle: &str, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within {patience:?}: {:#?}", self.seen),
            }
        }
    }

    /// The Kafka and CQL addresses of the REPL command the demo prints.
    fn addresses(&mut self) -> (String, String) {
        let line = self.line_with("KAFKA_BROKERS=", Duration::from_secs(120));
        let value = |name: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        assert!(line.contains(" repl --queries "), "{line}");
        (value("KAFKA_BROKERS="), value("CASSANDRA_HOSTS="))
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    /// Waits for the process to exit.
    fn exit_within(&mut self, patience: Duration) -> ExitStatus {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("the demo did not exit within {patience:?}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed test must not leave the demo running.
        if self.child.try_wait().is_ok_and(|status| status.is_none()) {
            let _killed = self.child.kill();
            let _exited = self.child.wait();
        }
    }
}

/// Every tick in the topic up to its current end, by partition in offset order (key = symbol).
fn read_topic(brokers: &str) -> Vec<Vec<Tick>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "it.demo.reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(TOPIC), timeout).unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert_eq!(partitions, 3, "the demo's topic has 3 partitions");
    let mut ends = vec![];
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        ends.push(consumer.fetch_watermarks(TOPIC, partition, timeout).unwrap().1);
        assignment.add_partition_offset(TOPIC, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut parts: Vec<Vec<Tick>> = vec![vec![]; partitions as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while parts.iter().zip(&ends).any(|(part, end)| (part.len() as i64) < *end) {
        assert!(Instant::now() < deadline, "cannot read the topic up to {ends:?}");
        let Some(message) = consumer.poll(Duration::from_millis(500)) else { continue };
        let message = message.unwrap();
        let part = &mut parts[message.partition() as usize];
        if message.offset() >= ends[message.partition() as usize] {
            continue;
        }
        assert_eq!(message.offset(), part.len() as i64, "offsets are contiguous");
        let value: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let tick = Tick {
            symbol: value["symbol"].as_str().unwrap().to_string(),
            price: value["price"].as_f64().unwrap(),
            day_volume: value["day_volume"].as_i64(),
            timestamp: value["timestamp"].as_i64().unwrap(),
        };
        assert_eq!(message.key(), Some(tick.symbol.as_bytes()), "key = symbol");
        part.push(tick);
    }
    parts
}

/// The topic's watermark in epoch seconds, once it holds ticks: the smallest over partitions
/// with ticks of their greatest event time, minus the watermark delay. Windows ending at or
/// before it are closed: every later tick is later than their end.
fn watermark(parts: &[Vec<Tick>]) -> Option<i64> {
    let latest = parts.iter().filter_map(|part| part.iter().map(|t| t.timestamp).max());
    Some(latest.min()? - WATERMARK_DELAY)
}

/// The demo's closed candles (window end at or before `watermark`, epoch seconds), read from
/// its CQL store through `engine repl -e` with the addresses the demo printed.
fn repl_candles(
    brokers: &str,
    cql: &str,
    watermark: i64,
) -> BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
    let sql = format!(
        "SELECT symbol, window_start, window_end, open, high, low, close, ticks FROM candles_1m \
         WHERE window_end <= to_timestamp({watermark})"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["repl", "--format", "json", "--queries"])
        .arg(shipped_queries())
        .args(["-e", &sql])
        .env("KAFKA_BROKERS", brokers)
        .env("CASSANDRA_HOSTS", cql)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "engine repl: {}", String::from_utf8_lossy(&output.stderr));
    unique_rows(crate::repl::json_rows(&String::from_utf8(output.stdout).unwrap()), KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_writes_the_oracles_candles_for_every_symbol_and_stops_on_ctrl_c() {
    let symbols = 6;
    let mut demo = Demo::start(&["--symbols", "6", "--rate", "30", "--duration", "5m"]);
    let (brokers, cql) = demo.addresses();
    let simulated: BTreeSet<String> = TickGenerator::new(&GeneratorConfig {
        symbols,
        rate: 1.0,
        seed: 0,
        start: SystemTime::now(),
    })
    .unwrap()
    .symbols()
    .map(str::to_string)
    .collect();

    // Wait until a window of every symbol has closed in the topic (within about a minute and
    // five seconds: the first candle of each symbol closes at the next minute boundary).
    let deadline = Instant::now() + Duration::from_secs(150);
    let (watermark, expected) = loop {
        let parts = tokio::task::spawn_blocking({
            let brokers = brokers.clone();
            move || read_topic(&brokers)
        })
        .await
        .unwrap();
        let Some(watermark) = watermark(&parts) else {
            assert!(Instant::now() < deadline, "no ticks in the topic");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let closed =
            format!("SELECT * FROM ({CANDLES}) WHERE window_end <= to_timestamp({watermark})");
        let expected = oracle(&closed, ticks_table(&parts)).await;
        let symbols_closed: BTreeSet<String> =
            expected.iter().map(|row| row["symbol"].as_str().unwrap().to_string()).collect();
        assert!(symbols_closed.is_subset(&simulated), "{symbols_closed:?} vs {simulated:?}");
        if symbols_closed == simulated {
            break (watermark, expected);
        }
        assert!(Instant::now() < deadline, "only {symbols_closed:?} have closed candles");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    // The engine reaches the same ticks within a micro-batch or two: the closed candles in the
    // CQL store, read through the REPL, then equal the oracle's.
    let deadline = Instant::now() + Duration::from_secs(30);
    let actual = loop {
        let actual = tokio::task::spawn_blocking({
            let (brokers, cql) = (brokers.clone(), cql.clone());
            move || repl_candles(&brokers, &cql, watermark)
        })
        .await
        .unwrap();
        if tables_diff(&actual, &expected, KEY).is_none() || Instant::now() > deadline {
            break actual;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_tables_eq(&actual, &expected, KEY, "closed candles of the demo, through the REPL");

    demo.signal("-INT");
    let status = demo.exit_within(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status after Ctrl-C");
    demo.line_with("demo stopped after", Duration::from_secs(1));
}

#[test]
fn the_demo_stops_cleanly_on_sigterm_and_after_its_duration() {
    let mut demo = Demo::start(&["--symbols", "3", "--rate", "10"]);
    demo.addresses();
    demo.signal("-TERM");
    let status = demo.exit_within(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");

    let mut demo = Demo::start(&["--symbols", "3", "--rate", "10", "--duration", "3s"]);
    demo.addresses();
    let status = demo.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status after --duration");
    demo.line_with("demo stopped after", Duration::from_secs(1));
}
