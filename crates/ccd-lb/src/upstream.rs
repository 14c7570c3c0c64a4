//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! A backend owns one [`UpstreamPool`] at a time. Draining a backend (capacity 0, or removal)
//! retires its pool: idle connections are dropped at once, connections carrying in-flight
//! requests are not checked back in when those finish, and after the draining timeout every
//! connection still open is aborted. A fresh pool takes its place for any later traffic.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Sends requests on one upstream connection.
pub(crate) type UpstreamSender = http1::SendRequest<Incoming>;

/// Idle connections kept per backend; more than this are closed when they come back.
const MAX_IDLE_CONNECTIONS: usize = 1024;

/// Idle connections older than this are not reused: backends commonly close keep-alive
/// connections after 60 s or more, and a request sent just as they do would fail.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Why a new upstream connection could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection policy denies it")]
    Denied,
    #[error("connect timed out")]
    Timeout,
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    #[error("connection closed before the request could be sent")]
    Closed,
    #[error("HTTP/1.1 handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
}

#[derive(Debug)]
struct IdleConnection {
    sender: UpstreamSender,
    since: Instant,
}

/// The connections of one backend for as long as it is not drained.
#[derive(Debug, Default)]
pub(crate) struct UpstreamPool {
    idle: Mutex<Vec<IdleConnection>>,
    /// Tasks driving the connections, so that draining can abort them at its deadline.
    connections: Mutex<JoinSet<()>>,
    retired: AtomicBool,
}

impl UpstreamPool {
    /// The most recently used live idle connection, if any (most recent first: it is the
    /// least likely to have been closed by the backend).
    pub(crate) fn checkout(&self) -> Option<UpstreamSender> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(connection) = idle.pop() {
            if !connection.sender.is_closed() && now - connection.since < IDLE_TIMEOUT {
                return Some(connection.sender);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end.
    pub(crate) fn checkin(&self, sender: UpstreamSender) {
        if self.retired.load(Ordering::Acquire) || sender.is_closed() {
            return;
        }
        let since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Checked again under the lock so that `retire` cannot miss a connection.
        if idle.len() < MAX_IDLE_CONNECTIONS && !self.retired.load(Ordering::Acquire) {
            idle.push(IdleConnection { sender, since });
        }
    }

    /// Opens a new connection; the caller has already asked the connection policy.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<UpstreamSender, ConnectError> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_elapsed| ConnectError::Timeout)??;
        // Requests and responses are small and latency matters more than segment count.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Reap finished tasks so the set only holds live connections.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Stops reusing connections: idle ones close now, busy ones when their request ends.
    /// After `draining_timeout`, connections still busy are aborted.
    pub(crate) fn retire(self: std::sync::Arc<Self>, draining_timeout: Duration) {
        self.retired.store(true, Ordering::Release);
        let idle = std::mem::take(
            &mut *self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        drop(idle);
        let busy = self.busy_connections();
        if busy == 0 {
            return;
        }
        tracing::debug!(busy, ?draining_timeout, "draining upstream connections");
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(draining_timeout).await;
                    let mut connections = self
                        .connections
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    while connections.try_join_next().is_some() {}
                    if !connections.is_empty() {
                        tracing::info!(
                            aborted = connections.len(),
                            "draining timeout reached; aborting upstream connections"
                        );
                        connections.abort_all();
                    }
                });
            }
            // Without a runtime there is no timer: let in-flight requests run to completion.
            Err(_) => tracing::warn!("no Tokio runtime; draining without a deadline"),
        }
    }

    fn busy_connections(&self) -> usize {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while connections.try_join_next().is_some() {}
        connections.len()
    }
}
