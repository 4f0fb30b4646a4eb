//! The CQL server unreachable for 20 s in the middle of the stream: the engine retries with
//! backoff, commits no offset while its writes fail, and resumes on its own when the server
//! returns; the table then equals the oracle (nothing lost, nothing counted twice).
//!
//! The in-memory CQL server would lose its tables if stopped, so the outage is a network one:
//! the engine reaches the server through a TCP proxy that cuts every connection and refuses new
//! ones while down.

use std::time::Duration;

use engine::checkpoint::CheckpointStore;
use engine::runtime::QueryRunner;
use engine::telemetry::health::Readiness;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::end_to_end::{candles_setup, read_back, ticks};
use crate::servers::{brokers, cql_hosts, plan, produce_all};

/// Forwards TCP connections to a target while up.
struct Proxy {
    addr: String,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (up, _) = watch::channel(true);
        let state = up.subscribe();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let mut state = state.clone();
                if !*state.borrow() {
                    continue; // dropped: the connection is closed at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The offsets committed to `group` for partitions 0..3 of `topic` (-1: none).
async fn committed(topic: &str, group: &str) -> Vec<i64> {
    let (topic, group) = (topic.to_string(), group.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", &group)
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for partition in 0..3 {
            list.add_partition(&topic, partition);
        }
        let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
        // Plain values before the consumer is dropped (a live list makes the drop hang).
        let offsets = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            })
            .collect();
        drop(committed);
        offsets
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cql_outage_of_20_s_loses_nothing_counts_nothing_twice_and_commits_nothing() {
    let proxy = Proxy::start(cql_hosts()).await;
    let setup = candles_setup("outage", &proxy.addr).await;
    let ticks = ticks();
    let (first, second) = ticks.split_at(ticks.len() / 2);
    produce_all(&setup.topic, first).await;

    let (_dir, mut pipeline, errors) = plan(&[("candles.sql", setup.sql.clone())]).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut query = pipeline.queries.remove(0);
    query.options.trigger_interval = Duration::from_millis(200);
    let state = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(state.path(), "candles").unwrap();
    let runner = QueryRunner::new(query, false).await.unwrap();
    let readiness = Readiness::default();
    readiness.set(true);
    let runner = runner.with_checkpoints(store).await.unwrap().reporting_to(readiness.clone());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let group = format!("{}.engine", setup.topic);

    // Wait for the first half to be written and committed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while committed(&setup.topic, &group).await.iter().sum::<i64>() < first.len() as i64 {
        assert!(tokio::time::Instant::now() < deadline, "the first half was never committed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = read_back(&setup.session, &setup.keyspace).await;
    assert!(!before.is_empty() && before != setup.expected);

    // The outage: the second half arrives while no write can succeed.
    proxy.set_up(false);
    produce_all(&setup.topic, second).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_start = committed(&setup.topic, &group).await;
    tokio::time::sleep(Duration::from_secs(18)).await;
    let at_end = committed(&setup.topic, &group).await;
    assert_eq!(at_start, at_end, "offsets were committed while Cassandra was unreachable");
    assert!(at_end.iter().sum::<i64>() < ticks.len() as i64);
    assert_eq!(
        read_back(&setup.session, &setup.keyspace).await,
        before,
        "rows changed during the outage: the engine did not go through the proxy"
    );
    assert!(!running.is_finished(), "the query gave up during the outage");
    let (ready, status) = readiness.status();
    assert!(!ready, "ready during the outage: {status}");
    assert!(status.contains("query candles: retrying (transient error)"), "{status}");

    // The server returns: the engine resumes by itself.
    proxy.set_up(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut got = vec![];
    while tokio::time::Instant::now() < deadline {
        got = read_back(&setup.session, &setup.keyspace).await;
        if got == setup.expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(got, setup.expected, "after the outage, Cassandra differs from the oracle");
    let (ready, status) = readiness.status();
    assert!(ready, "not ready after the outage: {status}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while committed(&setup.topic, &group).await.iter().sum::<i64>() < ticks.len() as i64 {
        assert!(tokio::time::Instant::now() < deadline, "the offsets never caught up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("the query did not stop")
        .unwrap()
        .unwrap();
}
