//! Integration tests of the `ingest` crate, in one binary.
//!
//! The Kafka tests need the test broker: `scripts/test-env.sh start` and
//! `eval "$(scripts/test-env.sh env)"` (sets `MDSP_KAFKA_BROKERS`). Without it they fail, never skip.

mod cli;
mod client;
mod fake_twelvedata;
mod kafka;
mod metrics;
mod secrets;
mod simulate;
