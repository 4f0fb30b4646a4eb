//! Helpers shared by the streaming tests: tick generation, running query files once over
//! files, reading a sink's changelog back, and the DataFusion batch oracle.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::prelude::SessionContext;
use engine::catalog::SchemaSource;
use engine::planner::{PipelineOptions, Redirect};
use engine::runtime::QueryRunner;
use engine::runtime::load::load_and_plan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// One price event as TwelveData sends it.
#[derive(Debug, Clone)]
pub struct Tick {
    pub symbol: String,
    pub price: f64,
    pub day_volume: Option<i64>,
    /// Epoch seconds.
    pub timestamp: i64,
}

impl Tick {
    pub fn json(&self) -> String {
        let mut object = serde_json::json!({
            "event": "price",
            "symbol": self.symbol,
            "price": self.price,
            "timestamp": self.timestamp,
            "currency": "USD",
        });
        if let Some(v) = self.day_volume {
            object["day_volume"] = v.into();
        }
        object.to_string()
    }
}

/// The repository's `queries/` directory.
pub fn shipped_queries() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries")
}

/// A random tick stream: symbols random-walk, time mostly advances by a few seconds with
/// occasional pauses of minutes, and events arrive out of order by up to `disorder` seconds
/// (never more than the shipped queries' 5 s watermark delay, so none is late).
pub fn generate(seed: u64, symbols: usize, count: usize, disorder: i64) -> Vec<Tick> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut base = 1_714_570_200 + rng.random_range(0..3_600);
    let mut prices: Vec<f64> = (0..symbols).map(|i| 50.0 + 10.0 * i as f64).collect();
    let mut volumes: Vec<i64> = (0..symbols).map(|_| rng.random_range(1_000..100_000)).collect();
    let mut ticks = Vec::with_capacity(count);
    for _ in 0..count {
        base +=
            if rng.random_bool(0.02) { rng.random_range(100..400) } else { rng.random_range(0..4) };
        let s = rng.random_range(0..symbols);
        prices[s] = ((prices[s] * (1.0 + rng.random_range(-0.002..0.002))) * 100.0).round() / 100.0;
        volumes[s] += rng.random_range(1..500);
        ticks.push(Tick {
            symbol: format!("SYM{s}"),
            price: prices[s],
            day_volume: (!rng.random_bool(0.05)).then_some(volumes[s]),
            timestamp: base - rng.random_range(0..=disorder),
        });
    }
    ticks
}

/// Splits ticks into `partitions` the way Kafka does with key = symbol, keeping their order.
pub fn partition_by_symbol(ticks: &[Tick], partitions: usize) -> Vec<Vec<Tick>> {
    let mut parts = vec![vec![]; partitions];
    for tick in ticks {
        let hash: usize = tick.symbol.bytes().map(usize::from).sum();
        parts[hash % partitions].push(tick.clone());
    }
    parts
}

/// Writes one JSON-lines file per partition.
pub fn write_partitions(dir: &Path, parts: &[Vec<Tick>]) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, part) in parts.iter().enumerate() {
        let text: String = part.iter().map(|t| t.json() + "\n").collect();
        std::fs::write(dir.join(format!("part-{i:03}.jsonl")), text).unwrap();
    }
}

/// The ticks as the oracle's table, built straight from the generator (not from the files):
/// the declared columns plus `off` (position in its partition) and `ts`.
pub fn ticks_table(parts: &[Vec<Tick>]) -> RecordBatch {
    let all: Vec<(usize, &Tick)> = parts.iter().flat_map(|p| p.iter().enumerate()).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
        Field::new("day_volume", DataType::Int64, true),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("off", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(all.iter().map(|(_, t)| t.symbol.clone()))),
        Arc::new(Float64Array::from_iter_values(all.iter().map(|(_, t)| t.price))),
        Arc::new(Int64Array::from_iter(all.iter().map(|(_, t)| t.day_volume))),
        Arc::new(Int64Array::from_iter_values(all.iter().map(|(_, t)| t.timestamp))),
        Arc::new(Int64Array::from_iter_values(all.iter().map(|(i, _)| *i as i64))),
        Arc::new(TimestampNanosecondArray::from_iter_values(
            all.iter().map(|(_, t)| t.timestamp * 1_000_000_000),
        )),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Runs `sql` in DataFusion batch mode over `ticks` registered as table `ticks`; rows as JSON
/// objects (the same encoding the filesystem sink uses).
pub async fn oracle(sql: &str, ticks: RecordBatch) -> Vec<Map<String, Value>> {
    let ctx = SessionContext::new();
    ctx.register_batch("ticks", ticks).unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    json_rows(&batches)
}

/// Rows as JSON objects, encoded as the filesystem sink and the oracle encode them.
pub fn json_rows(batches: &[RecordBatch]) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    parse_lines(&out)
}

fn parse_lines(bytes: &[u8]) -> Vec<Map<String, Value>> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l).unwrap() {
            Value::Object(map) => map,
            other => panic!("not a JSON object: {other}"),
        })
        .collect()
}

/// Redirects the shipped queries for a backtest under `dir`: `ticks` read from `dir/ticks`, the
/// sinks written to `dir/out/<table>`.
pub fn backtest(dir: &Path) -> Redirect {
    Redirect { sources: vec![("ticks".into(), dir.join("ticks"))], sinks: Some(dir.join("out")) }
}

/// The `engine run` flags of [`backtest`].
pub fn backtest_args(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut replay = std::ffi::OsString::from("ticks=");
    replay.push(dir.join("ticks"));
    vec!["--replay".into(), replay, "--sink-dir".into(), dir.join("out").into()]
}

/// Plans every query file of `queries` with `vars` and runs each once over its bounded input.
pub async fn run_once(queries: &Path, vars: &HashMap<String, String>, options: &PipelineOptions) {
    let (pipeline, errors) =
        load_and_plan(queries, &|name| vars.get(name).cloned(), options, &SchemaSource::default())
            .await;
    assert!(
        errors.is_empty(),
        "planning failed: {}",
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
    );
    for query in pipeline.queries {
        let runner = QueryRunner::new(query, true).await.unwrap();
        runner.run(CancellationToken::new()).await.unwrap();
    }
}

/// Every row a filesystem sink wrote, in write order.
pub fn read_changelog(dir: &Path) -> Vec<Map<String, Value>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("part-"))
        .collect();
    files.sort();
    files.iter().flat_map(|f| parse_lines(&std::fs::read(f).unwrap())).collect()
}

/// A row's key columns joined, as the changelog helpers key rows.
pub fn key_of(row: &Map<String, Value>, key: &[&str]) -> String {
    key.iter()
        .map(|k| row.get(*k).map(Value::to_string).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("|")
}

/// Applies an upsert changelog: the last row per key wins; `"__op":"delete"` removes the key.
pub fn apply_changelog(
    rows: Vec<Map<String, Value>>,
    key: &[&str],
) -> BTreeMap<String, Map<String, Value>> {
    let mut table = BTreeMap::new();
    for mut row in rows {
        let k = key_of(&row, key);
        if row.remove("__op").is_some_and(|op| op == "delete") {
            assert!(table.remove(&k).is_some(), "delete of a row never written: {k}");
        } else {
            table.insert(k, row);
        }
    }
    table
}

/// Asserts each key appears once (windows written on close) and returns the rows by key.
pub fn unique_rows(
    rows: Vec<Map<String, Value>>,
    key: &[&str],
) -> BTreeMap<String, Map<String, Value>> {
    let mut table = BTreeMap::new();
    for row in rows {
        let k = key_of(&row, key);
        assert!(!row.contains_key("__op"), "a window written on close was retracted: {k}");
        assert!(table.insert(k.clone(), row).is_none(), "window written twice: {k}");
    }
    table
}

/// Asserts two tables are equal: same keys, same columns, numbers equal within 1e-9 relative.
pub fn assert_tables_eq(
    actual: &BTreeMap<String, Map<String, Value>>,
    expected: &[Map<String, Value>],
    key: &[&str],
    context: &str,
) {
    if let Some(difference) = tables_diff(actual, expected, key) {
        panic!("{context}: {difference}");
    }
}

/// How two tables differ, if they do (see [`assert_tables_eq`]).
pub fn tables_diff(
    actual: &BTreeMap<String, Map<String, Value>>,
    expected: &[Map<String, Value>],
    key: &[&str],
) -> Option<String> {
    let expected: BTreeMap<String, &Map<String, Value>> =
        expected.iter().map(|r| (key_of(r, key), r)).collect();
    let missing: Vec<_> = expected.keys().filter(|k| !actual.contains_key(*k)).collect();
    let extra: Vec<_> = actual.keys().filter(|k| !expected.contains_key(*k)).collect();
    if !(missing.is_empty() && extra.is_empty()) {
        return Some(format!("missing windows {missing:?}, unexpected windows {extra:?}"));
    }
    for (k, want) in &expected {
        let got = &actual[k];
        for (column, value) in want.iter() {
            let found = got.get(column).unwrap_or(&Value::Null);
            if !values_match(found, value) {
                return Some(format!(
                    "window {k} column {column}: streaming {found}, batch {value}"
                ));
            }
        }
        if let Some(column) = got.keys().find(|c| !want.contains_key(*c) && !got[*c].is_null()) {
            return Some(format!("window {k}: unexpected column {column}"));
        }
    }
    None
}

fn values_match(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        // Sums of floats depend on their order; allow rounding, relative or (near zero) absolute.
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-3),
        _ => a == b,
    }
}
