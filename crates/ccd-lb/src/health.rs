//! Health check configuration, the threshold state machine, and the probes themselves.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What a probe does to decide whether a backend is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckProtocol {
    /// `GET path` over HTTP/1.1; healthy on status 200, as GCE's HTTP health checks.
    Http {
        /// Request path, e.g. `/healthz`.
        path: String,
        /// `Host` header to send; the backend's address when `None`.
        host: Option<String>,
    },
    /// Healthy when a TCP connection can be opened.
    Tcp,
}

/// A health check, as GCE's `healthChecks` resource (defaults are GCE's too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// How to probe.
    pub protocol: HealthCheckProtocol,
    /// Port to probe; the backend's serving port when `None`.
    pub port: Option<u16>,
    /// Time between the starts of two probes of the same backend.
    pub check_interval: Duration,
    /// How long a probe may take before it counts as failed; at most `check_interval`.
    pub timeout: Duration,
    /// Consecutive successes that make a backend healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a backend unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            protocol: HealthCheckProtocol::Http {
                path: "/".to_owned(),
                host: None,
            },
            port: None,
            check_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }
}

impl HealthCheck {
    /// Why this health check cannot be used, if it cannot.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.check_interval.is_zero() || self.timeout.is_zero() {
            return Err("health check interval and timeout must be positive".to_owned());
        }
        if self.timeout > self.check_interval {
            return Err("health check timeout must not exceed its interval".to_owned());
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 {
            return Err("health check thresholds must be at least 1".to_owned());
        }
        if let HealthCheckProtocol::Http { path, .. } = &self.protocol
            && (!path.starts_with('/') || http::uri::PathAndQuery::try_from(path.as_str()).is_err())
        {
            return Err(format!(
                "health check path {path:?} is not an absolute path"
            ));
        }
        Ok(())
    }

    /// The address a probe of the backend serving at `backend` connects to.
    pub(crate) fn target(&self, backend: SocketAddr) -> SocketAddr {
        SocketAddr::new(backend.ip(), self.port.unwrap_or(backend.port()))
    }
}

/// Health of one backend as last decided by its prober.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Not probed enough yet to decide; not served.
    Unknown,
    /// Passed `healthy_threshold` consecutive probes; served.
    Healthy,
    /// Failed `unhealthy_threshold` consecutive probes; not served.
    Unhealthy,
}

impl HealthState {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Healthy => 1,
            Self::Unhealthy => 2,
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Healthy,
            2 => Self::Unhealthy,
            _ => Self::Unknown,
        }
    }
}

/// Counts consecutive probe outcomes and turns them into a state with hysteresis.
#[derive(Debug, Clone)]
pub(crate) struct HealthTracker {
    state: HealthState,
    consecutive_successes: u32,
    consecutive_failures: u32,
}

impl Default for HealthTracker {
    fn default() -> Self {
        Self {
            state: HealthState::Unknown,
            consecutive_successes: 0,
            consecutive_failures: 0,
        }
    }
}

impl HealthTracker {
    /// Records one probe outcome; returns the new state when it changed.
    pub(crate) fn record(&mut self, success: bool, check: &HealthCheck) -> Option<HealthState> {
        let next = if success {
            self.consecutive_failures = 0;
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            (self.consecutive_successes >= check.healthy_threshold).then_some(HealthState::Healthy)
        } else {
            self.consecutive_successes = 0;
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            (self.consecutive_failures >= check.unhealthy_threshold)
                .then_some(HealthState::Unhealthy)
        };
        match next {
            Some(state) if state != self.state => {
                self.state = state;
                Some(state)
            }
            _ => None,
        }
    }
}

/// One probe of `target` as `check` says; `true` when the backend answered as healthy in time.
///
/// The caller has already asked the connection policy.
pub(crate) async fn probe(check: &HealthCheck, target: SocketAddr) -> bool {
    let outcome = tokio::time::timeout(check.timeout, async {
        let stream = TcpStream::connect(target).await?;
        match &check.protocol {
            HealthCheckProtocol::Tcp => Ok(true),
            HealthCheckProtocol::Http { path, host } => {
                http_probe(stream, target, path, host.as_deref()).await
            }
        }
    })
    .await;
    match outcome {
        Ok(Ok(healthy)) => healthy,
        Ok(Err(error)) => {
            tracing::debug!(%target, %error, "health probe failed");
            false
        }
        Err(_elapsed) => {
            tracing::debug!(%target, "health probe timed out");
            false
        }
    }
}

async fn http_probe(
    stream: TcpStream,
    target: SocketAddr,
    path: &str,
    host: Option<&str>,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let host = match host {
        Some(host) => HeaderValue::from_str(host)?,
        None => HeaderValue::from_str(&target.to_string())?,
    };
    let request = Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, "GoogleHC/1.0")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let mut exchange = std::pin::pin!(sender.send_request(request));
    let mut connection = std::pin::pin!(connection);
    let response = tokio::select! {
        response = &mut exchange => response?,
        // The connection may finish (server closed) in the same poll that delivered the
        // response; the exchange then resolves right away with it or with the error.
        _closed = &mut connection => exchange.await?,
    };
    Ok(response.status() == StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(healthy: u32, unhealthy: u32) -> HealthCheck {
        HealthCheck {
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            ..HealthCheck::default()
        }
    }

    #[test]
    fn becomes_healthy_only_after_threshold_successes() {
        let check = check(3, 2);
        let mut tracker = HealthTracker::default();
        assert_eq!(tracker.record(true, &check), None);
        assert_eq!(tracker.record(true, &check), None);
        assert_eq!(tracker.record(true, &check), Some(HealthState::Healthy));
        assert_eq!(tracker.record(true, &check), None);
    }

    #[test]
    fn a_failure_resets_the_success_streak() {
        let check = check(2, 3);
        let mut tracker = HealthTracker::default();
        tracker.record(true, &check);
        tracker.record(false, &check);
        assert_eq!(tracker.record(true, &check), None);
        assert_eq!(tracker.record(true, &check), Some(HealthState::Healthy));
    }

    #[test]
    fn healthy_backend_survives_fewer_failures_than_threshold() {
        let check = check(1, 3);
        let mut tracker = HealthTracker::default();
        assert_eq!(tracker.record(true, &check), Some(HealthState::Healthy));
        assert_eq!(tracker.record(false, &check), None);
        assert_eq!(tracker.record(false, &check), None);
        assert_eq!(tracker.record(true, &check), None);
        assert_eq!(tracker.record(false, &check), None);
        assert_eq!(tracker.record(false, &check), None);
        assert_eq!(tracker.record(false, &check), Some(HealthState::Unhealthy));
    }

    #[test]
    fn rejects_timeout_longer_than_interval() {
        let check = HealthCheck {
            timeout: Duration::from_secs(6),
            ..HealthCheck::default()
        };
        assert!(check.validate().is_err());
        assert!(HealthCheck::default().validate().is_ok());
    }

    #[test]
    fn probe_target_uses_health_check_port_when_set() {
        let backend: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut check = HealthCheck::default();
        assert_eq!(check.target(backend), backend);
        check.port = Some(9000);
        assert_eq!(check.target(backend).port(), 9000);
    }
}
