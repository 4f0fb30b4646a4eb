//! Configuration: a TOML file (`--config ingest.toml`) overlaid by environment variables.
//!
//! Precedence: built-in defaults < file < environment (`KAFKA_BROKERS`, `SYMBOLS`, `TOPIC`,
//! `TOPIC_PARTITIONS`, `TWELVEDATA_URL`).
//! The TwelveData API key is never read from the file: only [`ApiKey::from_env`] loads it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backoff::{BackoffPolicy, BackoffPolicyError};

/// Environment variable holding the TwelveData API key.
pub const API_KEY_ENV: &str = "TWELVEDATA_API_KEY";
/// Environment variable overriding `twelvedata.url`.
pub const URL_ENV: &str = "TWELVEDATA_URL";
/// Environment variable overriding `kafka.brokers`.
pub const BROKERS_ENV: &str = "KAFKA_BROKERS";
/// Environment variable overriding `twelvedata.symbols` (comma-separated).
pub const SYMBOLS_ENV: &str = "SYMBOLS";
/// Environment variable overriding `kafka.topic`.
pub const TOPIC_ENV: &str = "TOPIC";
/// Environment variable overriding `kafka.partitions`.
pub const PARTITIONS_ENV: &str = "TOPIC_PARTITIONS";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File that was asked for.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown/mistyped keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// File that was parsed.
        path: PathBuf,
        /// TOML error, with line and column.
        source: toml::de::Error,
    },
    /// A value is missing or out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The backoff section is inconsistent.
    #[error("invalid configuration: twelvedata.backoff: {0}")]
    Backoff(#[from] BackoffPolicyError),
    /// `TWELVEDATA_API_KEY` is unset or empty.
    #[error(
        "{API_KEY_ENV} is not set: export the TwelveData API key (it is never read from the config file)"
    )]
    MissingApiKey,
}

/// Whole `ingest` configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Where price events go.
    pub kafka: KafkaConfig,
    /// The TwelveData WebSocket feed.
    pub twelvedata: TwelveDataConfig,
    /// The HTTP endpoint serving `/metrics`, `/healthz`, `/readyz`.
    pub metrics: MetricsConfig,
}

/// Kafka producer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Topic receiving one message per price event.
    pub topic: String,
    /// When set, the topic is created at start with this many partitions if it does not exist
    /// (replication factor 1 unless `replication` says otherwise).
    pub partitions: Option<i32>,
    /// Replication factor of a topic created because of `partitions`.
    pub replication: i32,
    /// Compression codec: `none`, `gzip`, `snappy` or `lz4`.
    pub compression: Compression,
    /// How long librdkafka keeps retrying one message before it counts as a delivery error.
    #[serde(with = "duration")]
    pub delivery_timeout: Duration,
    /// Extra librdkafka properties (`"linger.ms" = "5"`), applied last.
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: "market.ticks".to_owned(),
            partitions: None,
            replication: 1,
            compression: Compression::Lz4,
            delivery_timeout: Duration::from_secs(120),
            properties: Default::default(),
        }
    }
}

/// Producer compression codecs available in the vendored librdkafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (default).
    Lz4,
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
        }
    }
}

/// TwelveData WebSocket settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwelveDataConfig {
    /// WebSocket endpoint; the API key goes in the `X-TD-APIKEY` header, never here.
    pub url: String,
    /// Symbols to subscribe to: `AAPL`, `EUR/USD`, exchange-qualified `RY:TSX`.
    pub symbols: Vec<String>,
    /// Interval between `{"action":"heartbeat"}` messages.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// A socket that delivers no frame for this long is considered dead and reconnected.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Limit for the TCP + TLS + WebSocket handshake.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Reconnect delays.
    pub backoff: BackoffPolicy,
}

impl Default for TwelveDataConfig {
    fn default() -> Self {
        Self {
            url: "wss://ws.twelvedata.com/v1/quotes/price".to_owned(),
            symbols: Vec::new(),
            heartbeat_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// Metrics endpoint settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 9102)) }
    }
}

impl IngestConfig {
    /// Loads defaults, then `path` if given, then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// Like [`IngestConfig::load`] with an explicit environment lookup (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str(&text)
                    .map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?
            }
            None => Self::default(),
        };
        if let Some(brokers) = env(BROKERS_ENV) {
            config.kafka.brokers = brokers;
        }
        if let Some(topic) = env(TOPIC_ENV) {
            config.kafka.topic = topic;
        }
        if let Some(partitions) = env(PARTITIONS_ENV) {
            config.kafka.partitions = Some(partitions.trim().parse().map_err(|_| {
                ConfigError::Invalid(format!(
                    "{PARTITIONS_ENV} must be a number of partitions, found '{partitions}'"
                ))
            })?);
        }
        if let Some(url) = env(URL_ENV) {
            config.twelvedata.url = url;
        }
        if let Some(symbols) = env(SYMBOLS_ENV) {
            config.twelvedata.symbols = symbols.split(',').map(str::to_owned).collect();
        }
        config.normalize_and_validate()?;
        Ok(config)
    }

    /// `ingest run` needs at least one symbol; the simulator and replay do not.
    pub fn require_symbols(&self) -> Result<(), ConfigError> {
        if self.twelvedata.symbols.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "no symbols configured: set twelvedata.symbols in the file or {SYMBOLS_ENV}=AAPL,EUR/USD"
            )));
        }
        Ok(())
    }

    fn normalize_and_validate(&mut self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        self.kafka.brokers = self.kafka.brokers.trim().to_owned();
        if self.kafka.brokers.is_empty() {
            return invalid(format!(
                "kafka.brokers is empty (set it in the file or {BROKERS_ENV})"
            ));
        }
        self.kafka.topic = self.kafka.topic.trim().to_owned();
        let topic = &self.kafka.topic;
        let topic_ok = !topic.is_empty()
            && topic.len() <= 249
            && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !topic_ok {
            return invalid(format!(
                "kafka.topic {topic:?} is not a valid Kafka topic name (1-249 of [A-Za-z0-9._-])"
            ));
        }
        if self.kafka.partitions.is_some_and(|n| n < 1) || self.kafka.replication < 1 {
            return invalid("kafka.partitions and kafka.replication must be at least 1".to_owned());
        }
        self.twelvedata.symbols = normalize_symbols(&self.twelvedata.symbols)?;
        self.twelvedata.url = self.twelvedata.url.trim().to_owned();
        let td = &self.twelvedata;
        if !(td.url.starts_with("ws://") || td.url.starts_with("wss://")) {
            return invalid(format!(
                "twelvedata.url ({URL_ENV}) {:?} must start with ws:// or wss://",
                td.url
            ));
        }
        if td.url.to_ascii_lowercase().contains("apikey=") {
            return invalid(format!(
                "twelvedata.url ({URL_ENV}) must not carry the API key; set {API_KEY_ENV} instead"
            ));
        }
        for (name, value) in [
            ("heartbeat_interval", td.heartbeat_interval),
            ("idle_timeout", td.idle_timeout),
            ("connect_timeout", td.connect_timeout),
        ] {
            if value.is_zero() {
                return invalid(format!("twelvedata.{name} must be greater than zero"));
            }
        }
        if td.idle_timeout <= td.heartbeat_interval {
            return invalid(format!(
                "twelvedata.idle_timeout ({:?}) must be longer than heartbeat_interval ({:?})",
                td.idle_timeout, td.heartbeat_interval
            ));
        }
        td.backoff.validate()?;
        Ok(())
    }
}

/// Trims, upper-cases and de-duplicates symbols; rejects symbols that cannot be sent in TwelveData's comma-separated subscribe format.
pub fn normalize_symbols(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for symbol in raw {
        let symbol = symbol.trim().to_ascii_uppercase();
        if symbol.is_empty() {
            continue;
        }
        let ok = symbol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b':' | b'.' | b'-' | b'_'));
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "symbol {symbol:?} has characters TwelveData symbols never use"
            )));
        }
        if !out.contains(&symbol) {
            out.push(symbol);
        }
    }
    Ok(out)
}

/// The TwelveData API key; its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Reads `TWELVEDATA_API_KEY`.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var(API_KEY_ENV) {
            Ok(key) if !key.trim().is_empty() => Ok(Self(key.trim().to_owned())),
            _ => Err(ConfigError::MissingApiKey),
        }
    }

    /// The secret itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Serde helpers for humantime durations (`"10s"`, `"500ms"`).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes a humantime string such as `"1m 30s"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: {e} (examples: \"10s\", \"500ms\")"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn file_values_and_env_overrides() {
        let f = file(
            r#"
            [kafka]
            brokers = "k1:9092"
            compression = "gzip"
            [twelvedata]
            symbols = ["aapl", "EUR/USD", "AAPL", "RY:TSX"]
            heartbeat_interval = "5s"
            [twelvedata.backoff]
            initial = "100ms"
            "#,
        );
        let c = IngestConfig::load_with_env(Some(f.path()), no_env).unwrap();
        assert_eq!(c.kafka.brokers, "k1:9092");
        assert_eq!(c.kafka.topic, "market.ticks");
        assert_eq!(c.kafka.compression, Compression::Gzip);
        assert_eq!(c.twelvedata.symbols, ["AAPL", "EUR/USD", "RY:TSX"]);
        assert_eq!(c.twelvedata.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.twelvedata.backoff.initial, Duration::from_millis(100));
        assert_eq!(c.twelvedata.backoff.max, Duration::from_secs(60));

        let env = |name: &str| match name {
            BROKERS_ENV => Some("k2:9093".to_owned()),
            SYMBOLS_ENV => Some("BTC/USD, MSFT".to_owned()),
            TOPIC_ENV => Some("ticks.test".to_owned()),
            URL_ENV => Some(" ws://127.0.0.1:8080/v1/quotes/price ".to_owned()),
            _ => None,
        };
        let c = IngestConfig::load_with_env(Some(f.path()), env).unwrap();
        assert_eq!(c.twelvedata.url, "ws://127.0.0.1:8080/v1/quotes/price");
        assert_eq!(c.kafka.brokers, "k2:9093");
        assert_eq!(c.kafka.topic, "ticks.test");
        assert_eq!(c.twelvedata.symbols, ["BTC/USD", "MSFT"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_location() {
        let f = file("[kafka]\nbroker = \"x\"\n");
        let err = IngestConfig::load_with_env(Some(f.path()), no_env).unwrap_err().to_string();
        assert!(err.contains("unknown field `broker`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn the_api_key_cannot_come_from_the_file() {
        let f = file("[twelvedata]\napi_key = \"secret\"\nsymbols = [\"AAPL\"]\n");
        let err = IngestConfig::load_with_env(Some(f.path()), no_env).unwrap_err();
        assert!(err.to_string().contains("unknown field `api_key`"), "{err}");
        let f = file(
            "[twelvedata]\nurl = \"wss://x/v1/quotes/price?apikey=secret\"\nsymbols = [\"AAPL\"]\n",
        );
        let err = IngestConfig::load_with_env(Some(f.path()), no_env).unwrap_err();
        assert!(err.to_string().contains(API_KEY_ENV), "{err}");
        let env = |name: &str| match name {
            URL_ENV => Some("wss://x/v1/quotes/price?ApiKey=secret".to_owned()),
            SYMBOLS_ENV => Some("AAPL".to_owned()),
            _ => None,
        };
        let err = IngestConfig::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains(API_KEY_ENV) && !err.contains("secret"), "{err}");
        let env = |name: &str| (name == URL_ENV).then(|| "https://x/".to_owned());
        let err = IngestConfig::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("TWELVEDATA_URL") && err.contains("ws://"), "{err}");
    }

    #[test]
    fn clear_errors_for_missing_or_malformed_values() {
        let c = IngestConfig::load_with_env(None, no_env).unwrap();
        let err = c.require_symbols().unwrap_err().to_string();
        assert!(err.contains("no symbols configured"), "{err}");
        let f = file("[twelvedata]\nsymbols=[\"AAPL\"]\nheartbeat_interval = \"ten seconds\"\n");
        let err = IngestConfig::load_with_env(Some(f.path()), no_env).unwrap_err().to_string();
        assert!(err.contains("invalid duration"), "{err}");
        let env = |name: &str| (name == SYMBOLS_ENV).then(|| "AAPL,\"X\"".to_owned());
        let err = IngestConfig::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("characters"), "{err}");
        let env = |name: &str| match name {
            SYMBOLS_ENV => Some("AAPL".to_owned()),
            TOPIC_ENV => Some("bad topic".to_owned()),
            _ => None,
        };
        let err = IngestConfig::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("valid Kafka topic"), "{err}");
        let err = IngestConfig::load_with_env(Some(Path::new("/nonexistent/ingest.toml")), no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read config file"), "{err}");
    }

    #[test]
    fn api_key_is_redacted() {
        let key = ApiKey::new("super-secret");
        assert!(!format!("{key:?}").contains("super-secret"));
        assert_eq!(key.expose(), "super-secret");
    }
}
