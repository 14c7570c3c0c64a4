//! The one error type of the crate: everything that can go wrong while configuring the data plane.
//!
//! Request-time failures (no healthy backend, upstream refused) never surface here: they become
//! HTTP responses (503, 502, 504) and counters.

use std::io;
use std::net::SocketAddr;

/// Why the load balancer could not apply a configuration or start a frontend.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// The frontend's listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested listen address.
        addr: SocketAddr,
        /// The underlying socket error.
        source: io::Error,
    },
    /// The URL map refers to unknown path matchers, has empty or zero-weight routes, or
    /// malformed host or path patterns.
    #[error("invalid URL map: {0}")]
    InvalidUrlMap(String),
    /// The backend service configuration is inconsistent (duplicate backend ids, capacity out of
    /// range, health check timing out of range).
    #[error("invalid backend service {service}: {reason}")]
    InvalidBackendService {
        /// Name of the backend service.
        service: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate or key could not be parsed, or they do not belong together.
    #[error("invalid certificate #{index}: {reason}")]
    InvalidCertificate {
        /// Position of the certificate in the list handed in.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificates were given for a plaintext frontend, or a TLS frontend got none.
    #[error("frontend {frontend}: {reason}")]
    TlsMismatch {
        /// Name of the frontend.
        frontend: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// rustls refused the TLS server configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    CertificateGeneration(#[from] rcgen::Error),
    /// A frontend's worker threads could not be started.
    #[error("cannot start worker threads: {0}")]
    Workers(#[source] io::Error),
    /// The call needs a Tokio runtime to spawn its background tasks, and there is none.
    #[error("no Tokio runtime to run {task} on")]
    NoRuntime {
        /// Which background task could not be started.
        task: &'static str,
    },
}
