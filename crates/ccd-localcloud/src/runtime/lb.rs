//! Load balancers: each forwarding rule whose target is an HTTP(S) proxy
//! becomes a real listener (a ccd-lb frontend) that serves its URL map's
//! backend services; each backend service proxies to the RUNNING instances
//! of its instance groups, probed by its health check. Connections to
//! instances pass the firewall like any other. Routes retry and services eject
//! failing instances as their `retryPolicy` and `outlierDetection` say. A URL map's
//! `defaultUrlRedirect` makes its listeners redirect every request instead.

mod redirect;
mod resilience;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ccd_lb::redirect::RedirectFrontend;
use ccd_lb::{
    BackendConfig, BackendService, BackendServiceConfig, CertificatePem, ConnectionPolicy,
    Frontend, FrontendConfig, HealthCheck, HealthCheckProtocol, HealthState, HostRule, PathMatcher,
    PathRule, RouteAction, UpstreamNetwork, UrlMap,
};
use serde_json::{Value, json};

use self::redirect::{Serve, Served};
use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::managed::{self, Action};
use crate::paths;

/// Ports below this need root; without it a listener takes port + the
/// configured offset (8000 unless set: 443 becomes 8443).
const PRIVILEGED: u16 = 1024;
pub const DEFAULT_UNPRIVILEGED_OFFSET: u16 = 8000;

#[derive(Debug, Clone, Default)]
pub struct Balancers {
    state: Arc<Mutex<State>>,
    /// What the backend services answered over the last hour (Cloud Monitoring's view).
    traffic: Arc<Mutex<crate::monitoring::history::History>>,
}

struct State {
    services: HashMap<String, (BackendService, BackendServiceConfig)>,
    frontends: HashMap<String, Listener>,
    unprivileged_offset: u16,
}

impl Default for State {
    fn default() -> Self {
        State {
            services: HashMap::new(),
            frontends: HashMap::new(),
            unprivileged_offset: DEFAULT_UNPRIVILEGED_OFFSET,
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("services", &self.services.len())
            .field("frontends", &self.frontends.len())
            .finish()
    }
}

struct Listener {
    frontend: Served,
    requested: SocketAddr,
    tls: bool,
    /// A redirect, rather than a proxy of services.
    redirect: bool,
    url_map: String,
    certificates: Vec<String>,
}

/// A listener a forwarding rule has: where it was asked to listen and where it does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerInfo {
    pub forwarding_rule: String,
    pub requested: SocketAddr,
    pub listening: SocketAddr,
    pub tls: bool,
}

/// The firewall, asked by the load balancer before it connects to an instance.
struct FirewallPolicy {
    cloud: Weak<Cloud>,
}

impl ConnectionPolicy for FirewallPolicy {
    fn allows(&self, source: IpAddr, backend_id: &str, backend: SocketAddr) -> bool {
        let Some(cloud) = self.cloud.upgrade() else {
            return false;
        };
        let Some(instance) = cloud.store.get(backend_id) else {
            return false;
        };
        super::firewall::admits(&cloud, source, &instance, backend.port())
    }
}

impl Balancers {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a listener on a privileged port goes when binding it is refused.
    pub fn set_unprivileged_offset(&self, offset: u16) {
        self.lock().unprivileged_offset = offset;
    }

    pub fn listeners(&self) -> Vec<ListenerInfo> {
        let mut out: Vec<ListenerInfo> = self
            .lock()
            .frontends
            .iter()
            .map(|(k, l)| ListenerInfo {
                forwarding_rule: k.clone(),
                requested: l.requested,
                listening: l.frontend.local_addr(),
                tls: l.tls,
            })
            .collect();
        out.sort_by(|a, b| a.forwarding_rule.cmp(&b.forwarding_rule));
        out
    }

    /// Health of the backends of `service` that belong to `group`.
    pub fn health(&self, service: &str) -> Vec<ccd_lb::BackendHealth> {
        self.lock()
            .services
            .get(service)
            .map(|(s, _)| s.health())
            .unwrap_or_default()
    }

    /// Records every running backend service's counters as of `now`.
    pub fn sample_traffic(&self, now: std::time::SystemTime) {
        let stats: Vec<(String, Vec<ccd_lb::BackendStats>)> = self
            .lock()
            .services
            .iter()
            .map(|(key, (service, _))| (key.clone(), service.stats()))
            .collect();
        self.traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(now, stats);
    }

    /// Reads the traffic history.
    pub fn with_traffic<T>(
        &self,
        read: impl FnOnce(&crate::monitoring::history::History) -> T,
    ) -> T {
        read(&self.traffic.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub async fn reconcile(&self, cloud: &Arc<Cloud>) {
        self.reconcile_services(cloud);
        self.reconcile_frontends(cloud).await;
    }

    fn reconcile_services(&self, cloud: &Arc<Cloud>) {
        let keys = cloud
            .store
            .keys("projects/", |k| k.contains("/backendServices/"));
        let mut state = self.lock();
        state.services.retain(|k, _| keys.contains(k));
        for key in keys {
            let Some(res) = cloud.store.get(&key) else {
                continue;
            };
            let config = service_config(cloud, &key, &res);
            match state.services.get_mut(&key) {
                Some((_, current)) if *current == config => {}
                Some((service, current)) => match service.update(config.clone()) {
                    Ok(()) => *current = config,
                    Err(e) => {
                        tracing::warn!(backend_service = %key, error = %e, "cannot update the backend service")
                    }
                },
                None => {
                    let network = UpstreamNetwork::with_policy(Arc::new(FirewallPolicy {
                        cloud: Arc::downgrade(cloud),
                    }));
                    match BackendService::new(config.clone(), network) {
                        Ok(service) => {
                            state.services.insert(key, (service, config));
                        }
                        Err(e) => {
                            tracing::warn!(backend_service = %key, error = %e, "cannot start the backend service")
                        }
                    }
                }
            }
        }
    }

    async fn reconcile_frontends(&self, cloud: &Arc<Cloud>) {
        let keys = cloud
            .store
            .keys("projects/", |k| k.contains("/forwardingRules/"));
        let gone: Vec<Listener> = {
            let mut state = self.lock();
            let stale: Vec<String> = state
                .frontends
                .keys()
                .filter(|k| !keys.contains(k))
                .cloned()
                .collect();
            stale
                .iter()
                .filter_map(|k| state.frontends.remove(k))
                .collect()
        };
        for listener in gone {
            tracing::info!(address = %listener.frontend.local_addr(), "load balancer listener closed");
            tokio::spawn(listener.frontend.shutdown(Duration::from_secs(10)));
        }
        // HTTPS listeners first: a redirect to HTTPS names where they really listen.
        let mut rules: Vec<(String, Arc<Value>)> = keys
            .into_iter()
            .filter_map(|k| cloud.store.get(&k).map(|r| (k, r)))
            .collect();
        rules.sort_by_key(|(_, r)| {
            !r["target"]
                .as_str()
                .is_some_and(|t| t.contains("/targetHttpsProxies/"))
        });
        for (key, rule) in rules {
            let key = key.as_str();
            if let Err(e) = self.reconcile_frontend(cloud, key, &rule).await {
                tracing::debug!(forwarding_rule = %key, error = %e, "listener not ready");
            }
        }
    }

    async fn reconcile_frontend(
        &self,
        cloud: &Arc<Cloud>,
        key: &str,
        rule: &Value,
    ) -> Result<(), String> {
        let proxy_key = cloud.key_of(rule["target"].as_str().ok_or("no target proxy")?);
        let proxy = cloud.store.get(&proxy_key).ok_or("target proxy missing")?;
        let tls = proxy_key.contains("/targetHttpsProxies/");
        let map_key = cloud.key_of(proxy["urlMap"].as_str().ok_or("no URL map")?);
        let map = cloud.store.get(&map_key).ok_or("URL map missing")?;
        let cert_keys: Vec<String> = proxy["sslCertificates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|l| cloud.key_of(l))
            .collect();
        let ip: IpAddr = rule["IPAddress"]
            .as_str()
            .and_then(|a| resolve_address(cloud, a))
            .ok_or("no IP address")?;
        let port: u16 = rule["portRange"]
            .as_str()
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(if tls { 443 } else { 80 });
        let requested = SocketAddr::new(ip, port);
        let (serve, url_map_signature) = match redirect::default_redirect(&map)? {
            Some(mut r) => {
                r.https_port = redirect::https_port_of(
                    ip,
                    self.lock()
                        .frontends
                        .iter()
                        .filter(|(k, _)| k.as_str() != key)
                        .map(|(_, l)| (l.requested, l.frontend.local_addr(), l.tls)),
                );
                // The HTTPS listener may move (or come up later): that changes the redirect too.
                let signature = format!("{map}{:?}", r.https_port);
                (Serve::Redirect(r), signature)
            }
            None => (Serve::Routes(self.url_map(&map)?), format!("{map}")),
        };
        let is_redirect = matches!(serve, Serve::Redirect(_));
        let certificates = if tls {
            certificates(cloud, &cert_keys)?
        } else {
            Vec::new()
        };
        let cert_signature: Vec<String> = certificates
            .iter()
            .map(|c| c.cert_chain_pem.clone())
            .collect();

        let existing = {
            let state = self.lock();
            state.frontends.get(key).map(|l| {
                (
                    l.requested == requested && l.tls == tls && l.redirect == is_redirect,
                    l.url_map == url_map_signature,
                    l.certificates == cert_signature,
                )
            })
        };
        match existing {
            Some((true, same_map, same_certs)) => {
                let mut state = self.lock();
                let Some(l) = state.frontends.get_mut(key) else {
                    return Ok(());
                };
                if !same_map {
                    match (&l.frontend, &serve) {
                        (Served::Proxy(f), Serve::Routes(url_map)) => {
                            f.set_url_map(url_map).map_err(|e| e.to_string())?
                        }
                        (Served::Redirect(f), Serve::Redirect(r)) => f.set_redirect(r.clone()),
                        // Told apart above: a change of kind binds anew.
                        _ => return Err("listener of another kind".to_owned()),
                    }
                    l.url_map = url_map_signature;
                }
                if !same_certs {
                    l.frontend
                        .set_certificates(&certificates)
                        .map_err(|e| e.to_string())?;
                    l.certificates = cert_signature;
                }
                return Ok(());
            }
            Some((false, _, _)) => {
                if let Some(old) = self.lock().frontends.remove(key) {
                    tokio::spawn(old.frontend.shutdown(Duration::from_secs(10)));
                }
            }
            None => {}
        }
        let name = paths::name_of(key).to_owned();
        let config = |addr: SocketAddr| {
            let mut c = if tls {
                FrontendConfig::https(name.clone(), addr, certificates.clone())
            } else {
                FrontendConfig::http(name.clone(), addr)
            };
            c.workers = 1;
            c
        };
        let (serve, config) = (&serve, &config);
        let bind = move |addr: SocketAddr| async move {
            match serve {
                Serve::Routes(url_map) => Frontend::bind(config(addr), url_map)
                    .await
                    .map(Served::Proxy),
                Serve::Redirect(r) => RedirectFrontend::bind(config(addr), r.clone())
                    .await
                    .map(Served::Redirect),
            }
        };
        let frontend = match bind(requested).await {
            Ok(f) => f,
            Err(_) if port < PRIVILEGED => {
                let offset = self.lock().unprivileged_offset;
                let fallback = SocketAddr::new(ip, port.saturating_add(offset));
                bind(fallback).await.map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        let scheme = if tls { "https" } else { "http" };
        tracing::info!(forwarding_rule = %key, "load balancer listening on {scheme}://{}", frontend.local_addr());
        self.lock().frontends.insert(
            key.to_owned(),
            Listener {
                frontend,
                requested,
                tls,
                redirect: is_redirect,
                url_map: url_map_signature,
                certificates: cert_signature,
            },
        );
        Ok(())
    }

    /// The ccd-lb URL map for a Compute URL map.
    fn url_map(&self, map: &Value) -> Result<UrlMap, String> {
        let state = self.lock();
        let single_or_weighted =
            |service: Option<&Value>, weighted: Option<&Value>| -> Result<RouteAction, String> {
                if let Some(list) = weighted
                    .and_then(|w| w["weightedBackendServices"].as_array())
                    .filter(|l| !l.is_empty())
                {
                    let mut parts = Vec::new();
                    for w in list {
                        let key = key_of_link(w["backendService"].as_str().unwrap_or_default());
                        let (s, _) = state
                            .services
                            .get(&key)
                            .ok_or_else(|| format!("backend service {key} not running"))?;
                        parts.push((s.clone(), w["weight"].as_u64().unwrap_or(0) as u32));
                    }
                    return Ok(RouteAction::weighted(parts));
                }
                let key = key_of_link(service.and_then(Value::as_str).ok_or("no service")?);
                let (s, _) = state
                    .services
                    .get(&key)
                    .ok_or_else(|| format!("backend service {key} not running"))?;
                Ok(RouteAction::service(s.clone()))
            };
        let route =
            |service: Option<&Value>, action: Option<&Value>| -> Result<RouteAction, String> {
                let route = single_or_weighted(service, action)?;
                Ok(match resilience::retry_policy(action) {
                    Some(policy) => route.with_retry_policy(policy),
                    None => route,
                })
            };
        let mut url_map = UrlMap::new(route(
            map.get("defaultService"),
            map.get("defaultRouteAction"),
        )?);
        for m in map["pathMatchers"].as_array().into_iter().flatten() {
            let mut matcher = PathMatcher {
                name: m["name"].as_str().unwrap_or_default().to_owned(),
                default_route: route(m.get("defaultService"), m.get("defaultRouteAction"))?,
                path_rules: Vec::new(),
            };
            for r in m["pathRules"].as_array().into_iter().flatten() {
                let paths = r["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                matcher.path_rules.push(PathRule {
                    paths,
                    route: route(r.get("service"), r.get("routeAction"))?,
                });
            }
            url_map.path_matchers.push(matcher);
        }
        for h in map["hostRules"].as_array().into_iter().flatten() {
            let hosts = h["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            url_map.host_rules.push(HostRule {
                hosts,
                path_matcher: h["pathMatcher"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(url_map)
    }

    pub async fn shutdown(&self) {
        let frontends: Vec<Listener> = self.lock().frontends.drain().map(|(_, l)| l).collect();
        for l in frontends {
            l.frontend.shutdown(Duration::from_secs(5)).await;
        }
        self.lock().services.clear();
    }
}

fn key_of_link(link: &str) -> String {
    paths::normalize(link, "")
}

/// An IP literal, or the address of an address resource.
fn resolve_address(cloud: &Cloud, text: &str) -> Option<IpAddr> {
    text.parse().ok().or_else(|| {
        cloud
            .store
            .get(&cloud.key_of(text))
            .and_then(|a| a["address"].as_str()?.parse().ok())
    })
}

fn certificates(cloud: &Cloud, keys: &[String]) -> Result<Vec<CertificatePem>, String> {
    keys.iter()
        .map(|k| {
            let c = cloud
                .store
                .get(k)
                .ok_or_else(|| format!("certificate {k} missing"))?;
            Ok(CertificatePem {
                cert_chain_pem: c["certificate"].as_str().unwrap_or_default().to_owned(),
                private_key_pem: c["privateKey"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// A backend service's configuration: its groups' live instances at their named port.
fn service_config(cloud: &Cloud, key: &str, res: &Value) -> BackendServiceConfig {
    let mut config = BackendServiceConfig::new(paths::name_of(key));
    config.timeout = Duration::from_secs(res["timeoutSec"].as_u64().unwrap_or(30).max(1));
    config.connection_draining_timeout = Duration::from_secs(
        res["connectionDraining"]["drainingTimeoutSec"]
            .as_u64()
            .unwrap_or(300),
    );
    config.load_balancing = resilience::load_balancing(res);
    config.outlier_detection = resilience::outlier_detection(res);
    let hc = res["healthChecks"][0]
        .as_str()
        .and_then(|l| cloud.store.get(&cloud.key_of(l)));
    let port_name = res["portName"].as_str().unwrap_or("http");
    if let Some(hc) = &hc {
        config.health_check = health_check(hc);
    }
    for backend in res["backends"].as_array().into_iter().flatten() {
        let scaler = backend["capacityScaler"].as_f64().unwrap_or(1.0) as f32;
        let group_key = cloud.key_of(backend["group"].as_str().unwrap_or_default());
        let Some(group) = cloud.store.get(&group_key) else {
            continue;
        };
        let port = group["namedPorts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { continue };
        let mig = group_key.replacen("/instanceGroups/", "/instanceGroupManagers/", 1);
        for m in managed::of_group(&cloud.store, &mig) {
            if m.action == Action::Deleting || m.action == Action::Abandoning {
                continue;
            }
            let Some(instance) = cloud.store.get(&m.instance) else {
                continue;
            };
            if instance["status"] != "RUNNING" {
                continue;
            }
            let Some(ip) = instance["networkInterfaces"][0]["networkIP"]
                .as_str()
                .and_then(|i| i.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let mut b = BackendConfig::new(m.instance.clone(), SocketAddr::new(ip, port));
            b.capacity_scaler = scaler.clamp(0.0, 1.0);
            config.backends.push(b);
        }
    }
    if let Some(hc) = &hc
        && config.health_check.port.is_none()
    {
        config.health_check.port = super::health::probe_port_named(hc, |name| {
            res["backends"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|b| {
                    let g = cloud.store.get(&cloud.key_of(b["group"].as_str()?))?;
                    g["namedPorts"]
                        .as_array()?
                        .iter()
                        .find(|p| p["name"] == name)?["port"]
                        .as_u64()
                })
        });
    }
    config
}

fn health_check(hc: &Value) -> HealthCheck {
    let mut check = HealthCheck {
        check_interval: Duration::from_secs(hc["checkIntervalSec"].as_u64().unwrap_or(5).max(1)),
        timeout: Duration::from_secs(hc["timeoutSec"].as_u64().unwrap_or(5).max(1)),
        healthy_threshold: hc["healthyThreshold"].as_u64().unwrap_or(2).max(1) as u32,
        unhealthy_threshold: hc["unhealthyThreshold"].as_u64().unwrap_or(2).max(1) as u32,
        ..HealthCheck::default()
    };
    let spec = ["httpHealthCheck", "httpsHealthCheck", "http2HealthCheck"]
        .iter()
        .find_map(|f| hc.get(*f));
    check.protocol = match spec {
        Some(s) => HealthCheckProtocol::Http {
            path: s["requestPath"].as_str().unwrap_or("/").to_owned(),
            host: s["host"].as_str().map(str::to_owned),
        },
        None => HealthCheckProtocol::Tcp,
    };
    let fixed = [
        "httpHealthCheck",
        "httpsHealthCheck",
        "http2HealthCheck",
        "tcpHealthCheck",
    ]
    .iter()
    .find_map(|f| hc.get(*f)?["port"].as_u64());
    check.port = fixed.and_then(|p| u16::try_from(p).ok());
    check
}

/// `backendServices.getHealth`: the health of one group's instances.
pub fn get_health(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let key = call.key()?;
    cloud
        .store
        .get(key)
        .ok_or_else(|| ApiError::not_found(key))?;
    let group = cloud.key_of(
        call.body["group"]
            .as_str()
            .ok_or_else(|| ApiError::required("group"))?,
    );
    let mig = group.replacen("/instanceGroups/", "/instanceGroupManagers/", 1);
    let members: Vec<String> = managed::of_group(&cloud.store, &mig)
        .into_iter()
        .map(|m| m.instance)
        .collect();
    let statuses: Vec<Value> = cloud
        .balancers
        .health(key)
        .into_iter()
        .filter(|h| members.contains(&h.id))
        .map(|h| {
            let state = match h.state {
                HealthState::Healthy if h.capacity_scaler > 0.0 => "HEALTHY",
                HealthState::Healthy => "DRAINING",
                _ => "UNHEALTHY",
            };
            json!({"instance": cloud.link(&h.id), "ipAddress": h.address.ip().to_string(), "port": h.address.port(), "healthState": state})
        })
        .collect();
    let mut body = json!({"kind": "compute#backendServiceGroupHealth"});
    if !statuses.is_empty() {
        body["healthStatus"] = Value::Array(statuses);
    }
    Ok(body)
}

/// The proxies' and forwarding rules' set verbs: one field, as an operation.
pub async fn set_verb(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let key = call.key()?.to_owned();
    let stored = cloud
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    let (field, value) = match call.method.name.as_str() {
        "setUrlMap" => ("urlMap", reference(cloud, call, &call.body["urlMap"])?),
        "setTarget" => ("target", reference(cloud, call, &call.body["target"])?),
        "setSslCertificates" => {
            let list = call.body["sslCertificates"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let links: Result<Vec<Value>, ApiError> =
                list.iter().map(|c| reference(cloud, call, c)).collect();
            ("sslCertificates", Value::Array(links?))
        }
        "setLabels" => {
            crate::generic::check_fingerprint(
                &key,
                &json!({"fingerprint": stored["labelFingerprint"]}),
                &json!({"fingerprint": call.body["labelFingerprint"]}),
            )?;
            ("labels", call.body["labels"].clone())
        }
        other => {
            return Err(crate::handlers::not_implemented(
                &call.method.resource,
                other,
            ));
        }
    };
    let change: crate::ops::Change = Box::new(move |r| {
        r[field] = value;
        if field == "labels" {
            r["labelFingerprint"] =
                crate::generic::fingerprint_text(crate::clock::new_id().as_bytes()).into();
        }
        Ok(())
    });
    cloud
        .change_operation(call, &call.method.name, &key, change)
        .await
}

/// A reference in a verb's body, checked to exist, as a full link.
fn reference(cloud: &Cloud, call: &Call, v: &Value) -> Result<Value, ApiError> {
    let text = v
        .as_str()
        .ok_or_else(|| ApiError::invalid("a reference must be a string"))?;
    let key = paths::normalize(text, &call.project);
    cloud
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    Ok(cloud.link(&key).into())
}
