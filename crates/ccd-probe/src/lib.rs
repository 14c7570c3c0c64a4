//! A steady synthetic prober: during a rollout the controller sends `GET url+path` through an
//! app's load balancer every `interval` and counts how many of those probes failed, so a
//! rollout's downtime is measured rather than assumed.
//!
//! - [`Prober`] probes one [`ProbeTarget`] until it is stopped or dropped. Each probe is a task
//!   of its own, so a hung request never delays the next one; at most a bounded number are in
//!   flight and a probe that would exceed it is counted as failed.
//! - [`Probes`] keeps one prober per app, keyed by what the controller is measuring (a rollout
//!   step, say), and is what the controller holds.
//!
//! What counts as a failure: no connection, no complete answer within `timeout`, or a 5xx
//! answer. Any other status (2xx, 3xx, 4xx) is an answer from a running app and counts as a
//! success: a 404 means the app is up and the path is wrong, not that the app is down.
//!
//! HTTPS certificates are **not verified**: the probe measures availability, not identity. A
//! Google-managed certificate may still be provisioning while the load balancer already
//! serves, and the local cloud's load balancers present self-signed certificates; a probe that
//! verified them would report downtime that users with a valid certificate never see.
//!
//! Counts are a [`ProbeCounts`]; a prober starts from an initial one, so a restarted controller
//! continues from what it had recorded. All timers go through `tokio::time`.

mod client;
mod prober;
mod registry;

use std::time::Duration;

pub use prober::Prober;
pub use registry::Probes;

/// What to probe and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Scheme, address and optional port of the load balancer: `http://127.0.0.2:80`,
    /// `https://34.1.2.3`.
    pub url: String,
    /// The path to request, `/healthz`; joined to `url` as is.
    pub path: String,
    /// The host name to send (the `Host` header and, over HTTPS, the TLS server name) when
    /// `url` reaches the load balancer by IP address; `None` sends the address itself.
    pub host: Option<String>,
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// How long one probe may take, connection and complete answer included.
    pub timeout: Duration,
}

/// How many probes finished and how many of them failed.
///
/// A probe is counted once its outcome is known (answered, failed, timed out, or refused
/// because too many were in flight), so `failed <= sent` always holds and a probe still in
/// flight is in neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    /// Probes whose outcome is known.
    pub sent: u64,
    /// Of those, the ones that failed.
    pub failed: u64,
}

/// Why a prober could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A field of the [`ProbeTarget`] is unusable.
    #[error("probe target {field} {value:?}: {reason}")]
    InvalidTarget {
        /// `url`, `path`, `host`, `interval` or `timeout`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The HTTP client could not be built (its TLS setup failed).
    #[error("cannot build the probe's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Probers run as tokio tasks and were started outside a tokio runtime.
    #[error("a prober must be started from within a tokio runtime")]
    NoRuntime,
}
