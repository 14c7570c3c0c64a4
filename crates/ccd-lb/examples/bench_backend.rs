//! A benchmark backend: answers every request with the same ~100-byte body.
//!
//! Usage: `bench_backend <port>` (listens on 127.0.0.1).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// 100 bytes, like a small JSON API answer.
const BODY: &[u8] = b"{\"status\":\"ok\",\"service\":\"bench-backend\",\"message\":\"hello from the ccd-lb benchmark backend, 100B\"}\n";

type Error = Box<dyn std::error::Error + Send + Sync>;

// One thread: the benchmark machine is small, and both load balancers share these backends.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: bench_backend <port>")?
        .parse()?;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    tracing::info!(port, body_bytes = BODY.len(), "bench backend listening");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection failed");
            }
        });
    }
}
