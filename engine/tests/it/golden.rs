//! Hand-built cases for each behaviour the property test does not reach on its own: late
//! drops, idle partitions, sessions bridged or moved by a late event, computed and metadata
//! columns, `${VAR}`, files appearing while running, CSV and Parquet. Expected outputs come
//! from the DataFusion batch oracle or from the case's own arithmetic, never from the engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use engine::catalog::SchemaSource;
use engine::planner::{PipelineOptions, QueryPlan};
use engine::runtime::load::load_and_plan;
use engine::runtime::{QueryRunner, StepOutcome};
use serde_json::Value;

use crate::harness::*;

pub const SOURCE: &str = "
CREATE TABLE ticks (
    symbol TEXT NOT NULL,
    price DOUBLE NOT NULL,
    day_volume BIGINT,
    \"timestamp\" BIGINT NOT NULL,
    off BIGINT METADATA FROM 'offset',
    part BIGINT METADATA FROM 'partition',
    ts AS to_timestamp(\"timestamp\"),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (connector = 'filesystem', path = '${TICKS}', format = 'json');
CREATE TABLE out WITH (connector = 'filesystem', path = '${OUT}', format = 'json');
";

fn tick(symbol: &str, price: f64, timestamp: i64) -> Tick {
    Tick { symbol: symbol.into(), price, day_volume: Some(100), timestamp }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(parts: &[Vec<Tick>], sql: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_partitions(&dir.path().join("ticks"), parts);
        std::fs::create_dir_all(dir.path().join("q")).unwrap();
        std::fs::write(dir.path().join("q/query.sql"), format!("{SOURCE}\n{sql}")).unwrap();
        Self { dir }
    }

    fn vars(&self) -> HashMap<String, String> {
        HashMap::from([
            ("TICKS".to_string(), self.dir.path().join("ticks").display().to_string()),
            ("OUT".to_string(), self.dir.path().join("out").display().to_string()),
        ])
    }

    async fn plan(&self, options: &PipelineOptions) -> QueryPlan {
        let vars = self.vars();
        let (mut pipeline, errors) = load_and_plan(
            &self.dir.path().join("q"),
            &|n| vars.get(n).cloned(),
            options,
            &SchemaSource::default(),
        )
        .await;
        assert!(errors.is_empty(), "{errors:?}");
        pipeline.queries.remove(0)
    }

    /// Runs to the end of the input, one micro-batch at a time; returns the summed outcome.
    async fn run_once(&self, options: &PipelineOptions) -> StepOutcome {
        let mut runner = QueryRunner::new(self.plan(options).await, true).await.unwrap();
        let mut total = StepOutcome::default();
        loop {
            let step = runner.step().await.unwrap();
            total.rows_in += step.rows_in;
            total.rows_out += step.rows_out;
            total.late += step.late;
            total.malformed += step.malformed;
            if step.finished {
                return total;
            }
        }
    }

    fn output(&self) -> Vec<serde_json::Map<String, Value>> {
        read_changelog(&self.dir.path().join("out"))
    }
}

fn one_row_batches() -> PipelineOptions {
    PipelineOptions { max_rows_per_batch: 1, idle_timeout: None, ..PipelineOptions::default() }
}

const COUNT_PER_10S: &str = "
INSERT INTO out
SELECT symbol, window_start, window_end, count(*) AS n, sum(price) AS total
FROM TUMBLE(ticks, ts, INTERVAL '10' SECOND)
GROUP BY symbol, window_start, window_end
EMIT ON WINDOW CLOSE;";

const COUNT_PER_10S_ORACLE: &str = "
SELECT symbol, ws AS window_start, ws + INTERVAL '10 seconds' AS window_end, count(*) AS n, sum(price) AS total
FROM (SELECT *, date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws FROM ticks)
GROUP BY symbol, ws";

/// The events a one-row-per-batch run must drop: behind the running maximum by more than the
/// watermark delay (5 s) plus the allowed lateness.
fn late_ones(ticks: &[Tick], lateness: i64) -> Vec<usize> {
    let mut max = i64::MIN;
    let mut late = vec![];
    for (i, t) in ticks.iter().enumerate() {
        if max != i64::MIN && t.timestamp < max - 5 - lateness {
            late.push(i);
        } else {
            max = max.max(t.timestamp);
        }
    }
    late
}

#[tokio::test]
async fn late_events_are_dropped_counted_and_kept_within_allowed_lateness() {
    let ticks = vec![
        tick("A", 1.0, 1_000),
        tick("A", 2.0, 1_012),
        tick("A", 4.0, 1_003),  // 9 s behind: late unless lateness >= 4 s
        tick("A", 8.0, 1_008),  // 4 s behind: within the delay
        tick("A", 16.0, 1_006), // 6 s behind: late unless lateness >= 1 s
        tick("A", 32.0, 1_030),
    ];
    for lateness in [0, 2, 10] {
        let case = Case::new(std::slice::from_ref(&ticks), COUNT_PER_10S);
        let options = PipelineOptions {
            allowed_lateness: Duration::from_secs(lateness as u64),
            ..one_row_batches()
        };
        let outcome = case.run_once(&options).await;
        let late = late_ones(&ticks, lateness);
        assert_eq!(outcome.late, late.len(), "lateness {lateness}");
        let kept: Vec<Tick> = ticks
            .iter()
            .enumerate()
            .filter(|(i, _)| !late.contains(i))
            .map(|(_, t)| t.clone())
            .collect();
        let expected = oracle(COUNT_PER_10S_ORACLE, ticks_table(&[kept])).await;
        let actual = unique_rows(case.output(), &["symbol", "window_start"]);
        assert_tables_eq(
            &actual,
            &expected,
            &["symbol", "window_start"],
            &format!("lateness {lateness}"),
        );
    }
    assert_eq!(late_ones(&ticks, 0), vec![2, 4], "the case itself: two late events at lateness 0");
}

#[tokio::test(start_paused = true)]
async fn an_idle_partition_stops_holding_the_watermark_back() {
    // Partition 0 runs two minutes ahead; partition 1 delivers one early tick and goes quiet.
    let busy: Vec<Tick> = (0..120).map(|i| tick("A", i as f64, 2_000 + i)).collect();
    let quiet = vec![tick("B", 1.0, 2_001)];
    let case = Case::new(&[busy.clone(), quiet.clone()], COUNT_PER_10S);
    let options = PipelineOptions {
        idle_timeout: Some(Duration::from_secs(5)),
        ..PipelineOptions::default()
    };
    let mut runner = QueryRunner::new(case.plan(&options).await, false).await.unwrap();
    runner.step().await.unwrap();
    let held = case.output();
    assert!(
        held.is_empty(),
        "partition 1 holds the watermark at 1996 s; nothing may close yet: {held:?}"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    runner.step().await.unwrap();
    // Watermark now 2119 - 5 = 2114: every window ending at or before 2110 is closed.
    let closed = unique_rows(case.output(), &["symbol", "window_start"]);
    let expected: Vec<_> = oracle(COUNT_PER_10S_ORACLE, ticks_table(&[busy, quiet]))
        .await
        .into_iter()
        .filter(|row| row["window_end"].as_str().unwrap() <= "1970-01-01T00:35:10")
        .collect();
    assert_eq!(expected.len(), 12, "the case itself: windows 2000..2110 of A and the one of B");
    assert_tables_eq(&closed, &expected, &["symbol", "window_start"], "after the idle timeout");
}

const SESSIONS_UPSERT: &str = "
INSERT INTO out
SELECT symbol, window_start, window_end, count(*) AS n, max(price) AS high
FROM SESSION(ticks, ts, INTERVAL '10' SECOND)
GROUP BY symbol, window_start, window_end;";

#[tokio::test]
async fn a_late_event_bridging_two_sessions_retracts_the_merged_one() {
    let ticks = vec![
        tick("A", 1.0, 100),
        tick("A", 2.0, 115), // 15 s after: a second session
        tick("A", 3.0, 108), // within 10 s of both: bridges them (7 s behind the watermark)
        tick("A", 4.0, 160),
    ];
    let case = Case::new(&[ticks], SESSIONS_UPSERT);
    let options = PipelineOptions { allowed_lateness: Duration::from_secs(5), ..one_row_batches() };
    let outcome = case.run_once(&options).await;
    assert_eq!(outcome.late, 0);
    let changelog = case.output();
    let deleted: Vec<_> = changelog
        .iter()
        .filter(|r| r.get("__op").is_some())
        .map(|r| r["window_start"].clone())
        .collect();
    assert_eq!(
        deleted,
        vec![Value::from("1970-01-01T00:01:55")],
        "the session starting at 115 s is merged away"
    );
    let table = apply_changelog(changelog, &["symbol", "window_start"]);
    let rows: Vec<(String, String, i64, f64)> = table
        .values()
        .map(|r| {
            (
                r["window_start"].as_str().unwrap().into(),
                r["window_end"].as_str().unwrap().into(),
                r["n"].as_i64().unwrap(),
                r["high"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("1970-01-01T00:01:40".into(), "1970-01-01T00:02:05".into(), 3, 3.0),
            ("1970-01-01T00:02:40".into(), "1970-01-01T00:02:50".into(), 1, 4.0),
        ]
    );
}

#[tokio::test]
async fn a_late_event_moving_a_session_start_retracts_the_old_row() {
    let ticks = vec![tick("A", 1.0, 100), tick("A", 2.0, 106), tick("A", 3.0, 97)];
    let case = Case::new(&[ticks], SESSIONS_UPSERT);
    let options =
        PipelineOptions { allowed_lateness: Duration::from_secs(10), ..one_row_batches() };
    case.run_once(&options).await;
    let table = apply_changelog(case.output(), &["symbol", "window_start"]);
    let starts: Vec<_> =
        table.values().map(|r| (r["window_start"].clone(), r["n"].clone())).collect();
    assert_eq!(starts, vec![(Value::from("1970-01-01T00:01:37"), Value::from(3))]);
}

#[tokio::test]
async fn computed_and_metadata_columns_and_variables_stream_through() {
    let parts = vec![
        vec![tick("A", 10.25, 1), tick("B", 99.5, 2), tick("A", 51.0, 3)],
        vec![tick("C", 75.125, 4), tick("C", 12.0, 5)],
    ];
    let sql = "
        INSERT INTO out
        SELECT symbol, CAST(price * 100 AS BIGINT) AS cents, upper(lower(symbol)) || '@' || CAST(part AS TEXT) AS tag,
               off, ts
        FROM ticks WHERE price > 50;";
    let case = Case::new(&parts, sql);
    let outcome = case.run_once(&PipelineOptions::default()).await;
    assert_eq!(outcome.rows_in, 5);
    let mut rows: Vec<String> =
        case.output().iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            // serde_json orders keys by name.
            r#"{"cents":5100,"off":2,"symbol":"A","tag":"A@0","ts":"1970-01-01T00:00:03"}"#,
            r#"{"cents":7512,"off":0,"symbol":"C","tag":"C@1","ts":"1970-01-01T00:00:04"}"#,
            r#"{"cents":9950,"off":1,"symbol":"B","tag":"B@0","ts":"1970-01-01T00:00:02"}"#,
        ]
    );
}

#[tokio::test]
async fn malformed_lines_are_skipped_and_counted_and_good_ones_kept() {
    let case = Case::new(
        &[vec![tick("A", 1.0, 1), tick("A", 2.0, 2)]],
        "INSERT INTO out SELECT symbol, price FROM ticks;",
    );
    let file = case.dir.path().join("ticks/part-000.jsonl");
    let good = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let text = format!(
        "{}\nnot json\n{{\"symbol\":\"A\",\"price\":\"cheap\",\"timestamp\":3}}\n{{\"symbol\":\"A\",\"timestamp\":4}}\n{}\n",
        lines[0], lines[1]
    );
    std::fs::write(&file, text).unwrap();
    let outcome = case.run_once(&PipelineOptions::default()).await;
    assert_eq!((outcome.rows_in, outcome.malformed), (2, 3));
    let prices: Vec<f64> = case.output().iter().map(|r| r["price"].as_f64().unwrap()).collect();
    assert_eq!(prices, vec![1.0, 2.0]);
}

#[tokio::test]
async fn files_that_appear_while_running_become_partitions() {
    let case = Case::new(
        &[vec![tick("A", 1.0, 1)]],
        "INSERT INTO out SELECT symbol, price, part FROM ticks;",
    );
    let mut runner =
        QueryRunner::new(case.plan(&PipelineOptions::default()).await, false).await.unwrap();
    assert_eq!(runner.step().await.unwrap().rows_in, 1);
    assert_eq!(runner.step().await.unwrap().rows_in, 0);
    let dir = case.dir.path().join("ticks");
    std::fs::write(dir.join("part-001.jsonl"), tick("B", 2.0, 2).json() + "\n").unwrap();
    // A line still being written is not read until its newline arrives.
    let mut appending =
        std::fs::OpenOptions::new().append(true).open(dir.join("part-000.jsonl")).unwrap();
    std::io::Write::write_all(&mut appending, tick("A", 3.0, 3).json().as_bytes()).unwrap();
    assert_eq!(runner.step().await.unwrap().rows_in, 1);
    std::io::Write::write_all(&mut appending, b"\n").unwrap();
    assert_eq!(runner.step().await.unwrap().rows_in, 1);
    let rows: Vec<(f64, i64)> = case
        .output()
        .iter()
        .map(|r| (r["price"].as_f64().unwrap(), r["part"].as_i64().unwrap()))
        .collect();
    assert_eq!(rows, vec![(1.0, 0), (2.0, 1), (3.0, 0)]);
}

#[tokio::test]
async fn csv_and_parquet_sources_and_a_parquet_sink() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("csv")).unwrap();
    std::fs::write(dir.path().join("csv/a.csv"), "symbol,price,timestamp\nA,1.5,10\nB,2.5,20\n")
        .unwrap();
    std::fs::create_dir_all(dir.path().join("pq")).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("timestamp", DataType::Int64, false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![30, 40])),
            Arc::new(StringArray::from(vec!["C", "D"])),
            Arc::new(Float64Array::from(vec![3.5, 4.5])),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(dir.path().join("pq/a.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let root = dir.path().display();
    let sql = format!(
        "CREATE TABLE c (symbol TEXT, price DOUBLE, \"timestamp\" BIGINT) WITH (connector = 'filesystem', path = '{root}/csv', format = 'csv');
         CREATE TABLE p (symbol TEXT, price DOUBLE, \"timestamp\" BIGINT) WITH (connector = 'filesystem', path = '{root}/pq', format = 'parquet');
         CREATE TABLE out_c WITH (connector = 'filesystem', path = '{root}/out_c', format = 'parquet');
         CREATE TABLE out_p WITH (connector = 'filesystem', path = '{root}/out_p', format = 'json');
         INSERT INTO out_c SELECT symbol, price * 2 AS doubled FROM c;
         INSERT INTO out_p SELECT symbol, \"timestamp\" FROM p;"
    );
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
    std::fs::write(dir.path().join("q/q.sql"), sql).unwrap();
    run_once(&dir.path().join("q"), &HashMap::new(), &PipelineOptions::default()).await;

    let parquet = std::fs::read_dir(dir.path().join("out_c"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(parquet).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let formatted =
        datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    assert!(
        formatted.contains("| A      | 3.0     |") && formatted.contains("| B      | 5.0     |"),
        "{formatted}"
    );
    let json: Vec<String> = read_changelog(&dir.path().join("out_p"))
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(json, vec![r#"{"symbol":"C","timestamp":30}"#, r#"{"symbol":"D","timestamp":40}"#]);
}

#[tokio::test]
async fn position_and_restore_resume_a_file_source_exactly() {
    let ticks: Vec<Tick> = (0..10).map(|i| tick("A", i as f64, i)).collect();
    let case = Case::new(&[ticks], "INSERT INTO out SELECT price FROM ticks;");
    let options = PipelineOptions { max_rows_per_batch: 3, ..PipelineOptions::default() };
    let plan = case.plan(&options).await;
    let source = &plan.source;
    let engine::connector::ConnectorSpec::Filesystem(fs) = &source.connector else {
        panic!("filesystem")
    };
    use engine::connector::SourceReader;
    let mut first = engine::connector::filesystem::FileSource::new(
        "ticks",
        fs,
        source.raw_schema.clone(),
        source.source_columns.clone(),
        false,
    );
    let polled = first.poll(3).await.unwrap();
    assert_eq!(polled.batches[0].batch.num_rows(), 3);
    let position = first.position();
    let mut second = engine::connector::filesystem::FileSource::new(
        "ticks",
        fs,
        source.raw_schema.clone(),
        source.source_columns.clone(),
        false,
    );
    second.restore(&position).await.unwrap();
    let rest = second.poll(100).await.unwrap();
    let offsets = rest.batches[0]
        .batch
        .column_by_name("off")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    assert_eq!(offsets, (3..10).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_large_chunk_decoded_on_several_threads_keeps_every_row_in_order() {
    let ticks: Vec<Tick> = (0..50_000).map(|i| tick(&format!("S{}", i % 7), i as f64, i)).collect();
    let case = Case::new(&[ticks], "INSERT INTO out SELECT price, off FROM ticks;");
    let outcome = case.run_once(&PipelineOptions::default()).await;
    assert_eq!(outcome.rows_in, 50_000);
    let rows = case.output();
    assert_eq!(rows.len(), 50_000);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            (row["price"].as_f64(), row["off"].as_i64()),
            (Some(i as f64), Some(i as i64)),
            "row {i}"
        );
    }
}

#[tokio::test]
async fn two_queries_writing_one_file_sink_keep_every_row_of_both() {
    let ticks = generate(11, 3, 300, 4);
    let parts = partition_by_symbol(&ticks, 2);
    let two = "
INSERT INTO out
SELECT 'per10' AS q, symbol, window_start, count(*) AS n
FROM TUMBLE(ticks, ts, INTERVAL '10' SECOND)
GROUP BY symbol, window_start, window_end
EMIT ON WINDOW CLOSE;
INSERT INTO out
SELECT 'per20' AS q, symbol, window_start, count(*) AS n
FROM TUMBLE(ticks, ts, INTERVAL '20' SECOND)
GROUP BY symbol, window_start, window_end
EMIT ON WINDOW CLOSE;";
    let case = Case::new(&parts, two);
    let vars = case.vars();
    let (pipeline, errors) = load_and_plan(
        &case.dir.path().join("q"),
        &|n| vars.get(n).cloned(),
        &one_row_batches(),
        &SchemaSource::default(),
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(pipeline.queries.len(), 2);
    // Both sinks open before either writes, as when they run side by side.
    let mut runners = vec![];
    for query in pipeline.queries {
        runners.push(QueryRunner::new(query, true).await.unwrap());
    }
    let runs = runners.into_iter().map(|r| r.run(tokio_util::sync::CancellationToken::new()));
    for result in futures::future::join_all(runs).await {
        result.unwrap();
    }
    let oracle_sql = |q: &str, seconds: u32| {
        format!(
            "SELECT '{q}' AS q, symbol, ws AS window_start, count(*) AS n
             FROM (SELECT *, date_bin(INTERVAL '{seconds} seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws FROM ticks)
             GROUP BY symbol, ws"
        )
    };
    let all = ticks_table(&parts);
    let mut expected = oracle(&oracle_sql("per10", 10), all.clone()).await;
    expected.extend(oracle(&oracle_sql("per20", 20), all).await);
    let key = ["q", "symbol", "window_start"];
    let actual = unique_rows(case.output(), &key);
    assert_eq!(case.output().len(), expected.len(), "each window written once");
    assert_tables_eq(&actual, &expected, &key, "two queries into one sink");
}
