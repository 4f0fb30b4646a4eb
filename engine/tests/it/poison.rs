//! Poison pills: records that fail one row-level evaluation each (an undecodable line, a
//! computed column failing a cast or dividing by zero, a scalar function failing on one value in
//! the query, a value the sink's column type cannot hold, a watermark expression failing) mixed
//! into ordinary ticks, read from files and from a Kafka topic, bounded (`--once`) and
//! following. Every query keeps running; the dead-letter destination holds exactly the bad
//! records, with their locations and bytes, once per query that found them bad; and every sink
//! equals the DataFusion batch oracle over that query's good rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use engine::catalog::SchemaSource;
use engine::planner::PipelineOptions;
use engine::runtime::load::load_and_plan;
use engine::runtime::{QueryRunner, RunStats};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::harness::*;
use crate::servers::{brokers, create_topic, dead_letter_header, dead_letter_location, unique};

/// The columns every source declares, with the computed columns that fail on poison.
const COLUMNS: &str = "
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    day_volume BIGINT,
    \"timestamp\" BIGINT NOT NULL,
    currency TEXT,
    off BIGINT METADATA FROM 'offset',
    ts AS to_timestamp(\"timestamp\"),
    lot AS day_volume / (day_volume - 12345),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND";

/// The sinks.
const SINKS: &str = "
CREATE TABLE candles WITH (connector = 'filesystem', path = '${OUT}/candles', format = 'json');
CREATE TABLE prices (symbol TEXT, price INT, \"timestamp\" BIGINT)
    WITH (connector = 'filesystem', path = '${OUT}/prices', format = 'json');
";

/// Query `candles` (a scalar function in WHERE that fails on one currency).
const CANDLES: &str = "
INSERT INTO candles
SELECT symbol, window_start, window_end, max(price) AS high, min(price) AS low,
       count(*) AS ticks, sum(lot) AS lots
FROM TUMBLE(ticks, ts, INTERVAL '1' MINUTE)
WHERE to_date(CASE WHEN currency = 'USD' THEN '2024-01-01' ELSE currency END) IS NOT NULL
GROUP BY symbol, window_start, window_end;
";

/// Query `prices`: a copy into an INT column (a sink cast that fails on one price).
const PRICES: &str = "INSERT INTO prices SELECT symbol, price, \"timestamp\" FROM ticks;";

/// Writes the query directory: the source declared by `source`, the sinks, the two queries.
fn write_queries(dir: &Path, source: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("00_sources.sql"), format!("{source}{SINKS}")).unwrap();
    std::fs::write(dir.join("candles.sql"), CANDLES).unwrap();
    std::fs::write(dir.join("prices.sql"), PRICES).unwrap();
}

const CANDLES_ORACLE: &str = "
    SELECT symbol, ws AS window_start, ws + INTERVAL '1 minute' AS window_end,
           max(price) AS high, min(price) AS low, count(*) AS ticks,
           sum(day_volume / (day_volume - 12345)) AS lots
    FROM (SELECT *, date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws
          FROM ticks)
    GROUP BY symbol, ws";

const PRICES_ORACLE: &str = "SELECT symbol, CAST(price AS INT) AS price, \"timestamp\" FROM ticks";

/// How a poison record fails, and for which query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poison {
    /// Not JSON: both queries.
    Undecodable,
    /// `to_timestamp(-99999999999999)` fails in computed column `ts`: both queries.
    Timestamp,
    /// `day_volume = 12345` divides by zero in computed column `lot`: both queries.
    Division,
    /// Currency `BAD` fails `to_date` in the candles query's WHERE: candles only.
    Function,
    /// Price 1e12 does not fit the prices sink's INT column: prices only.
    SinkCast,
}

impl Poison {
    const ALL: [Poison; 5] =
        [Self::Undecodable, Self::Timestamp, Self::Division, Self::Function, Self::SinkCast];

    /// The queries that find it bad.
    fn bad_for(self) -> &'static [&'static str] {
        match self {
            Self::Function => &["candles"],
            Self::SinkCast => &["prices"],
            _ => &["candles", "prices"],
        }
    }

    /// The record, at time `timestamp` (in order with its neighbours), and the tick it is for
    /// the queries it is good for.
    fn record(self, timestamp: i64) -> (String, Option<Tick>) {
        let tick =
            |price: f64| Tick { symbol: "SYM0".into(), price, day_volume: Some(7), timestamp };
        match self {
            Self::Undecodable => ("not json at all".into(), None),
            Self::Timestamp => (
                r#"{"symbol":"SYM0","price":1.5,"timestamp":-99999999999999,"currency":"USD"}"#
                    .into(),
                None,
            ),
            Self::Division => (
                format!(
                    r#"{{"symbol":"SYM0","price":1.5,"day_volume":12345,"timestamp":{timestamp},"currency":"USD"}}"#
                ),
                None,
            ),
            Self::Function => (
                format!(
                    r#"{{"symbol":"SYM0","price":2.5,"day_volume":7,"timestamp":{timestamp},"currency":"BAD"}}"#
                ),
                Some(tick(2.5)),
            ),
            Self::SinkCast => (
                format!(
                    r#"{{"symbol":"SYM0","price":1e12,"day_volume":7,"timestamp":{timestamp},"currency":"USD"}}"#
                ),
                Some(tick(1e12)),
            ),
        }
    }
}

/// A record as written: its text, the poison it is (if any) and its tick (if it has one).
type Written = (String, Option<Poison>, Option<Tick>);

/// Ticks with poison in every partition: the records of each partition in order.
struct Input {
    partitions: Vec<Vec<Written>>,
}

impl Input {
    fn new(seed: u64) -> Self {
        let parts = partition_by_symbol(&generate(seed, 4, 600, 3), 2);
        let mut partitions = vec![];
        for (p, ticks) in parts.into_iter().enumerate() {
            let mut records = vec![];
            for (i, tick) in ticks.into_iter().enumerate() {
                // Every 50 ticks a poison, of each kind in turn, at the time of the tick after.
                if i % 50 == 25 + p {
                    let poison = Poison::ALL[(i / 50 + p) % Poison::ALL.len()];
                    let (text, good) = poison.record(tick.timestamp);
                    records.push((text, Some(poison), good));
                }
                records.push((tick.json(), None, Some(tick)));
            }
            partitions.push(records);
        }
        Self { partitions }
    }

    /// The ticks `query` should read, per partition.
    fn good_for(&self, query: &str) -> Vec<Vec<Tick>> {
        self.partitions
            .iter()
            .map(|records| {
                records
                    .iter()
                    .filter(|(_, poison, _)| poison.is_none_or(|p| !p.bad_for().contains(&query)))
                    .filter_map(|(_, _, tick)| tick.clone())
                    .collect()
            })
            .collect()
    }

    /// `(query, location, raw)` of every dead letter expected, with `location` of a record
    /// given its partition and index.
    fn dead_letters(
        &self,
        location: impl Fn(usize, usize) -> String,
    ) -> BTreeSet<(String, String, String)> {
        let mut expected = BTreeSet::new();
        for (p, records) in self.partitions.iter().enumerate() {
            for (i, (text, poison, _)) in records.iter().enumerate() {
                for query in poison.map_or(&[][..], Poison::bad_for) {
                    expected.insert((query.to_string(), location(p, i), text.clone()));
                }
            }
        }
        expected
    }

    fn poisons(&self) -> BTreeSet<String> {
        let kinds = self.partitions.iter().flatten().filter_map(|(_, p, _)| *p);
        kinds.map(|p| format!("{p:?}")).collect()
    }
}

/// The sinks' tables as read back.
fn sinks(out: &Path) -> (BTreeMap<String, Map<String, Value>>, Vec<String>) {
    let candles =
        apply_changelog(read_changelog(&out.join("candles")), &["symbol", "window_start"]);
    let mut prices: Vec<String> = read_changelog(&out.join("prices"))
        .iter()
        .map(|r| Value::Object(r.clone()).to_string())
        .collect();
    prices.sort();
    (candles, prices)
}

/// What the sinks must hold: the oracle over each query's good ticks.
async fn expected_sinks(input: &Input) -> (Vec<Map<String, Value>>, Vec<String>) {
    let candles = oracle(CANDLES_ORACLE, ticks_table(&input.good_for("candles"))).await;
    let prices = oracle(PRICES_ORACLE, ticks_table(&input.good_for("prices"))).await;
    let mut prices: Vec<String> =
        prices.into_iter().map(|r| Value::Object(r).to_string()).collect();
    prices.sort();
    (candles, prices)
}

/// Whether the sinks hold what they must; the difference if not.
fn sinks_differ(out: &Path, expected: &(Vec<Map<String, Value>>, Vec<String>)) -> Option<String> {
    let (candles, prices) = sinks(out);
    if let Some(diff) = tables_diff(&candles, &expected.0, &["symbol", "window_start"]) {
        return Some(format!("candles: {diff}"));
    }
    (prices != expected.1)
        .then(|| format!("prices: {} rows, expected {}", prices.len(), expected.1.len()))
}

/// Runs every query of `queries`: bounded to the end, or following until `done` says the
/// sinks and dead letters are complete (60 s at most). Every query must end well.
async fn run(
    queries: &Path,
    vars: &HashMap<String, String>,
    bounded: bool,
    done: impl Fn() -> Option<String>,
) {
    let options = PipelineOptions {
        trigger_interval: Duration::from_millis(50),
        max_rows_per_batch: 37,
        ..PipelineOptions::default()
    };
    let (pipeline, errors) =
        load_and_plan(queries, &|n| vars.get(n).cloned(), &options, &SchemaSource::default()).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pipeline.queries.len(), 2);
    let token = CancellationToken::new();
    let mut tasks = vec![];
    for query in pipeline.queries {
        let runner = QueryRunner::new(query, bounded).await.unwrap();
        let runner = if bounded { runner } else { runner.prefetching() };
        tasks.push(tokio::spawn(runner.run(token.clone())));
    }
    if !bounded {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match done() {
                None => break,
                Some(_) if tokio::time::Instant::now() < deadline => {}
                Some(why) => panic!("not complete after 60 s: {why}"),
            }
            assert!(tasks.iter().all(|t| !t.is_finished()), "a following query stopped");
        }
        token.cancel();
    }
    for task in tasks {
        let stats: RunStats = task.await.unwrap().unwrap_or_else(|e| panic!("query failed: {e}"));
        assert!(stats.malformed > 0, "each query found bad records");
    }
}

fn file_queries(dir: &Path) -> HashMap<String, String> {
    let source = format!(
        "CREATE TABLE ticks ({COLUMNS}) WITH (connector = 'filesystem', path = '${{TICKS}}', \
         format = 'json', 'dead-letter.path' = '${{DLQ}}');\n"
    );
    write_queries(&dir.join("q"), &source);
    HashMap::from([
        ("TICKS".to_string(), dir.join("ticks").display().to_string()),
        ("OUT".to_string(), dir.join("out").display().to_string()),
        ("DLQ".to_string(), dir.join("dead/letters.jsonl").display().to_string()),
    ])
}

/// The dead-letter file's records as `(query, location, raw)`; every one must say what failed.
fn dead_letter_file(path: &Path) -> BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let record: Map<String, Value> = serde_json::from_str(line).unwrap();
        assert!(!record["error"].as_str().unwrap().is_empty(), "{line}");
        let text = |k: &str| record[k].as_str().unwrap().to_string();
        assert!(found.insert((text("query"), text("location"), text("raw"))), "twice: {line}");
    }
    found
}

async fn file_suite(bounded: bool) {
    let dir = tempfile::tempdir().unwrap();
    let input = Input::new(if bounded { 11 } else { 12 });
    assert_eq!(input.poisons().len(), Poison::ALL.len(), "every kind of poison is in the input");
    std::fs::create_dir_all(dir.path().join("ticks")).unwrap();
    let files: Vec<_> = (0..input.partitions.len())
        .map(|p| dir.path().join(format!("ticks/part-{p}.jsonl")))
        .collect();
    for (file, records) in files.iter().zip(&input.partitions) {
        let text: String = records.iter().map(|(t, _, _)| format!("{t}\n")).collect();
        std::fs::write(file, text).unwrap();
    }
    let vars = file_queries(dir.path());
    let expected_dead = input.dead_letters(|p, i| format!("{}:{}", files[p].display(), i + 1));
    let expected = expected_sinks(&input).await;
    let dead_path = dir.path().join("dead/letters.jsonl");
    let out = dir.path().join("out");
    run(&dir.path().join("q"), &vars, bounded, || {
        sinks_differ(&out, &expected).or_else(|| {
            let found = dead_letter_file(&dead_path);
            (found != expected_dead).then(|| format!("{} dead letters", found.len()))
        })
    })
    .await;
    assert_eq!(sinks_differ(&out, &expected), None);
    assert_eq!(dead_letter_file(&dead_path), expected_dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_files_is_dead_lettered_and_the_rest_equals_the_oracle_once() {
    file_suite(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_files_is_dead_lettered_and_the_rest_equals_the_oracle_following() {
    file_suite(false).await;
}

/// The dead-letter topic's records as `(query, location, raw)`, read until `count` arrived.
async fn dead_letter_topic(
    servers: &str,
    topic: &str,
    count: usize,
) -> BTreeSet<(String, String, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", unique("it.poison.dlq"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let mut found = BTreeSet::new();
    while found.len() < count {
        let Ok(message) = tokio::time::timeout(Duration::from_secs(20), consumer.recv()).await
        else {
            break;
        };
        let message = message.unwrap();
        let header = |name: &str| dead_letter_header(&message, name);
        assert!(!header("error").is_empty());
        let location = dead_letter_location(&message);
        let raw = String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap();
        assert!(found.insert((header("query"), location, raw)), "dead-lettered twice");
    }
    found
}

/// Against the real broker when following; bounded (`--once`) against librdkafka's mock cluster,
/// whose high watermarks, where a bounded source ends, are exact (tansu's are not:
/// docs/testing.md).
async fn kafka_suite(bounded: bool) {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("it.poison");
    let dlq = format!("{topic}.dlq");
    let mock = bounded.then(|| rdkafka::mocking::MockCluster::new(1).unwrap());
    let servers = match &mock {
        Some(mock) => {
            mock.create_topic(&topic, 2, 1).unwrap();
            mock.create_topic(&dlq, 1, 1).unwrap();
            mock.bootstrap_servers()
        }
        None => {
            create_topic(&topic, 2).await;
            create_topic(&dlq, 1).await;
            brokers()
        }
    };
    let input = Input::new(if bounded { 21 } else { 22 });
    let messages: Vec<(i32, String, Vec<u8>, i64)> = input
        .partitions
        .iter()
        .enumerate()
        .flat_map(|(p, records)| {
            records.iter().map(move |(text, _, _)| {
                (p as i32, "k".to_string(), text.as_bytes().to_vec(), 1_700_000_000_000)
            })
        })
        .collect();
    let offsets = produce_to(&servers, &topic, &messages).await;
    let sizes: Vec<usize> = input.partitions.iter().map(Vec::len).collect();
    let offset_of = |p: usize, i: usize| offsets[sizes[..p].iter().sum::<usize>() + i];
    let expected_dead = input.dead_letters(|p, i| format!("{topic}/{p}/{}", offset_of(p, i)));
    let source = format!(
        "CREATE TABLE ticks ({COLUMNS}) WITH (connector = 'kafka', topic = '{topic}', \
         'bootstrap.servers' = '{servers}', format = 'json', \
         'scan.startup.mode' = 'earliest-offset', 'dead-letter.topic' = '{dlq}');\n"
    );
    write_queries(&dir.path().join("q"), &source);
    let out = dir.path().join("out");
    let vars = HashMap::from([("OUT".to_string(), out.display().to_string())]);
    let expected = expected_sinks(&input).await;
    run(&dir.path().join("q"), &vars, bounded, || sinks_differ(&out, &expected)).await;
    assert_eq!(sinks_differ(&out, &expected), None);
    assert_eq!(dead_letter_topic(&servers, &dlq, expected_dead.len()).await, expected_dead);
}

/// Produces `(partition, key, value, timestamp)` in order to `servers`; their offsets.
async fn produce_to(
    servers: &str,
    topic: &str,
    messages: &[(i32, String, Vec<u8>, i64)],
) -> Vec<i64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut offsets = vec![];
    for (partition, key, value, timestamp) in messages {
        let record = FutureRecord::to(topic)
            .partition(*partition)
            .key(key.as_str())
            .payload(value.as_slice())
            .timestamp(*timestamp);
        let sent = producer.send(record, Duration::from_secs(30)).await;
        offsets.push(sent.unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}")).offset);
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_kafka_is_dead_lettered_and_the_rest_equals_the_oracle_once() {
    kafka_suite(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_kafka_is_dead_lettered_and_the_rest_equals_the_oracle_following() {
    kafka_suite(false).await;
}

/// A watermark expression failing on one record (an event time in seconds that nanoseconds
/// cannot hold): that record is dead-lettered, the rest flows.
#[tokio::test]
async fn a_record_failing_the_watermark_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let ticks: Vec<Tick> = generate(5, 2, 200, 0);
    let mut text: String = ticks.iter().map(|t| t.json() + "\n").collect();
    let poison = r#"{"symbol":"SYM0","price":1.0,"timestamp":99999999999999}"#;
    text.push_str(poison);
    text.push('\n');
    std::fs::create_dir_all(dir.path().join("ticks")).unwrap();
    let file = dir.path().join("ticks/part-0.jsonl");
    std::fs::write(&file, text).unwrap();
    let sql = "CREATE TABLE ticks (symbol TEXT NOT NULL, price DOUBLE NOT NULL, \
        \"timestamp\" BIGINT NOT NULL, ts AS to_timestamp_seconds(\"timestamp\"), \
        WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'filesystem', \
        path = '${TICKS}', format = 'json', 'dead-letter.path' = '${DLQ}');
        CREATE TABLE copy WITH (connector = 'filesystem', path = '${OUT}', format = 'json');
        INSERT INTO copy SELECT symbol, price, \"timestamp\" FROM ticks;";
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
    std::fs::write(dir.path().join("q/copy.sql"), sql).unwrap();
    let vars = HashMap::from([
        ("TICKS".to_string(), dir.path().join("ticks").display().to_string()),
        ("OUT".to_string(), dir.path().join("out").display().to_string()),
        ("DLQ".to_string(), dir.path().join("dlq.jsonl").display().to_string()),
    ]);
    run_once(&dir.path().join("q"), &vars, &PipelineOptions::default()).await;
    let copied = read_changelog(&dir.path().join("out"));
    assert_eq!(copied.len(), ticks.len(), "every good record copied");
    let dead = dead_letter_file(&dir.path().join("dlq.jsonl"));
    let location = format!("{}:{}", file.display(), ticks.len() + 1);
    assert_eq!(dead, BTreeSet::from([("copy".into(), location, poison.to_string())]));
}
