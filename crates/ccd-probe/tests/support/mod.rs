//! A test server on loopback that answers as told, counts requests, and can stop listening.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ccd_probe::{ProbeCounts, ProbeTarget, Prober};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// How long a test waits for something that should happen within a few intervals; it only
/// bounds a failing test.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Status(u16),
    /// Never answers.
    Hang,
}

#[derive(Debug)]
struct State {
    mode: Mutex<Mode>,
    requests: AtomicU64,
    hanging: AtomicUsize,
    most_hanging: AtomicUsize,
    seen: Mutex<Vec<(String, String)>>,
    server_names: Mutex<Vec<Option<String>>>,
}

/// Serves until dropped; dropping it closes the listener and every connection.
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The accept task owns the connections' JoinSet: aborting it ends them all.
        self.accept.abort();
    }
}

impl TestServer {
    pub async fn start(mode: Mode) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), mode, None).await
    }

    /// HTTPS with a self-signed certificate for `name`.
    pub async fn start_tls(mode: Mode, name: &str) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Self::start_on("127.0.0.1:0".parse().unwrap(), mode, Some(acceptor)).await
    }

    /// Listens on `addr` (retrying while the old listener there is still closing).
    pub async fn start_on(addr: SocketAddr, mode: Mode, tls: Option<TlsAcceptor>) -> Self {
        let listener = tokio::time::timeout(PATIENCE, async {
            loop {
                match TcpListener::bind(addr).await {
                    Ok(listener) => return listener,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await
        .expect("the test server's address is free again");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            mode: Mutex::new(mode),
            requests: AtomicU64::new(0),
            hanging: AtomicUsize::new(0),
            most_hanging: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            server_names: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state), tls));
        Self {
            addr,
            state,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The most requests the server was ever holding unanswered at once (in `Hang` mode).
    pub fn most_hanging(&self) -> usize {
        self.state.most_hanging.load(Ordering::SeqCst)
    }

    /// `Host` header and path of each request, in order.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.state.seen.lock().unwrap().clone()
    }

    /// TLS server names (SNI) seen, one per connection.
    pub fn server_names(&self) -> Vec<Option<String>> {
        self.state.server_names.lock().unwrap().clone()
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, tls: Option<TlsAcceptor>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let state = Arc::clone(&state);
        let tls = tls.clone();
        connections.spawn(async move {
            let served = Arc::clone(&state);
            let service = service_fn(move |request| answer(Arc::clone(&served), request));
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let name = stream.get_ref().1.server_name().map(str::to_owned);
                    state.server_names.lock().unwrap().push(name);
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

async fn answer(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = request.uri().path().to_owned();
    state.seen.lock().unwrap().push((host, path));
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Status(code) => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"probe answer\n")));
            *response.status_mut() = StatusCode::from_u16(code).unwrap();
            Ok(response)
        }
        Mode::Hang => {
            let _guard = Hanging::new(&state);
            std::future::pending().await
        }
    }
}

/// Counts a request held unanswered for as long as it lives.
struct Hanging<'a>(&'a State);

impl<'a> Hanging<'a> {
    fn new(state: &'a State) -> Self {
        let now = state.hanging.fetch_add(1, Ordering::SeqCst) + 1;
        state.most_hanging.fetch_max(now, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for Hanging<'_> {
    fn drop(&mut self) {
        self.0.hanging.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A target at `url` with `path` `/healthz`.
pub fn target(url: String, interval: Duration, timeout: Duration) -> ProbeTarget {
    ProbeTarget {
        url,
        path: "/healthz".to_owned(),
        host: None,
        interval,
        timeout,
    }
}

/// Waits until `counts()` (counts, or any reading) satisfies `done`; panics with the last counts after [`PATIENCE`].
pub async fn wait_for<T: Copy + std::fmt::Debug>(
    what: &str,
    counts: impl Fn() -> T,
    done: impl Fn(T) -> bool,
) -> T {
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            let now = counts();
            if done(now) {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what}: still not there after {PATIENCE:?}: {:?}", counts()))
}

/// Waits until `prober` has counted `done`.
pub async fn wait_prober(
    what: &str,
    prober: &Prober,
    done: impl Fn(ProbeCounts) -> bool,
) -> ProbeCounts {
    wait_for(what, || prober.counts(), done).await
}
