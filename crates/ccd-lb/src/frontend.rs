//! Frontends (GCE's forwarding rule + target HTTP(S) proxy): accept clients, proxy requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::LbError;
use crate::proxy::{ClientInfo, Proxy};
use crate::stats::{FrontendCounters, FrontendStats, OpenConnection};
use crate::tls::{self, CertificatePem, CertificateStore};
use crate::url_map::{Router, UrlMap};

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send request headers on HTTP/1.1.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Configuration of a frontend.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// Name, for logs (e.g. the forwarding rule's name).
    pub name: String,
    /// Address to listen on; port 0 picks a free port (see [`Frontend::local_addr`]).
    pub listen: SocketAddr,
    /// Certificates for HTTPS, the first being the default; `None` serves plaintext HTTP.
    pub tls: Option<Vec<CertificatePem>>,
}

impl FrontendConfig {
    /// A plaintext HTTP frontend (HTTP/1.1, and HTTP/2 with prior knowledge).
    pub fn http(name: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            name: name.into(),
            listen,
            tls: None,
        }
    }

    /// An HTTPS frontend (HTTP/1.1 and HTTP/2 by ALPN) with certificates chosen by SNI.
    pub fn https(
        name: impl Into<String>,
        listen: SocketAddr,
        certificates: Vec<CertificatePem>,
    ) -> Self {
        Self {
            name: name.into(),
            listen,
            tls: Some(certificates),
        }
    }
}

/// A running frontend. Dropping it closes the listener and every client connection at once;
/// [`Frontend::shutdown`] does so gracefully.
#[derive(Debug)]
pub struct Frontend {
    name: String,
    local_addr: SocketAddr,
    proxy: Arc<Proxy>,
    certificates: Option<Arc<CertificateStore>>,
    accept_loop: Option<JoinHandle<()>>,
    connections: TaskTracker,
    stop_accepting: CancellationToken,
    /// Asks connections to finish their requests and close; a child of `abort`.
    drain: CancellationToken,
    /// Closes connections now.
    abort: CancellationToken,
}

impl Frontend {
    /// Starts listening and serving `url_map`. Needs a Tokio runtime.
    pub async fn bind(config: FrontendConfig, url_map: &UrlMap) -> Result<Self, LbError> {
        let router = Router::new(url_map)?;
        let certificates = match &config.tls {
            Some(certificates) => Some(Arc::new(CertificateStore::new(certificates)?)),
            None => None,
        };
        let tls = match &certificates {
            Some(store) => Some(TlsAcceptor::from(tls::server_config(Arc::clone(store))?)),
            None => None,
        };
        let bind_error = |source| LbError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;

        let proxy = Arc::new(Proxy {
            router: ArcSwap::from_pointee(router),
            counters: Arc::new(FrontendCounters::default()),
        });
        let abort = CancellationToken::new();
        let drain = abort.child_token();
        let stop_accepting = abort.child_token();
        let connections = TaskTracker::new();
        let acceptor = Acceptor {
            name: config.name.clone(),
            listener,
            tls,
            http: Arc::new(http_builder()),
            proxy: Arc::clone(&proxy),
            connections: connections.clone(),
            drain: drain.clone(),
            abort: abort.clone(),
        };
        let accept_loop = tokio::spawn(acceptor.run(stop_accepting.clone()));
        tracing::info!(frontend = %config.name, address = %local_addr,
            tls = certificates.is_some(), "frontend listening");
        Ok(Self {
            name: config.name,
            local_addr,
            proxy,
            certificates,
            accept_loop: Some(accept_loop),
            connections,
            stop_accepting,
            drain,
            abort,
        })
    }

    /// The address the frontend listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The frontend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Routes new requests by `url_map`; requests already routed are not affected.
    pub fn set_url_map(&self, url_map: &UrlMap) -> Result<(), LbError> {
        self.proxy.router.store(Arc::new(Router::new(url_map)?));
        Ok(())
    }

    /// Serves `certificates` to new TLS handshakes. Fails on a plaintext frontend.
    pub fn set_certificates(&self, certificates: &[CertificatePem]) -> Result<(), LbError> {
        match &self.certificates {
            Some(store) => store.replace(certificates),
            None => Err(LbError::TlsMismatch {
                frontend: self.name.clone(),
                reason: "a plaintext frontend has no certificates",
            }),
        }
    }

    /// The frontend's counters.
    pub fn stats(&self) -> FrontendStats {
        self.proxy.counters.snapshot()
    }

    /// Stops accepting, lets requests in flight finish for up to `deadline`, then closes the
    /// connections that remain.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.stop_accepting.cancel();
        if let Some(accept_loop) = self.accept_loop.take() {
            if let Err(error) = accept_loop.await {
                tracing::warn!(frontend = %self.name, %error, "accept loop failed");
            }
        }
        self.drain.cancel();
        self.connections.close();
        if tokio::time::timeout(deadline, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(frontend = %self.name, remaining = self.connections.len(),
                "shutdown deadline reached; closing connections");
            self.abort.cancel();
            self.connections.wait().await;
        }
        tracing::info!(frontend = %self.name, "frontend stopped");
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.abort.cancel();
    }
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// The accept loop and what each connection task needs.
struct Acceptor {
    name: String,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    http: Arc<auto::Builder<TokioExecutor>>,
    proxy: Arc<Proxy>,
    connections: TaskTracker,
    drain: CancellationToken,
    abort: CancellationToken,
}

impl Acceptor {
    async fn run(self, stop: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.spawn_connection(stream, peer),
                Err(error) => {
                    tracing::warn!(frontend = %self.name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
    }

    fn spawn_connection(&self, stream: TcpStream, peer: SocketAddr) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            http: Arc::clone(&self.http),
            proxy: Arc::clone(&self.proxy),
            client: Arc::new(ClientInfo::new(peer.ip(), self.tls.is_some())),
            drain: self.drain.child_token(),
            abort: self.abort.clone(),
            _open: OpenConnection::start(&self.proxy.counters),
        };
        let tls = self.tls.clone();
        self.connections.spawn(async move {
            match tls {
                None => connection.serve(TokioIo::new(stream)).await,
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        () = connection.drain.cancelled() => return,
                        handshake = tokio::time::timeout(
                            TLS_HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        ) => handshake,
                    };
                    match handshake {
                        Ok(Ok(stream)) => connection.serve(TokioIo::new(stream)).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_elapsed) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// One client connection.
struct Connection {
    http: Arc<auto::Builder<TokioExecutor>>,
    proxy: Arc<Proxy>,
    client: Arc<ClientInfo>,
    drain: CancellationToken,
    abort: CancellationToken,
    _open: OpenConnection,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Self {
            http,
            proxy,
            client,
            drain,
            abort,
            _open,
        } = self;
        let service = service_fn(move |request| {
            Arc::clone(&proxy).handle(Arc::clone(&client), request)
        });
        let connection = http.serve_connection(io, service);
        tokio::pin!(connection);
        let result = tokio::select! {
            biased;
            result = connection.as_mut() => result,
            () = drain.cancelled() => {
                connection.as_mut().graceful_shutdown();
                tokio::select! {
                    result = connection.as_mut() => result,
                    () = abort.cancelled() => Ok(()),
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "client connection ended with an error");
        }
    }
}
