//! The engine's integration tests, one binary. Streaming results are checked against DataFusion
//! in batch mode over the same input; connector tests talk to the real test servers
//! (`scripts/test-env.sh start`; `MDSP_KAFKA_BROKERS` and `MDSP_CQL_HOSTS` must be set, the
//! tests fail loudly otherwise).

mod bench;
mod cassandra;
mod cli;
mod crash;
#[cfg(feature = "demo")]
mod demo;
mod docs;
mod end_to_end;
mod errors;
mod flat_json;
mod golden;
mod harness;
mod health;
mod kafka;
mod layers;
mod offline_check;
mod oracle;
mod outage;
mod poison;
mod reload;
mod repl;
mod scale_out;
mod schema;
mod servers;
mod shipped;
mod window_offset;
