//! The real test servers started by `scripts/test-env.sh` (tansu and the kassandra CQL server),
//! and helpers to set up topics, keyspaces and query directories on them.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine::catalog::TableDef;
use engine::planner::{Pipeline, PipelineOptions};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: start the test servers with `scripts/test-env.sh start` and run \
             `eval \"$(scripts/test-env.sh env)\"` before `cargo test -p engine`"
        )
    })
}

/// The Kafka broker (`MDSP_KAFKA_BROKERS`).
pub fn brokers() -> String {
    required("MDSP_KAFKA_BROKERS")
}

/// The CQL server (`MDSP_CQL_HOSTS`).
pub fn cql_hosts() -> String {
    required("MDSP_CQL_HOSTS")
}

/// A name no other test run uses: `prefix_<pid>_<nanos>`.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics failed");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// An idempotent producer.
pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .create()
        .unwrap()
}

/// Produces one message to a given partition; returns its offset.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    value: &[u8],
    timestamp: i64,
) -> i64 {
    let record =
        FutureRecord::to(topic).partition(partition).key(key).payload(value).timestamp(timestamp);
    let delivery = producer.send(record, Duration::from_secs(30)).await;
    let delivered =
        delivery.unwrap_or_else(|(e, _)| panic!("produce to {topic}/{partition} failed: {e}"));
    assert_eq!(delivered.partition, partition);
    delivered.offset
}

/// Produces every `(partition, key, value, timestamp)` at once (in order per partition, the
/// producer being idempotent); returns their offsets.
pub async fn produce_all(topic: &str, messages: &[(i32, String, Vec<u8>, i64)]) -> Vec<i64> {
    let producer = producer();
    let sends = messages.iter().map(|(partition, key, value, timestamp)| {
        let record = FutureRecord::to(topic)
            .partition(*partition)
            .key(key.as_str())
            .payload(value.as_slice())
            .timestamp(*timestamp);
        producer.send(record, Duration::from_secs(30))
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|d| d.unwrap_or_else(|(e, _)| panic!("produce to {topic} failed: {e}")).offset)
        .collect()
}

/// A session on the CQL server.
pub async fn cql_session() -> Session {
    SessionBuilder::new()
        .known_node(cql_hosts())
        .auto_await_schema_agreement(false)
        .build()
        .await
        .expect("cannot connect to the CQL server")
}

/// Creates a keyspace named `unique(prefix)` and returns its name.
pub async fn create_keyspace(session: &Session, prefix: &str) -> String {
    let keyspace = unique(prefix);
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            (),
        )
        .await
        .expect("CREATE KEYSPACE failed");
    keyspace
}

/// Runs DDL.
pub async fn cql(session: &Session, statement: &str) {
    session.query_unpaged(statement, ()).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Writes `files` (name, text) into a fresh directory and plans it.
pub async fn plan(files: &[(&str, String)]) -> (tempfile::TempDir, Pipeline, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let (pipeline, errors) = engine::runtime::load::load_and_plan(
        dir.path(),
        &|_| None,
        &PipelineOptions::default(),
        &engine::catalog::SchemaSource::default(),
    )
    .await;
    let errors = errors.iter().map(ToString::to_string).collect();
    (dir, pipeline, errors)
}

/// The declared table `name` of a planned pipeline.
pub fn table<'a>(pipeline: &'a Pipeline, name: &str) -> &'a TableDef {
    pipeline.tables.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no table {name}"))
}

/// The path of `name` in `dir`, as error messages print it.
pub fn file_in(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// The shipped schema (`cql/`) applied by the engine's own `apply_schema` into a keyspace of
/// its own (`market` renamed), so tests do not share rows; returns the keyspace.
pub async fn shipped_schema(prefix: &str) -> String {
    let keyspace = unique(prefix);
    let dir = shipped_cql(&keyspace, |text| text);
    let hosts: Vec<String> = cql_hosts().split(',').map(str::to_string).collect();
    engine::connector::cassandra::schema::apply_schema(dir.path(), &hosts, Duration::from_secs(30))
        .await
        .unwrap();
    keyspace
}

/// A copy of the shipped `cql/` files with keyspace `market` renamed to `keyspace` and each
/// file's text passed through `edit`.
pub fn shipped_cql(keyspace: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cql = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cql");
    for entry in std::fs::read_dir(&cql).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cql") {
            let text = std::fs::read_to_string(&path).unwrap();
            let renamed = text
                .replace(
                    "KEYSPACE IF NOT EXISTS market ",
                    &format!("KEYSPACE IF NOT EXISTS {keyspace} "),
                )
                .replace("market.", &format!("{keyspace}."));
            std::fs::write(dir.path().join(path.file_name().unwrap()), edit(renamed)).unwrap();
        }
    }
    dir
}

/// The environment that points the shipped queries at the test servers: `topic` for the
/// ticks, `keyspace` for the sinks.
pub fn shipped_env(topic: &str, keyspace: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BROKERS", brokers()),
        ("TICKS_TOPIC", topic.to_string()),
        ("TICKS_DEAD_LETTER_TOPIC", format!("{topic}.dead-letter")),
        ("CASSANDRA_HOSTS", cql_hosts()),
        ("CASSANDRA_KEYSPACE", keyspace.to_string()),
    ]
}

/// Header `name` of a message in a dead-letter topic, as text; panics when it is missing.
pub fn dead_letter_header(message: &impl rdkafka::Message, name: &str) -> String {
    use rdkafka::message::Headers;
    let headers = message.headers().expect("dead letters carry headers");
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .unwrap_or_else(|| panic!("no header {name}"))
}

/// Where a dead letter's record was read, `topic/partition/offset`, from its headers.
pub fn dead_letter_location(message: &impl rdkafka::Message) -> String {
    let header = |name: &str| dead_letter_header(message, name);
    format!("{}/{}/{}", header("source.topic"), header("source.partition"), header("source.offset"))
}
