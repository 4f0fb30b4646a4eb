//! The in-memory `kassandra` engine behind a CQL v4 listener.
//!
//! [`CqlServer`] serves one shared in-memory database to every connection until its shutdown
//! token is cancelled. Two users: the `cql-test-server` binary (the integration tests' CQL
//! server, `scripts/test-env.sh`) and the engine's `demo`, which embeds it on 127.0.0.1. Nothing
//! is persisted. What kassandra does not implement is listed in docs/testing.md.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use kassandra::KassandraSession;
use kassandra::error::DbError;
use kassandra::frame::request::Request;
use kassandra::frame::response::Response;
use kassandra::frame::response::error::Error;
use kassandra::frame::response::supported::Supported;
use kassandra::frame::{request_stream, response_sink};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::sync::CancellationToken;

type Shared = Arc<Mutex<KassandraSession>>;

/// A bound CQL server with an empty database.
#[derive(Debug)]
pub struct CqlServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl CqlServer {
    /// Listens on `addr` (port 0 picks a free port; see [`CqlServer::local_addr`]).
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self { listener, local_addr })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts and answers connections until `shutdown` is cancelled, then closes them all.
    pub async fn serve(self, shutdown: CancellationToken) {
        let session: Shared = Arc::new(Mutex::new(KassandraSession::new()));
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((socket, peer)) => {
                    let session = Arc::clone(&session);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            served = serve_connection(socket, session) => if let Err(err) = served {
                                // Drivers drop probe connections abruptly: nothing to warn about.
                                tracing::debug!(%peer, error = %err, "CQL connection ended");
                            },
                        }
                    });
                }
                Err(err) => tracing::warn!(error = %err, "CQL server: accept failed"),
            }
            // Forget connections that ended, so that a long run does not accumulate them.
            while connections.try_join_next().is_some() {}
        }
        connections.join_all().await;
    }
}

/// Answers one connection's requests in order until it closes.
async fn serve_connection(socket: TcpStream, session: Shared) -> Result<(), String> {
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
        // A panic while executing an earlier request may have left the database half-changed:
        // refuse everything from then on rather than serve it.
        return Response::Error(Error::new(
            DbError::ServerError,
            "the in-memory database failed while executing an earlier request",
        ));
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
