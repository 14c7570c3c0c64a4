//! Keep-alive HTTP/1.1 connections to one backend.
//!
//! Idle connections are kept per thread: a frontend worker reuses only the connections it
//! opened, whose tasks run on its own single-threaded runtime, so that a request and its
//! upstream connection never wait on each other across threads.
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

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::request_body::RequestBody;
use crate::shard::{Sharded, thread_key};

/// Sends requests on one upstream connection.
pub(crate) type UpstreamSender = http1::SendRequest<RequestBody>;

/// Idle connections kept per backend and thread; more than this are closed when they come back.
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

/// The idle connections opened by one thread, most recently used last.
#[derive(Debug)]
struct ThreadIdle {
    thread: u64,
    connections: Vec<IdleConnection>,
}

/// The connections of one backend for as long as it is not drained.
#[derive(Debug)]
pub(crate) struct UpstreamPool {
    /// Tells this pool from its predecessors and successors at the same backend.
    epoch: u64,
    /// One entry per thread that has used the pool, sharded by thread so that workers do not
    /// contend for one lock.
    idle: Sharded<Mutex<Vec<ThreadIdle>>>,
    /// Tasks driving the connections, so that draining can abort them at its deadline.
    connections: Mutex<JoinSet<()>>,
    retired: AtomicBool,
}

impl UpstreamPool {
    pub(crate) fn new(epoch: u64) -> Self {
        Self {
            epoch,
            idle: Sharded::default(),
            connections: Mutex::default(),
            retired: AtomicBool::new(false),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The calling thread's most recently used live idle connection, if any (most recent
    /// first: it is the least likely to have been closed by the backend).
    pub(crate) fn checkout(&self) -> Option<UpstreamSender> {
        let thread = thread_key();
        let now = Instant::now();
        let mut idle = lock(self.idle.local());
        let mine = idle.iter_mut().find(|idle| idle.thread == thread)?;
        while let Some(connection) = mine.connections.pop() {
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
        let thread = thread_key();
        let since = Instant::now();
        let mut idle = lock(self.idle.local());
        // Checked again under the lock so that `retire` cannot miss a connection.
        if self.retired.load(Ordering::Acquire) {
            return;
        }
        let index = match idle.iter().position(|idle| idle.thread == thread) {
            Some(index) => index,
            None => {
                // Threads come and go with frontends; forget those whose connections died.
                idle.retain(|idle| idle.connections.iter().any(|c| !c.sender.is_closed()));
                idle.push(ThreadIdle {
                    thread,
                    connections: Vec::new(),
                });
                idle.len() - 1
            }
        };
        let connections = &mut idle[index].connections;
        if connections.len() < MAX_IDLE_CONNECTIONS {
            connections.push(IdleConnection { sender, since });
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
        let mut connections = lock(&self.connections);
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
        for shard in self.idle.iter() {
            let idle = std::mem::take(&mut *lock(shard));
            drop(idle);
        }
        let busy = self.busy_connections();
        if busy == 0 {
            return;
        }
        tracing::debug!(busy, ?draining_timeout, "draining upstream connections");
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(draining_timeout).await;
                    let mut connections = lock(&self.connections);
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
        let mut connections = lock(&self.connections);
        while connections.try_join_next().is_some() {}
        connections.len()
    }
}

/// Locks `mutex`, also after a panic elsewhere: the data (idle connections, task handles)
/// stays consistent whatever step panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
