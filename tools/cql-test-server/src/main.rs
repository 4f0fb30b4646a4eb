//! Dev-only CQL test server: the in-memory `kassandra` engine behind a CQL v4 listener.
//!
//! `cql-test-server [ADDR]` (default `127.0.0.1:9042`) serves one shared in-memory database to
//! every connection until killed. It exists for the integration tests (`scripts/test-env.sh`);
//! nothing is persisted. What kassandra does not implement is listed in docs/testing.md.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use kassandra::KassandraSession;
use kassandra::frame::request::Request;
use kassandra::frame::response::Response;
use kassandra::frame::response::supported::Supported;
use kassandra::frame::{request_stream, response_sink};
use tokio::net::{TcpListener, TcpStream};

type Shared = Arc<Mutex<KassandraSession>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9042".to_string());
    let listener = match TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cql-test-server: cannot listen on {addr}: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(local) => println!("cql-test-server: listening on {local}"),
        Err(err) => eprintln!("cql-test-server: listening on {addr} ({err})"),
    }
    let session: Shared = Arc::new(Mutex::new(KassandraSession::new()));
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let session = Arc::clone(&session);
                tokio::spawn(async move {
                    if let Err(err) = serve(socket, session).await {
                        eprintln!("cql-test-server: connection {peer}: {err}");
                    }
                });
            }
            Err(err) => eprintln!("cql-test-server: accept failed: {err}"),
        }
    }
}

/// Answers one connection's requests in order until it closes.
async fn serve(socket: TcpStream, session: Shared) -> Result<(), String> {
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    let (reader, writer) = socket.into_split();
    let mut requests = request_stream(reader);
    let mut responses = response_sink(writer);
    while let Some(frame) = requests.next().await {
        let (params, opcode, body) = frame.map_err(|e| format!("bad frame: {e}"))?;
        let response = match Request::deserialize(opcode, &body, params.flags) {
            Err(err) => Response::Error(err),
            Ok(request) => answer(request, &session),
        };
        responses.send((response, params.stream)).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn answer(request: Request<'_>, session: &Shared) -> Response {
    let Ok(mut session) = session.lock() else {
        // A panic while executing an earlier request poisoned the database: stop serving.
        std::process::exit(70);
    };
    let result = match request {
        Request::StartUp(_) | Request::Register { .. } | Request::AuthResponse => {
            return Response::Ready;
        }
        Request::Options => {
            let options = HashMap::from([
                ("CQL_VERSION".to_string(), vec!["3.4.5".to_string()]),
                ("COMPRESSION".to_string(), vec![]),
                ("PROTOCOL_VERSIONS".to_string(), vec!["4/v4".to_string()]),
            ]);
            return Response::Supported(Supported { options });
        }
        Request::Query(query) => session.process(query),
        Request::Prepare(query) => session.prepare(query),
        Request::Execute(execute) => session.execute(execute),
        Request::Batch(batch) => session.process_batch(batch),
    };
    match result {
        Ok(result) => Response::Result(result),
        Err(err) => Response::Error(err),
    }
}
