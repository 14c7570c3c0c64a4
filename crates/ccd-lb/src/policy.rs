//! The firewall hook: the local cloud decides whether the load balancer may open a connection to
//! a backend, exactly as GCE firewall rules decide whether Google's front ends and health checkers
//! may reach an instance.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Decides, for every connection the load balancer opens to a backend, whether it is allowed.
///
/// Called on each new upstream connection (proxied traffic and health probes alike), not on each
/// request: pooled connections are reused without asking again, as a stateful firewall would.
/// Implementations must be cheap and must not block.
pub trait ConnectionPolicy: Send + Sync + 'static {
    /// Whether a connection from the virtual address `source` to `backend` (the backend named
    /// `backend_id`, e.g. an instance name) may be opened.
    fn allows(&self, source: IpAddr, backend_id: &str, backend: SocketAddr) -> bool;
}

/// A policy that allows every connection; the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl ConnectionPolicy for AllowAll {
    fn allows(&self, _source: IpAddr, _backend_id: &str, _backend: SocketAddr) -> bool {
        true
    }
}

/// How the load balancer reaches backends: the policy to ask, and the virtual source addresses
/// it presents for proxied traffic and for health probes.
///
/// The addresses are labels for the policy only; real sockets connect from loopback.
#[derive(Clone)]
pub struct UpstreamNetwork {
    /// Asked before each new connection to a backend.
    pub policy: Arc<dyn ConnectionPolicy>,
    /// Source presented for proxied requests (GCE: the front-end range 35.191.0.0/16).
    pub proxy_source: IpAddr,
    /// Source presented for health probes (GCE: 130.211.0.0/22 and 35.191.0.0/16).
    pub probe_source: IpAddr,
}

impl UpstreamNetwork {
    /// Default sources, with the given policy.
    pub fn with_policy(policy: Arc<dyn ConnectionPolicy>) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }
}

impl Default for UpstreamNetwork {
    fn default() -> Self {
        Self {
            policy: Arc::new(AllowAll),
            proxy_source: IpAddr::V4(Ipv4Addr::new(35, 191, 0, 1)),
            probe_source: IpAddr::V4(Ipv4Addr::new(130, 211, 0, 1)),
        }
    }
}

impl fmt::Debug for UpstreamNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamNetwork")
            .field("proxy_source", &self.proxy_source)
            .field("probe_source", &self.probe_source)
            .finish_non_exhaustive()
    }
}
