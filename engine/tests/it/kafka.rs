//! The Kafka source against the real broker (tansu). tansu's high watermarks are wrong, so the
//! tests never ask "caught up?": they read until they have what they produced, then keep polling
//! for a quiet period to catch duplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use engine::catalog::TableDef;
use engine::connector::dead_letter::open_dead_letter;
use engine::connector::kafka::KafkaSource;
use engine::connector::{ConnectorSpec, Malformed, SourceReader};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::servers::{
    brokers, create_topic, dead_letter_header, dead_letter_location, plan, produce, produce_all,
    producer, table, unique,
};

/// A message as the source should deliver it.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
struct Row {
    partition: i64,
    offset: i64,
    seq: i64,
    symbol: String,
    price: f64,
    timestamp: i64,
    key: Option<String>,
}

fn ddl(topic: &str, extra: &str) -> String {
    ddl_for(topic, &brokers(), extra)
}

fn ddl_for(topic: &str, brokers: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE ticks (
            symbol TEXT NOT NULL,
            price DOUBLE NOT NULL,
            seq BIGINT NOT NULL,
            part BIGINT METADATA FROM 'partition',
            off BIGINT METADATA FROM 'offset',
            ts TIMESTAMP(3) METADATA FROM 'timestamp',
            k TEXT METADATA FROM 'key'
        ) WITH (
            connector = 'kafka',
            topic = '{topic}',
            'bootstrap.servers' = '{brokers}',
            format = 'json'{extra}
        );"
    )
}

async fn source_table(topic: &str, extra: &str) -> TableDef {
    let (_dir, pipeline, errors) = plan(&[("ticks.sql", ddl(topic, extra))]).await;
    assert!(errors.is_empty(), "{errors:?}");
    table(&pipeline, "ticks").clone()
}

fn open(table: &TableDef) -> KafkaSource {
    open_with(table, false)
}

fn open_with(table: &TableDef, bounded: bool) -> KafkaSource {
    let ConnectorSpec::Kafka(options) = &table.connector else { panic!("not a kafka table") };
    KafkaSource::new(
        &table.name,
        &options.group_for("it"),
        options,
        Arc::clone(&table.raw_schema),
        table.source_columns.clone(),
        bounded,
    )
    .unwrap()
}

fn rows_of(partition: usize, batch: &RecordBatch) -> Vec<Row> {
    let symbol = batch.column(0).as_string::<i32>();
    let price = batch.column(1).as_primitive::<Float64Type>();
    let seq = batch.column(2).as_primitive::<Int64Type>();
    let part = batch.column(3).as_primitive::<Int64Type>();
    let off = batch.column(4).as_primitive::<Int64Type>();
    let ts = batch.column(5).as_primitive::<TimestampMillisecondType>();
    let key = batch.column(6).as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| {
            assert_eq!(part.value(i), partition as i64, "partition column = engine partition");
            Row {
                partition: part.value(i),
                offset: off.value(i),
                seq: seq.value(i),
                symbol: symbol.value(i).to_string(),
                price: price.value(i),
                timestamp: ts.value(i),
                key: key.is_valid(i).then(|| key.value(i).to_string()),
            }
        })
        .collect()
}

/// Polls until `rows` rows and `bad` malformed messages arrived (60 s at most), then for
/// `quiet` more to catch extras.
async fn read(
    source: &mut KafkaSource,
    max_rows: usize,
    rows: usize,
    bad: usize,
    quiet: Duration,
) -> (Vec<Row>, Vec<Malformed>) {
    let mut got = vec![];
    let mut malformed = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_until = None;
    loop {
        let polled = source.poll(max_rows).await.unwrap();
        for part in &polled.batches {
            assert!(part.batch.num_rows() <= max_rows, "at most max_rows per partition");
            got.extend(rows_of(part.partition, &part.batch));
        }
        malformed.extend(polled.malformed);
        let now = tokio::time::Instant::now();
        if got.len() >= rows && malformed.len() >= bad {
            let until = *quiet_until.get_or_insert(now + quiet);
            if now >= until {
                return (got, malformed);
            }
        } else {
            assert!(
                now < deadline,
                "only {} of {rows} rows and {} of {bad} malformed in 60 s",
                got.len(),
                malformed.len()
            );
        }
    }
}

/// Produces `count` good ticks round-robin over `partitions`; returns them as expected rows.
async fn produce_ticks(topic: &str, partitions: i32, count: usize) -> Vec<Row> {
    let mut expected = vec![];
    let mut messages = vec![];
    for seq in 0..count {
        let partition = (seq % partitions as usize) as i32;
        let symbol = format!("S{}", seq % 7);
        let price = 100.0 + seq as f64 / 8.0;
        let timestamp = 1_700_000_000_000 + seq as i64;
        let value =
            format!(r#"{{"symbol":"{symbol}","price":{price},"seq":{seq},"currency":"USD"}}"#);
        messages.push((partition, symbol.clone(), value.into_bytes(), timestamp));
        expected.push(Row {
            partition: i64::from(partition),
            offset: 0,
            seq: seq as i64,
            symbol: symbol.clone(),
            price,
            timestamp,
            key: Some(symbol),
        });
    }
    let offsets = produce_all(topic, &messages).await;
    for (row, offset) in expected.iter_mut().zip(offsets) {
        row.offset = offset;
    }
    expected
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| (r.partition, r.offset));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_a_multi_partition_topic_is_read_once_with_its_metadata() {
    let topic = unique("it.kafka.read");
    create_topic(&topic, 3).await;
    let expected = produce_ticks(&topic, 3, 900).await;
    let table = source_table(&topic, "").await;
    let mut source = open(&table);
    let (got, malformed) = read(&mut source, 64, expected.len(), 0, Duration::from_secs(2)).await;
    assert!(malformed.is_empty(), "{malformed:?}");
    assert_eq!(got.len(), expected.len(), "no message twice");
    assert_eq!(sorted(got.clone()), sorted(expected.clone()));
    // Within a partition rows come in offset order.
    for p in 0..3 {
        let offsets: Vec<i64> = got.iter().filter(|r| r.partition == p).map(|r| r.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "partition {p} out of order");
    }
    let polled = source.poll(10).await.unwrap();
    assert_eq!(polled.partitions, 3);
    let next: BTreeMap<String, i64> = (0..3)
        .map(|p| {
            (
                p.to_string(),
                expected.iter().filter(|r| r.partition == p).map(|r| r.offset).max().unwrap() + 1,
            )
        })
        .collect();
    assert_eq!(source.position()["offsets"], serde_json::json!(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_reported_and_dead_lettered_and_never_stall_a_partition() {
    let topic = unique("it.kafka.bad");
    let dlq = format!("{topic}.dlq");
    create_topic(&topic, 2).await;
    create_topic(&dlq, 1).await;
    let producer = producer();
    let bad_values = [
        r#"{"symbol":"X","price":"#.to_string(),
        "not json at all".to_string(),
        r#"{"symbol":"X","price":"high","seq":1}"#.to_string(),
        r#"{"price":1.0,"seq":2}"#.to_string(),
        String::new(),
        r#"{"symbol":"A","price":1,"seq":3}{"symbol":"B","price":2,"seq":4}"#.to_string(),
    ];
    let mut good = vec![];
    let mut bad: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut seq = 0;
    for round in 0..40 {
        for partition in 0..2 {
            for _ in 0..3 {
                let value = format!(r#"{{"symbol":"G","price":{seq}.5,"seq":{seq}}}"#);
                let ts = 1_700_000_000_000 + seq;
                let offset = produce(&producer, &topic, partition, "G", value.as_bytes(), ts).await;
                good.push(Row {
                    partition: i64::from(partition),
                    offset,
                    seq,
                    symbol: "G".into(),
                    price: seq as f64 + 0.5,
                    timestamp: ts,
                    key: Some("G".into()),
                });
                seq += 1;
            }
            let value = bad_values[(round + partition as usize) % bad_values.len()].as_bytes();
            let offset =
                produce(&producer, &topic, partition, "BAD", value, 1_700_000_000_000).await;
            bad.insert(format!("{topic}/{partition}/{offset}"), value.to_vec());
        }
    }
    let table = source_table(&topic, &format!(", 'dead-letter.topic' = '{dlq}'")).await;
    let mut source = open(&table);
    let (got, malformed) =
        read(&mut source, 50, good.len(), bad.len(), Duration::from_secs(2)).await;
    assert_eq!(sorted(got), sorted(good), "every good message exactly once");
    let reported: BTreeMap<String, Vec<u8>> = malformed
        .iter()
        .map(|m| (m.location().to_string(), m.record.raw.clone().unwrap_or_default()))
        .collect();
    assert_eq!(reported.len(), malformed.len(), "each bad message reported once: {malformed:?}");
    assert_eq!(reported, bad, "every bad message reported with its bytes");

    // The dead-letter topic holds every bad message with where it came from.
    let mut dead_letter = open_dead_letter(&table.name, "it", &table.connector).unwrap();
    dead_letter.write(&malformed).await.unwrap();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("it.dlq.check"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&dlq, 0, Offset::Beginning).unwrap();
    consumer.assign(&assignment).unwrap();
    let mut dead: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    while dead.len() < bad.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("only {} of {} messages in the dead-letter topic", dead.len(), bad.len())
            })
            .unwrap();
        let header = |name: &str| dead_letter_header(&message, name);
        assert!(!header("error").is_empty());
        let location = dead_letter_location(&message);
        let previous = dead.insert(location, message.payload().unwrap_or_default().to_vec());
        assert!(previous.is_none(), "a bad message was dead-lettered twice");
    }
    assert_eq!(dead, bad);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_position_resumes_exactly_and_commits_reach_the_group() {
    let topic = unique("it.kafka.resume");
    create_topic(&topic, 3).await;
    let expected = produce_ticks(&topic, 3, 600).await;
    let group = unique("it.group");
    let table = source_table(&topic, &format!(", 'properties.group.id' = '{group}'")).await;

    // A first reader takes a few small polls, then "crashes" after checkpointing its position.
    let mut first = open(&table);
    let mut before = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while before.len() < 150 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first reader got only {} rows",
            before.len()
        );
        for part in first.poll(20).await.unwrap().batches {
            before.extend(rows_of(part.partition, &part.batch));
        }
    }
    let position = first.position();
    first.checkpointed(&position).await.unwrap();
    drop(first);

    // A second reader restored from that position reads exactly the rest.
    let mut second = open(&table);
    second.restore(&position).await.unwrap();
    let rest = expected.len() - before.len();
    let (after, _) = read(&mut second, 100, rest, 0, Duration::from_secs(2)).await;
    let mut all = before.clone();
    all.extend(after.clone());
    assert_eq!(all.len(), expected.len(), "nothing read twice across the restore");
    assert_eq!(sorted(all), sorted(expected.clone()));

    // The committed offsets are the group's: 'group-offsets' starts from them too.
    let committed = source_table(
        &topic,
        &format!(", 'properties.group.id' = '{group}', 'scan.startup.mode' = 'group-offsets'"),
    )
    .await;
    let mut third = open(&committed);
    let (from_group, _) = read(&mut third, 100, rest, 0, Duration::from_secs(2)).await;
    assert_eq!(sorted(from_group), sorted(after));
}

/// Against librdkafka's mock cluster: `latest-offset` resolves through the high watermark,
/// which tansu reports wrongly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_offset_skips_what_was_there_before() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = "it.kafka.latest";
    mock.create_topic(topic, 1, 1).unwrap();
    let producer: rdkafka::producer::FutureProducer =
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).create().unwrap();
    let send = |seq: i64| {
        let value = format!(r#"{{"symbol":"S","price":1,"seq":{seq}}}"#);
        let producer = &producer;
        async move {
            let record =
                rdkafka::producer::FutureRecord::to(topic).partition(0).key("S").payload(&value);
            producer.send(record, Duration::from_secs(10)).await.unwrap().offset
        }
    };
    for seq in 0..20 {
        send(seq).await;
    }
    let ddl = ddl_for(topic, &mock.bootstrap_servers(), ", 'scan.startup.mode' = 'latest-offset'");
    let (_dir, pipeline, errors) = plan(&[("ticks.sql", ddl)]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut source = open(table(&pipeline, "ticks"));
    // The first polls assign the partition at its end and find nothing.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(
            source.poll(100).await.unwrap().batches.is_empty(),
            "nothing from before the start"
        );
    }
    let offset = send(99).await;
    assert_eq!(offset, 20);
    let (got, _) = read(&mut source, 100, 1, 0, Duration::from_secs(1)).await;
    assert_eq!(got.iter().map(|r| (r.offset, r.seq)).collect::<Vec<_>>(), [(20, 99)]);
}

#[tokio::test]
async fn option_mistakes_are_reported_at_their_position() {
    let (dir, _, errors) = plan(&[(
        "bad.sql",
        "CREATE TABLE t (a BIGINT, m DOUBLE METADATA FROM 'offset')\nWITH (connector = 'kafka', topic = 't', 'bootstrap.servers' = 'x', 'scan.startup.mode' = 'timestamp');\n\
         CREATE TABLE u (a BIGINT)\nWITH (connector = 'kafka', topic = 't', 'bootstrap.servers' = 'x',\n  'properties.enable.auto.commit' = 'true');\n"
            .to_string(),
    )])
    .await;
    let file = crate::servers::file_in(dir.path(), "bad.sql");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{file}:1:1: "))
            && errors[0].contains("'scan.startup.timestamp-millis'"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!("{file}:5:3: "))
            && errors[1].contains("cannot be overridden"),
        "{}",
        errors[1]
    );
}

/// Against librdkafka's mock cluster, whose high watermarks are exact: the lag is what each
/// partition holds beyond what the source returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_the_high_watermark_minus_what_was_read() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = "it.kafka.lag";
    mock.create_topic(topic, 2, 1).unwrap();
    let producer: rdkafka::producer::FutureProducer =
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).create().unwrap();
    let produced = [30i64, 45];
    for (partition, &count) in produced.iter().enumerate() {
        for seq in 0..count {
            let value = format!(r#"{{"symbol":"S","price":1,"seq":{seq}}}"#);
            let record = rdkafka::producer::FutureRecord::to(topic)
                .partition(partition as i32)
                .key("S")
                .payload(&value);
            producer.send(record, Duration::from_secs(10)).await.unwrap();
        }
    }
    let ddl = ddl_for(topic, &mock.bootstrap_servers(), "");
    let (_dir, pipeline, errors) = plan(&[("ticks.sql", ddl)]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut source = open(table(&pipeline, "ticks"));
    // At most 10 rows per partition per poll: read 20 of each, then look at the lag (read in
    // the background, so poll on until it has arrived).
    let mut read_so_far = [0i64; 2];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while read_so_far.iter().any(|&n| n < 20) || source.lag().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "read only {read_so_far:?}");
        for batch in source.poll(10).await.unwrap().batches {
            read_so_far[batch.partition] += batch.batch.num_rows() as i64;
        }
    }
    let lag: BTreeMap<usize, i64> = source.lag().into_iter().collect();
    let expected: BTreeMap<usize, i64> =
        (0..2).map(|p| (p, produced[p] - read_so_far[p])).collect();
    assert_eq!(lag, expected);
}

/// Against librdkafka's mock cluster (exact high watermarks): a bounded source reads each
/// partition up to its high watermark as it was at the first poll, reports every partition
/// finished exactly once (an empty one too, and one whose last message is malformed), and never
/// returns what was produced after it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_source_ends_at_the_high_watermarks_of_its_start() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = "it.kafka.bounded";
    mock.create_topic(topic, 3, 1).unwrap();
    let producer: rdkafka::producer::FutureProducer =
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).create().unwrap();
    let send = |partition: i32, value: String| {
        let producer = &producer;
        async move {
            let record = rdkafka::producer::FutureRecord::to(topic)
                .partition(partition)
                .key("S")
                .payload(&value);
            producer.send(record, Duration::from_secs(10)).await.unwrap().offset
        }
    };
    let tick = |seq: i64| format!(r#"{{"symbol":"S","price":1,"seq":{seq}}}"#);
    for seq in 0..50 {
        send(0, tick(seq)).await;
    }
    for seq in 50..80 {
        send(1, tick(seq)).await;
    }
    send(1, "not json".to_string()).await;
    let ddl = ddl_for(topic, &mock.bootstrap_servers(), "");
    let (_dir, pipeline, errors) = plan(&[("ticks.sql", ddl)]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut source = open_with(table(&pipeline, "ticks"), true);

    let mut got = vec![];
    let mut finished = vec![];
    let mut malformed = vec![];
    let first = source.poll(7).await.unwrap();
    // Produced after the start: beyond the end of the snapshot.
    for seq in 1000..1010 {
        send(seq as i32 % 3, tick(seq)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut polled = first;
    loop {
        assert_eq!(polled.partitions, 3);
        for part in &polled.batches {
            assert!(part.batch.num_rows() <= 7);
            got.extend(rows_of(part.partition, &part.batch));
        }
        finished.extend(polled.finished.iter().copied());
        malformed.extend(polled.malformed);
        if finished.len() == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "finished only {finished:?}");
        polled = source.poll(7).await.unwrap();
    }
    finished.sort();
    assert_eq!(finished, [0, 1, 2], "every partition finished once");
    assert_eq!(malformed.len(), 1, "{malformed:?}");
    let seqs = |p: i64| got.iter().filter(|r| r.partition == p).map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(0), (0..50).collect::<Vec<_>>(), "partition 0 in offset order");
    assert_eq!(seqs(1), (50..80).collect::<Vec<_>>());
    assert!(seqs(2).is_empty());
    for _ in 0..3 {
        let after = source.poll(7).await.unwrap();
        assert!(after.batches.is_empty() && after.finished.is_empty(), "nothing after the end");
    }
}
