//! End to end against the real Kafka-protocol broker from scripts/test-env.sh (tansu).
//!
//! tansu's high watermarks are wrong, so these tests never ask "caught up?": they count the messages
//! they expect, then keep reading for a quiet period to catch duplicates.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ingest::config::{ApiKey, IngestConfig, KafkaConfig};
use ingest::metrics::Health;
use ingest::producer::TickProducer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::client::config as ws_config;
use crate::fake_twelvedata::{FakeTwelveData, price, subscribe_status};

const PARTITIONS: i32 = 3;

/// The broker address; the integration tests refuse to run without one.
pub fn brokers() -> String {
    std::env::var("MDSP_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "MDSP_KAFKA_BROKERS is not set: start the test broker with `scripts/test-env.sh start` \
             and run `eval \"$(scripts/test-env.sh env)\"` before `cargo test -p ingest`"
        )
    })
}

pub fn unique_topic(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("ingest-it.{name}.{}.{nanos}", std::process::id())
}

async fn create_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics failed");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// Reads every partition from the beginning until `expected` messages arrived (panics after 60 s),
/// then for `quiet` more to catch extras. Returns (key, value) pairs.
async fn consume(
    brokers: &str,
    topic: &str,
    expected: usize,
    quiet: Duration,
) -> Vec<(String, String)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}.check"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < expected {
        let msg = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("only {} of {expected} messages arrived in {topic}", got.len())
            })
            .unwrap();
        got.push(owned(&msg));
    }
    while let Ok(msg) = tokio::time::timeout(quiet, consumer.recv()).await {
        got.push(owned(&msg.unwrap()));
    }
    got
}

fn owned(msg: &rdkafka::message::BorrowedMessage<'_>) -> (String, String) {
    let key = String::from_utf8(msg.key().expect("message has a key").to_vec()).unwrap();
    let value = String::from_utf8(msg.payload().expect("message has a value").to_vec()).unwrap();
    (key, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_price_event_arrives_in_kafka_exactly_once_across_a_reconnect() {
    let brokers = brokers();
    let topic = unique_topic("ticks");
    create_topic(&brokers, &topic).await;
    let mut server = FakeTwelveData::start().await;
    let symbols = ["AAPL", "MSFT", "BTC/USD"];
    let capture = tempfile::NamedTempFile::new().unwrap();

    let config = IngestConfig {
        kafka: KafkaConfig {
            brokers: brokers.clone(),
            topic: topic.clone(),
            ..KafkaConfig::default()
        },
        twelvedata: ws_config(&server.url, &symbols),
        ..IngestConfig::default()
    };
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let record = capture.path().to_owned();
    let running = tokio::spawn(async move {
        ingest::run::run(
            &config,
            ApiKey::new("test-key"),
            Some(&record),
            Arc::new(Health::default()),
            &token,
        )
        .await
    });

    let mut sent = Vec::new();
    let mut n = 0;
    for session in 0..2 {
        let mut conn = server.next_connection(Duration::from_secs(10)).await;
        assert_eq!(conn.expect_subscribe().await, symbols);
        conn.send(&subscribe_status(&symbols, &[])).await;
        for _ in 0..150 {
            let symbol = symbols[n % symbols.len()];
            let frame = price(symbol, n as u64);
            conn.send(&frame).await;
            sent.push((symbol.to_owned(), frame));
            n += 1;
        }
        if session == 0 {
            // Garbage in between must not disturb the count.
            conn.send("{\"event\":\"price\"").await;
            conn.drop_connection();
        } else {
            let got = consume(&brokers, &topic, sent.len(), Duration::from_secs(3)).await;
            let mut counts: BTreeMap<&(String, String), usize> = BTreeMap::new();
            for m in &got {
                *counts.entry(m).or_default() += 1;
            }
            let dupes: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
            assert!(dupes.is_empty(), "duplicated in Kafka: {dupes:?}");
            assert_eq!(got.len(), sent.len(), "messages in Kafka vs sent by the fake server");
            for s in &sent {
                assert_eq!(counts.get(s), Some(&1), "missing from Kafka: {s:?}");
            }
        }
    }

    shutdown.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("run did not stop after shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(summary.delivered, 300);
    assert_eq!(summary.delivery_errors, 0);
    // One drop by the fake server; a handshake timing out on a loaded machine may add attempts.
    assert!(summary.client.reconnects >= 1, "{summary:?}");
    assert_eq!(summary.client.malformed, 1);

    let recorded = std::fs::read_to_string(capture.path()).unwrap();
    let lines: Vec<&str> = recorded.lines().collect();
    let expected: Vec<&str> = sent.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(lines, expected, "the capture holds every price event, in order");
}

#[tokio::test]
async fn delivery_failures_are_retried_then_counted() {
    // Nothing listens on port 9 of localhost: librdkafka retries until the delivery timeout.
    let producer = Arc::new(
        TickProducer::new(&KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            topic: "never.delivered".into(),
            delivery_timeout: Duration::from_millis(1500),
            ..KafkaConfig::default()
        })
        .unwrap(),
    );
    for i in 0..3 {
        producer.send("AAPL", price("AAPL", i).as_bytes()).await.unwrap();
    }
    let flushed = producer.flush_async(Duration::from_secs(20)).await;
    assert!(flushed.is_ok(), "failed messages still complete the flush: {flushed:?}");
    assert_eq!(producer.stats().failed(), 3);
    assert_eq!(producer.stats().delivered(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_command_creates_its_topic_and_produces_keyed_events_into_kafka() {
    let brokers = brokers();
    let topic = unique_topic("simulate");
    // TOPIC_PARTITIONS creates the missing topic; a second run finds it and leaves it as is.
    let simulate = |count: &str| {
        Command::new(env!("CARGO_BIN_EXE_ingest"))
            .args(["simulate", "--symbols", "5", "--rate", "1000", "--count", count])
            .args(["--seed", "9", "--start", "2024-05-01T13:30:00Z", "--unthrottled"])
            .args(["--output", "kafka"])
            .env("KAFKA_BROKERS", &brokers)
            .env("TOPIC", &topic)
            .env("TOPIC_PARTITIONS", PARTITIONS.to_string())
            .output()
            .unwrap()
    };
    for count in ["2000", "10"] {
        let output = simulate(count);
        assert!(
            output.status.success(),
            "simulate failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let got = consume(&brokers, &topic, 2010, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 2010);
    for (key, value) in &got {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(v["symbol"], key.as_str());
        assert_eq!(v["event"], "price");
    }
    let consumer: StreamConsumer =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), PARTITIONS as usize);
}

/// Benchmark, not a check: `ingest run` from WebSocket frame to produce call, and its produce rate.
/// `cargo test -p ingest --test it -- --ignored --nocapture bench_` (a debug build gives an upper bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_frame_to_produce_latency() {
    const FRAMES: usize = 50_000;
    let brokers = brokers();
    let topic = unique_topic("bench");
    create_topic(&brokers, &topic).await;
    let mut server = FakeTwelveData::start().await;
    let health = Arc::new(Health::default());
    let shutdown = CancellationToken::new();
    let metrics_addr = ingest::metrics::serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&health),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let config = IngestConfig {
        kafka: KafkaConfig {
            brokers: brokers.clone(),
            topic: topic.clone(),
            ..KafkaConfig::default()
        },
        twelvedata: ws_config(&server.url, &["AAPL", "MSFT"]),
        ..IngestConfig::default()
    };
    let token = shutdown.clone();
    let running = tokio::spawn(async move {
        ingest::run::run(&config, ApiKey::new("k"), None, health, &token).await
    });
    let mut conn = server.next_connection(Duration::from_secs(10)).await;
    conn.expect_subscribe().await;
    let started = tokio::time::Instant::now();
    for n in 0..FRAMES {
        conn.send(&price(if n % 2 == 0 { "AAPL" } else { "MSFT" }, n as u64)).await;
        // About 10,000 frames/s, in bursts of 100 every 10 ms.
        if n % 100 == 99 {
            tokio::time::sleep_until(started + Duration::from_millis(n as u64 / 10)).await;
        }
    }
    let got = consume(&brokers, &topic, FRAMES, Duration::from_secs(1)).await;
    assert_eq!(got.len(), FRAMES);
    let mut tcp = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    for line in body.lines().filter(|l| l.starts_with("ingest_frame_to_produce_seconds")) {
        println!("{line}");
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
