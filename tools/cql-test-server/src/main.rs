//! Dev-only CQL test server: `cql-test-server [ADDR]` (default `127.0.0.1:9042`) serves the
//! in-memory `kassandra` engine ([`cql_test_server::CqlServer`]) until killed. It exists for the
//! integration tests (`scripts/test-env.sh`); nothing is persisted.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use cql_test_server::CqlServer;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9042".to_string());
    let server = match CqlServer::bind(&addr).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("cql-test-server: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("cql-test-server: listening on {}", server.local_addr());
    server.serve(CancellationToken::new()).await;
    ExitCode::SUCCESS
}
