//! Autohealing health: each managed group with an autohealing policy has its
//! instances probed as its health check says (HTTP path or TCP connect,
//! interval, timeout, thresholds), from the health-check source range, so
//! firewall rules apply to probes as they do on Compute Engine.
//!
//! As on Compute Engine, a failing instance is `UNHEALTHY` when it answered
//! but not as the check asks (an HTTP status other than 200), and `TIMEOUT`
//! when it could not be reached: no connection (refused, denied by the
//! firewall, the instance stopped) or no answer within the check's timeout.
//! Both count towards the same unhealthy threshold; the state says what the
//! last failure was.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cloud::Cloud;
use crate::managed::{self, Action};

/// Where health probes come from, as Google's health checkers do (35.191.0.0/16).
pub const PROBE_SOURCE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(35, 191, 0, 1));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unknown,
    Healthy,
    /// Failing, and the last failure was an answer other than the one asked for.
    Unhealthy,
    /// Failing, and the last failure was no connection or no answer in time.
    Timeout,
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The answer the check asks for (HTTP 200, or a TCP connection).
    Passed,
    /// Connected, but the answer was not the one asked for.
    Failed,
    /// No connection, or no answer within the timeout.
    Unreachable,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The instance's `id`: a recreated instance starts a new record.
    instance_id: String,
    state: State,
    streak: u32,
    last_ok: bool,
    /// The last probe's outcome, if any.
    last: Option<Outcome>,
    next_due: tokio::time::Instant,
    in_flight: bool,
}

impl Entry {
    fn new(instance_id: &str, now: tokio::time::Instant) -> Self {
        Entry {
            instance_id: instance_id.to_owned(),
            state: State::Unknown,
            streak: 0,
            last_ok: false,
            last: None,
            next_due: now,
            in_flight: false,
        }
    }

    /// Counts a probe's outcome towards the thresholds.
    fn record(&mut self, outcome: Outcome, healthy_threshold: u32, unhealthy_threshold: u32) {
        let ok = outcome == Outcome::Passed;
        self.streak = if self.last_ok == ok {
            self.streak + 1
        } else {
            1
        };
        self.last_ok = ok;
        self.last = Some(outcome);
        if ok && self.streak >= healthy_threshold {
            self.state = State::Healthy;
        } else if !ok && self.streak >= unhealthy_threshold {
            self.state = if outcome == Outcome::Unreachable {
                State::Timeout
            } else {
                State::Unhealthy
            };
        }
    }
}

/// Probe results by (health check key, instance key).
#[derive(Debug, Clone, Default)]
pub struct Health {
    entries: Arc<Mutex<HashMap<(String, String), Entry>>>,
    /// Woken when an instance's health changes, so its group acts on it at once.
    changed: Arc<tokio::sync::Notify>,
    /// The groups (managed group keys) whose instances' health changed since
    /// the last `take_changed`: only those need a pass, not every group.
    changed_groups: Arc<Mutex<BTreeSet<String>>>,
}

impl Health {
    /// Resolves when some instance's health changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The groups whose instances' health changed since the last call.
    pub fn take_changed(&self) -> BTreeSet<String> {
        std::mem::take(
            &mut *self
                .changed_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, hc: &str, instance: &str) -> Option<State> {
        self.lock()
            .get(&(hc.to_owned(), instance.to_owned()))
            .map(|e| e.state)
    }

    pub fn is_healthy(&self, hc: &str, instance: &str) -> bool {
        self.get(hc, instance) == Some(State::Healthy)
    }

    /// Failing its check, reachable or not (`UNHEALTHY` or `TIMEOUT`):
    /// what autohealing recreates.
    pub fn is_unhealthy(&self, hc: &str, instance: &str) -> bool {
        matches!(
            self.get(hc, instance),
            Some(State::Unhealthy | State::Timeout)
        )
    }

    /// `detailedHealthState` for listManagedInstances.
    pub fn state(&self, hc: &str, instance: &str) -> &'static str {
        match self.get(hc, instance) {
            Some(State::Healthy) => "HEALTHY",
            Some(State::Unhealthy) => "UNHEALTHY",
            Some(State::Timeout) => "TIMEOUT",
            Some(State::Unknown) | None => "UNKNOWN",
        }
    }

    /// Forgets an instance (deleted or recreated): its record starts over.
    pub fn forget(&self, instance: &str) {
        self.lock().retain(|(_, i), _| i != instance);
    }

    /// Starts the probes that are due; called on every tick of the runtime.
    pub fn probe_due(&self, cloud: &Arc<Cloud>) {
        let now = tokio::time::Instant::now();
        for mig_key in cloud
            .store
            .keys("projects/", |k| k.contains("/instanceGroupManagers/"))
        {
            let Some(mig) = cloud.store.get(&mig_key) else {
                continue;
            };
            if !mig["autoHealingPolicies"][0]["healthCheck"].is_string() {
                continue;
            }
            let hc_key = cloud.key_of(
                mig["autoHealingPolicies"][0]["healthCheck"]
                    .as_str()
                    .unwrap_or_default(),
            );
            let Some(hc) = cloud.store.get(&hc_key) else {
                continue;
            };
            let interval = Duration::from_secs(hc["checkIntervalSec"].as_u64().unwrap_or(5).max(1));
            for m in managed::of_group(&cloud.store, &mig_key) {
                if matches!(m.action, Action::Deleting | Action::Abandoning) {
                    continue;
                }
                let Some(instance) = cloud.store.get(&m.instance) else {
                    continue;
                };
                // A stopped instance cannot be reached; one still booting
                // is not probed yet.
                let stopped = matches!(
                    instance["status"].as_str(),
                    Some("STOPPING" | "TERMINATED" | "SUSPENDING" | "SUSPENDED")
                );
                if instance["status"] != "RUNNING" && !stopped {
                    continue;
                }
                let instance_id = instance["id"].as_str().unwrap_or_default();
                let id = (hc_key.clone(), m.instance.clone());
                {
                    let mut entries = self.lock();
                    let entry = entries
                        .entry(id.clone())
                        .or_insert_with(|| Entry::new(instance_id, now));
                    if entry.instance_id != instance_id {
                        *entry = Entry::new(instance_id, now);
                    }
                    if entry.in_flight || entry.next_due > now {
                        continue;
                    }
                    entry.in_flight = true;
                    entry.next_due = now + interval;
                }
                if stopped {
                    self.record(&id, &mig_key, Outcome::Unreachable, &hc);
                    continue;
                }
                let (health, cloud, hc, mig_key) =
                    (self.clone(), cloud.clone(), hc.clone(), mig_key.clone());
                tokio::spawn(async move {
                    let outcome = probe(&cloud, &hc, &mig_key, &instance).await;
                    health.record(&id, &mig_key, outcome, &hc);
                });
            }
        }
    }

    fn record(&self, id: &(String, String), mig_key: &str, outcome: Outcome, hc: &Value) {
        let healthy_threshold = hc["healthyThreshold"].as_u64().unwrap_or(2) as u32;
        let unhealthy_threshold = hc["unhealthyThreshold"].as_u64().unwrap_or(2) as u32;
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(id) else { return };
        e.in_flight = false;
        let before = e.state;
        if outcome != Outcome::Passed && e.last != Some(outcome) {
            // A new kind of failure: when a version that starts, then fails, first shows.
            tracing::info!(health_check = %id.0, instance = %id.1, ?outcome, "health check failed");
        }
        e.record(outcome, healthy_threshold, unhealthy_threshold);
        if before != e.state {
            tracing::info!(health_check = %id.0, instance = %id.1, state = ?e.state, "health changed");
            drop(entries);
            self.changed_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(mig_key.to_owned());
            self.changed.notify_one();
        }
    }
}

/// The instance's port for a health check: fixed, or by named port.
pub fn probe_port(cloud: &Cloud, hc: &Value, mig_key: &str) -> Option<u16> {
    probe_port_named(hc, |name| {
        let mig = cloud.store.get(mig_key)?;
        let group = cloud
            .store
            .get(&cloud.key_of(mig["instanceGroup"].as_str()?))?;
        group["namedPorts"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["port"]
            .as_u64()
    })
}

/// A health check's fixed port, or the named port `lookup` finds.
pub fn probe_port_named(hc: &Value, lookup: impl FnOnce(&str) -> Option<u64>) -> Option<u16> {
    let spec = [
        "httpHealthCheck",
        "httpsHealthCheck",
        "http2HealthCheck",
        "tcpHealthCheck",
    ]
    .iter()
    .find_map(|f| hc.get(*f))?;
    let port = match spec["port"].as_u64() {
        Some(port) => port,
        None => lookup(spec["portName"].as_str().unwrap_or("http"))?,
    };
    u16::try_from(port).ok()
}

async fn probe(cloud: &Arc<Cloud>, hc: &Value, mig_key: &str, instance: &Value) -> Outcome {
    if super::instances::is_simulated(cloud, instance) {
        return Outcome::Passed;
    }
    let Some(ip) = instance["networkInterfaces"][0]["networkIP"]
        .as_str()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return Outcome::Unreachable;
    };
    // No port to probe (no such named port): nothing can answer.
    let Some(port) = probe_port(cloud, hc, mig_key) else {
        return Outcome::Unreachable;
    };
    // A denied probe is dropped: the checker waits and gives up.
    if !super::firewall::admits(cloud, PROBE_SOURCE, instance, port) {
        return Outcome::Unreachable;
    }
    let timeout = Duration::from_secs(hc["timeoutSec"].as_u64().unwrap_or(5).max(1));
    let addr = SocketAddr::new(ip, port);
    let path = hc
        .pointer("/httpHealthCheck/requestPath")
        .and_then(Value::as_str);
    tokio::time::timeout(timeout, async {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            return Outcome::Unreachable;
        };
        let Some(path) = path else {
            return Outcome::Passed;
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nUser-Agent: GoogleHC/1.0\r\nConnection: close\r\n\r\n");
        if stream.write_all(request.as_bytes()).await.is_err() {
            return Outcome::Failed;
        }
        if status_is_200(&mut stream).await {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    })
    .await
    .unwrap_or(Outcome::Unreachable)
}

/// Whether the response's status line says 200 (read until the status code is in).
async fn status_is_200(stream: &mut tokio::net::TcpStream) -> bool {
    const STATUS_END: usize = "HTTP/1.1 200".len();
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < STATUS_END {
        match stream.read(&mut head[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(read) => n += read,
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(outcomes: &[Outcome]) -> State {
        let mut e = Entry::new("1", tokio::time::Instant::now());
        for o in outcomes {
            e.record(*o, 2, 3);
        }
        e.state
    }

    #[test]
    fn the_unhealthy_state_says_what_the_last_failure_was() {
        use Outcome::{Failed, Passed, Unreachable};
        assert_eq!(after(&[Passed]), State::Unknown);
        assert_eq!(after(&[Passed, Passed]), State::Healthy);
        assert_eq!(after(&[Failed, Failed, Failed]), State::Unhealthy);
        assert_eq!(after(&[Unreachable; 3]), State::Timeout);
        // Both kinds of failure count towards the same threshold.
        assert_eq!(after(&[Failed, Unreachable, Failed]), State::Unhealthy);
        assert_eq!(after(&[Failed, Failed, Unreachable]), State::Timeout);
        // Below the threshold, the last verdict stands.
        assert_eq!(
            after(&[Passed, Passed, Unreachable, Unreachable]),
            State::Healthy
        );
        // Once failing, the state follows the latest failure.
        assert_eq!(
            after(&[Failed, Failed, Failed, Unreachable]),
            State::Timeout
        );
        assert_eq!(
            after(&[Unreachable, Unreachable, Unreachable, Passed, Passed]),
            State::Healthy
        );
    }

    #[test]
    fn unreachable_instances_are_unhealthy_for_autohealing_too() {
        let health = Health::default();
        let now = tokio::time::Instant::now();
        let hc = serde_json::json!({"healthyThreshold": 1, "unhealthyThreshold": 1});
        for (instance, outcome) in [
            ("a", Outcome::Unreachable),
            ("b", Outcome::Failed),
            ("c", Outcome::Passed),
        ] {
            let id = ("hc".to_owned(), instance.to_owned());
            health.lock().insert(id.clone(), Entry::new("1", now));
            health.record(&id, &format!("group-{instance}"), outcome, &hc);
        }
        assert_eq!(
            health.take_changed(),
            BTreeSet::from(["group-a", "group-b", "group-c"].map(String::from)),
            "each group whose instance changed, to be looked at"
        );
        assert!(health.take_changed().is_empty());
        assert_eq!(health.state("hc", "a"), "TIMEOUT");
        assert_eq!(health.state("hc", "b"), "UNHEALTHY");
        assert_eq!(health.state("hc", "c"), "HEALTHY");
        assert_eq!(health.state("hc", "d"), "UNKNOWN");
        assert!(health.is_unhealthy("hc", "a") && health.is_unhealthy("hc", "b"));
        assert!(!health.is_unhealthy("hc", "c") && !health.is_unhealthy("hc", "d"));
    }

    #[tokio::test]
    async fn only_a_200_status_passes_an_http_probe() {
        use tokio::net::TcpListener;
        let answering = |status: &'static str| async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(status.as_bytes()).await;
                }
            });
            addr
        };
        let status_of = |addr: SocketAddr| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            status_is_200(&mut s).await
        };
        assert!(status_of(answering("HTTP/1.1 200 OK\r\n\r\n").await).await);
        assert!(!status_of(answering("HTTP/1.1 503 Service Unavailable\r\n\r\n").await).await);
        assert!(
            !status_of(answering("").await).await,
            "closed without an answer"
        );
    }
}
