//! Worker threads of a frontend: the acceptor, and client connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::LbError;
use crate::proxy::{ConnectionContext, Proxy};

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send request headers on HTTP/1.1.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Cancellation signals shared by a frontend and its workers.
#[derive(Debug, Clone)]
pub(super) struct Signals {
    /// Stops the acceptor; a child of `abort`.
    pub(super) stop_accepting: CancellationToken,
    /// Asks connections to finish their requests and close; a child of `abort`.
    pub(super) drain: CancellationToken,
    /// Closes connections now.
    pub(super) abort: CancellationToken,
}

impl Signals {
    pub(super) fn new() -> Self {
        let abort = CancellationToken::new();
        Self {
            stop_accepting: abort.child_token(),
            drain: abort.child_token(),
            abort,
        }
    }
}

/// What every worker of a frontend shares.
#[derive(Debug)]
pub(super) struct Shared {
    name: String,
    proxy: Arc<Proxy>,
    tls: Option<Arc<ServerConfig>>,
    http: auto::Builder<TokioExecutor>,
    connections: TaskTracker,
    signals: Signals,
}

impl Shared {
    pub(super) fn new(
        name: String,
        proxy: Arc<Proxy>,
        tls: Option<Arc<ServerConfig>>,
        connections: TaskTracker,
        signals: Signals,
    ) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        http.http2().timer(TokioTimer::new());
        Self {
            name,
            proxy,
            tls,
            http,
            connections,
            signals,
        }
    }
}

/// A newly accepted client connection on its way to a worker.
type Accepted = (std::net::TcpStream, SocketAddr);

/// Accepts connections and deals them to the workers in turn.
#[derive(Debug)]
pub(super) struct Acceptor {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
}

impl Acceptor {
    pub(super) fn new(listener: std::net::TcpListener, shared: Arc<Shared>) -> Self {
        Self { listener, shared }
    }

    async fn run(self, workers: Vec<mpsc::UnboundedSender<Accepted>>) {
        let name = &self.shared.name;
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(frontend = %name, %error, "cannot register the listener");
                return;
            }
        };
        let stop = &self.shared.signals.stop_accepting;
        for next in (0..workers.len()).cycle() {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(frontend = %name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            // Latency matters more than segment count for request/response traffic.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            match stream.into_std() {
                Ok(stream) => {
                    if workers[next].send((stream, peer)).is_err() {
                        tracing::warn!(frontend = %name, worker = next, "worker is gone");
                    }
                }
                Err(error) => tracing::warn!(%peer, %error, "cannot hand connection over"),
            }
        }
    }
}

/// Starts `count` worker threads; the first also runs the acceptor. Returns one receiver per
/// worker that completes when its thread has stopped.
pub(super) fn start(
    count: usize,
    acceptor: Acceptor,
    shared: Arc<Shared>,
) -> Result<Vec<oneshot::Receiver<()>>, LbError> {
    let mut senders = Vec::with_capacity(count);
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LbError::Workers)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        senders.push(sender);
        workers.push((index, runtime, receiver));
    }
    let mut acceptor = Some((acceptor, senders));
    let mut stopped = Vec::with_capacity(count);
    for (index, runtime, receiver) in workers {
        let (done, on_done) = oneshot::channel();
        let acceptor = acceptor.take();
        let worker_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("ccd-lb-{index}"))
            .spawn(move || {
                runtime.block_on(run_worker(acceptor, receiver, worker_shared));
                // Dropping the runtime ends this worker's upstream connections too.
                drop(runtime);
                let _ = done.send(());
            });
        if let Err(error) = spawned {
            // Stop the workers already running: there will be no frontend to stop them.
            shared.signals.abort.cancel();
            shared.connections.close();
            return Err(LbError::Workers(error));
        }
        stopped.push(on_done);
    }
    Ok(stopped)
}

async fn run_worker(
    acceptor: Option<(Acceptor, Vec<mpsc::UnboundedSender<Accepted>>)>,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
    shared: Arc<Shared>,
) {
    if let Some((acceptor, workers)) = acceptor {
        tokio::spawn(acceptor.run(workers));
    }
    // Ends once the acceptor has stopped and dropped the senders.
    while let Some((stream, peer)) = accepted.recv().await {
        match TcpStream::from_std(stream) {
            Ok(stream) => spawn_connection(&shared, stream, peer),
            Err(error) => tracing::warn!(%peer, %error, "cannot register connection"),
        }
    }
    // The tracker is closed by then; this waits for the frontend's connections to finish.
    shared.connections.wait().await;
}

fn spawn_connection(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let context = Arc::new(ConnectionContext::new(
        Arc::clone(&shared.proxy),
        peer.ip(),
        shared.tls.is_some(),
    ));
    let open = OpenConnection::start(Arc::clone(&shared.proxy));
    let drain = shared.signals.drain.child_token();
    let shared = Arc::clone(shared);
    shared.connections.clone().spawn(async move {
        let _open = open;
        match &shared.tls {
            None => serve(&shared, TokioIo::new(stream), context, drain).await,
            Some(config) => {
                let acceptor = TlsAcceptor::from(Arc::clone(config));
                let handshake = tokio::select! {
                    () = drain.cancelled() => return,
                    handshake = tokio::time::timeout(
                        TLS_HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    ) => handshake,
                };
                match handshake {
                    Ok(Ok(stream)) => serve(&shared, TokioIo::new(stream), context, drain).await,
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_elapsed) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    });
}

/// Serves HTTP on one client connection until it closes, or the frontend stops.
async fn serve<I>(shared: &Shared, io: I, context: Arc<ConnectionContext>, drain: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| Arc::clone(&context).handle(request));
    let connection = shared.http.serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        biased;
        result = connection.as_mut() => result,
        () = drain.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                () = shared.signals.abort.cancelled() => Ok(()),
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "client connection ended with an error");
    }
}

/// A client connection counted as open until dropped.
#[derive(Debug)]
struct OpenConnection {
    proxy: Arc<Proxy>,
    shard: usize,
}

impl OpenConnection {
    fn start(proxy: Arc<Proxy>) -> Self {
        let shard = proxy.counters.open_connection();
        Self { proxy, shard }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.proxy.counters.close_connection(self.shard);
    }
}
