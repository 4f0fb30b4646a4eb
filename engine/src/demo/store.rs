//! The demo's CQL store: the in-memory kassandra server of `tools/cql-test-server`, served on
//! 127.0.0.1 in this process, so the Cassandra sink reaches it through the scylla driver like
//! any Cassandra node.

use std::net::{Ipv4Addr, SocketAddr};

use cql_test_server::CqlServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{EngineError, Result};

/// A CQL server running on a task of this process.
#[derive(Debug)]
pub struct EmbeddedStore {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl EmbeddedStore {
    /// Serves an empty database on `127.0.0.1:port` (0: any free port).
    pub async fn start(port: u16) -> Result<Self> {
        let server = CqlServer::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| EngineError::io(format!("cannot serve CQL on 127.0.0.1:{port}"), e))?;
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.serve(shutdown.clone()));
        Ok(Self { addr, shutdown, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every connection; the data is gone.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "the CQL store did not stop cleanly");
        }
    }
}
