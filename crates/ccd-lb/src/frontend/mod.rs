//! Frontends (GCE's forwarding rule + target HTTP(S) proxy): accept clients, proxy requests.
//!
//! A frontend runs its own worker threads, each with a single-threaded Tokio runtime, like
//! nginx's worker processes: a client connection, the requests on it and the upstream
//! connections they use all live on one thread, so a request never waits for another thread
//! to be scheduled. One acceptor hands new connections to the workers in turn.

mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use self::worker::{Acceptor, Shared, Signals};
use crate::error::LbError;
use crate::proxy::Proxy;
use crate::stats::{FrontendCounters, FrontendStats};
use crate::tls::{self, CertificatePem, CertificateStore};
use crate::url_map::{Router, UrlMap};

/// Configuration of a frontend.
#[derive(Debug, Clone)]
pub struct FrontendConfig {
    /// Name, for logs (e.g. the forwarding rule's name).
    pub name: String,
    /// Address to listen on; port 0 picks a free port (see [`Frontend::local_addr`]).
    pub listen: SocketAddr,
    /// Certificates for HTTPS, the first being the default; `None` serves plaintext HTTP.
    pub tls: Option<Vec<CertificatePem>>,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
}

impl FrontendConfig {
    /// A plaintext HTTP frontend (HTTP/1.1, and HTTP/2 with prior knowledge).
    pub fn http(name: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            name: name.into(),
            listen,
            tls: None,
            workers: 0,
        }
    }

    /// An HTTPS frontend (HTTP/1.1 and HTTP/2 by ALPN) with certificates chosen by SNI.
    pub fn https(
        name: impl Into<String>,
        listen: SocketAddr,
        certificates: Vec<CertificatePem>,
    ) -> Self {
        Self {
            tls: Some(certificates),
            ..Self::http(name, listen)
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
    connections: TaskTracker,
    signals: Signals,
    /// One per worker thread, completed when the thread has stopped.
    workers_stopped: Vec<oneshot::Receiver<()>>,
}

impl Frontend {
    /// Starts listening and serving `url_map`.
    pub async fn bind(config: FrontendConfig, url_map: &UrlMap) -> Result<Self, LbError> {
        let router = Router::new(url_map)?;
        let certificates = match &config.tls {
            Some(certificates) => Some(Arc::new(CertificateStore::new(certificates)?)),
            None => None,
        };
        let tls = match &certificates {
            Some(store) => Some(tls::server_config(Arc::clone(store))?),
            None => None,
        };
        let bind_error = |source| LbError::Bind {
            addr: config.listen,
            source,
        };
        // Bound here rather than in a worker so that errors (address in use) reach the caller.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let listener = listener.into_std().map_err(bind_error)?;

        let proxy = Arc::new(Proxy {
            router: ArcSwap::from_pointee(router),
            counters: FrontendCounters::default(),
        });
        let signals = Signals::new();
        let connections = TaskTracker::new();
        let shared = Arc::new(Shared::new(
            config.name.clone(),
            Arc::clone(&proxy),
            tls,
            connections.clone(),
            signals.clone(),
        ));
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            workers => workers,
        };
        let acceptor = Acceptor::new(listener, Arc::clone(&shared));
        let workers_stopped = worker::start(workers, acceptor, shared)?;
        tracing::info!(frontend = %config.name, address = %local_addr, workers,
            tls = certificates.is_some(), "frontend listening");
        Ok(Self {
            name: config.name,
            local_addr,
            proxy,
            certificates,
            connections,
            signals,
            workers_stopped,
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
    /// connections that remain. Returns once the listener and worker threads are gone.
    pub async fn shutdown(mut self, deadline: Duration) {
        self.signals.stop_accepting.cancel();
        self.signals.drain.cancel();
        self.connections.close();
        if tokio::time::timeout(deadline, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(frontend = %self.name, remaining = self.connections.len(),
                "shutdown deadline reached; closing connections");
            self.signals.abort.cancel();
        }
        for stopped in std::mem::take(&mut self.workers_stopped) {
            // An error only means the worker thread is already gone.
            let _ = stopped.await;
        }
        tracing::info!(frontend = %self.name, "frontend stopped");
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        self.signals.abort.cancel();
        self.connections.close();
    }
}
