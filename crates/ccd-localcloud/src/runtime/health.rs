//! Autohealing health: each managed group with an autohealing policy has its
//! instances probed as its health check says (HTTP path or TCP connect,
//! interval, timeout, thresholds), from the health-check source range, so
//! firewall rules apply to probes as they do on Compute Engine.

use std::collections::HashMap;
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
    Unhealthy,
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    streak: u32,
    last_ok: bool,
    next_due: tokio::time::Instant,
    in_flight: bool,
}

/// Probe results by (health check key, instance key).
#[derive(Debug, Clone, Default)]
pub struct Health {
    entries: Arc<Mutex<HashMap<(String, String), Entry>>>,
}

impl Health {
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

    pub fn is_unhealthy(&self, hc: &str, instance: &str) -> bool {
        self.get(hc, instance) == Some(State::Unhealthy)
    }

    /// `detailedHealthState` for listManagedInstances.
    pub fn state(&self, hc: &str, instance: &str) -> &'static str {
        match self.get(hc, instance) {
            Some(State::Healthy) => "HEALTHY",
            Some(State::Unhealthy) => "UNHEALTHY",
            _ => "UNKNOWN",
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
                if instance["status"] != "RUNNING" {
                    continue;
                }
                let id = (hc_key.clone(), m.instance.clone());
                {
                    let mut entries = self.lock();
                    let entry = entries.entry(id.clone()).or_insert(Entry {
                        state: State::Unknown,
                        streak: 0,
                        last_ok: false,
                        next_due: now,
                        in_flight: false,
                    });
                    if entry.in_flight || entry.next_due > now {
                        continue;
                    }
                    entry.in_flight = true;
                    entry.next_due = now + interval;
                }
                let (health, cloud, hc, mig_key) =
                    (self.clone(), cloud.clone(), hc.clone(), mig_key.clone());
                tokio::spawn(async move {
                    let ok = probe(&cloud, &hc, &mig_key, &instance).await;
                    health.record(&id, ok, &hc);
                });
            }
        }
    }

    fn record(&self, id: &(String, String), ok: bool, hc: &Value) {
        let healthy_threshold = hc["healthyThreshold"].as_u64().unwrap_or(2) as u32;
        let unhealthy_threshold = hc["unhealthyThreshold"].as_u64().unwrap_or(2) as u32;
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(id) else { return };
        e.in_flight = false;
        e.streak = if e.last_ok == ok { e.streak + 1 } else { 1 };
        e.last_ok = ok;
        let before = e.state;
        if ok && e.streak >= healthy_threshold {
            e.state = State::Healthy;
        } else if !ok && e.streak >= unhealthy_threshold {
            e.state = State::Unhealthy;
        }
        if before != e.state {
            tracing::info!(health_check = %id.0, instance = %id.1, state = ?e.state, "health changed");
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

async fn probe(cloud: &Arc<Cloud>, hc: &Value, mig_key: &str, instance: &Value) -> bool {
    if super::instances::is_simulated(cloud, instance) {
        return true;
    }
    let Some(ip) = instance["networkInterfaces"][0]["networkIP"]
        .as_str()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
    else {
        return false;
    };
    let Some(port) = probe_port(cloud, hc, mig_key) else {
        return false;
    };
    if !super::firewall::admits(cloud, PROBE_SOURCE, instance, port) {
        return false;
    }
    let timeout = Duration::from_secs(hc["timeoutSec"].as_u64().unwrap_or(5).max(1));
    let addr = SocketAddr::new(ip, port);
    let path = hc
        .pointer("/httpHealthCheck/requestPath")
        .and_then(Value::as_str);
    tokio::time::timeout(timeout, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let Some(path) = path else { return Some(true) };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nUser-Agent: GoogleHC/1.0\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let n = stream.read(&mut head).await.ok()?;
        let line = std::str::from_utf8(&head[..n]).ok()?;
        Some(line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"))
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false)
}
