//! A URL map's `retryPolicy` and a backend service's `outlierDetection` through the API: kept
//! as sent, checked as Compute checks them, and honoured by the load balancer, which sends a
//! hung instance's request on to the other instance and then sends the hung one no more.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PROJECT, ZONE, assert_error, done, eventually};
use google_cloud_compute_v1::client::{BackendServices, HealthChecks, UrlMaps};
use google_cloud_compute_v1::model;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn seconds(s: i64) -> model::Duration {
    model::Duration::new().set_seconds(s)
}

fn retry_policy() -> model::HttpRetryPolicy {
    model::HttpRetryPolicy::new()
        .set_retry_conditions(["connect-failure", "gateway-error", "refused-stream"])
        .set_num_retries(2_u32)
        .set_per_try_timeout(seconds(5))
}

fn map_with(name: &str, service: &str, policy: model::HttpRetryPolicy) -> model::UrlMap {
    model::UrlMap::new()
        .set_name(name)
        .set_default_service(service)
        .set_default_route_action(model::HttpRouteAction::new().set_retry_policy(policy))
}

#[tokio::test]
async fn retry_policy_and_outlier_detection_round_trip_and_are_checked() {
    let cloud = common::start().await;
    let checks = client!(HealthChecks, cloud);
    let services = client!(BackendServices, cloud);
    let url_maps = client!(UrlMaps, cloud);
    let check = model::HealthCheck::new()
        .set_name("hc")
        .set_type(model::health_check::Type::Tcp)
        .set_tcp_health_check(model::TCPHealthCheck::new().set_port(8080));
    done(
        checks
            .insert()
            .set_project(PROJECT)
            .set_body(check)
            .poller(),
    )
    .await;

    let outlier = model::OutlierDetection::new()
        .set_consecutive_errors(5)
        .set_consecutive_gateway_failure(2)
        .set_enforcing_consecutive_errors(0)
        .set_enforcing_consecutive_gateway_failure(100)
        .set_interval(seconds(1))
        .set_base_ejection_time(seconds(30))
        .set_max_ejection_percent(50);
    let service = model::BackendService::new()
        .set_name("web-bs")
        .set_load_balancing_scheme(model::backend_service::LoadBalancingScheme::ExternalManaged)
        .set_protocol(model::backend_service::Protocol::Http)
        .set_health_checks(["global/healthChecks/hc"])
        .set_locality_lb_policy(model::backend_service::LocalityLbPolicy::RoundRobin)
        .set_outlier_detection(outlier.clone());
    done(
        services
            .insert()
            .set_project(PROJECT)
            .set_body(service)
            .poller(),
    )
    .await;
    let got = services
        .get()
        .set_project(PROJECT)
        .set_backend_service("web-bs")
        .send()
        .await
        .unwrap();
    assert_eq!(got.outlier_detection, Some(outlier));
    assert_eq!(
        got.locality_lb_policy,
        Some(model::backend_service::LocalityLbPolicy::RoundRobin)
    );

    // One backend service and a route action beside it: Compute allows both.
    let link = got.self_link.unwrap();
    let map = map_with("web-um", &link, retry_policy());
    done(
        url_maps
            .insert()
            .set_project(PROJECT)
            .set_body(map)
            .poller(),
    )
    .await;
    let got = url_maps
        .get()
        .set_project(PROJECT)
        .set_url_map("web-um")
        .send()
        .await
        .unwrap();
    assert_eq!(got.default_service.as_deref(), Some(link.as_str()));
    let kept = got.default_route_action.and_then(|a| a.retry_policy);
    assert_eq!(kept, Some(retry_policy()));

    // What Compute refuses: no retries, a condition it does not know (Envoy's `reset`).
    for (name, policy) in [
        ("no-retries", retry_policy().set_num_retries(0_u32)),
        ("reset", retry_policy().set_retry_conditions(["reset"])),
        (
            "zero-timeout",
            retry_policy().set_per_try_timeout(seconds(0)),
        ),
    ] {
        let map = map_with(name, &link, policy);
        assert_error(
            url_maps
                .insert()
                .set_project(PROJECT)
                .set_body(map)
                .send()
                .await,
            400,
            "invalid",
        );
    }
    common::finish(cloud).await;
}

/// The REST API, with every operation waited for.
struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    fn new(cloud: &ccd_localcloud::LocalCloud) -> Self {
        Self {
            http: common::http(cloud),
            base: format!("{}/compute/v1/projects/{PROJECT}", cloud.endpoint()),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.http.get(format!("{}/{path}", self.base)).send().await;
        response
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs `body`; waits for the operation and insists it succeeded.
    async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/{path}", self.base);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        let op: Value = response.error_for_status().unwrap().json().await.unwrap();
        if op["kind"] != "compute#operation" {
            return op;
        }
        let link = op["selfLink"].as_str().unwrap();
        let done: Value = eventually("the operation finishes", || async {
            let op: Value = self.http.get(link).send().await.ok()?.json().await.ok()?;
            (op["status"] == "DONE").then_some(op)
        })
        .await;
        assert!(done.get("error").is_none(), "{path}: {done}");
        done
    }
}

/// Accepts connections and never answers, like a stopped process; counts the requests that
/// reach it (TCP health probes send nothing).
async fn hung_instance(addr: SocketAddr) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(addr).await.unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                // Hold the connection open without answering.
                std::future::pending::<()>().await;
            });
        }
    });
    requests
}

/// Answers every HTTP/1.1 request on a connection with 200 `ok`.
async fn serving_instance(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Requests here have no body: one ends with its blank line.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancer_retries_a_hung_instance_and_ejects_it() {
    let cloud = common::start().await;
    let api = Rest::new(&cloud);
    let zone = format!("zones/{ZONE}");
    let simulated = json!({"items": [{"key": ccd_localcloud::LOCAL_RUN_METADATA_KEY, "value": r#"{"simulated": true}"#}]});
    api.post(
        "global/instanceTemplates",
        json!({"name": "t", "properties": {"machineType": "e2-small",
        "tags": {"items": ["web"]}, "metadata": simulated}}),
    )
    .await;
    api.post(
        "global/firewalls",
        json!({"name": "allow-lb", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"],
        "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
    )
    .await;
    api.post(
        "global/healthChecks",
        json!({"name": "hc", "type": "TCP", "tcpHealthCheck": {"port": 8080},
        "checkIntervalSec": 1, "timeoutSec": 1, "healthyThreshold": 1, "unhealthyThreshold": 2}),
    )
    .await;
    api.post(
        &format!("{zone}/instanceGroupManagers"),
        json!({"name": "web", "baseInstanceName": "web",
        "instanceTemplate": "global/instanceTemplates/t", "targetSize": 2}),
    )
    .await;
    let ips: Vec<String> = eventually("two instances run", || async {
        let list = api.get(&format!("{zone}/instances")).await;
        let ips: Vec<String> = list["items"]
            .as_array()?
            .iter()
            .filter(|i| i["status"] == "RUNNING")
            .filter_map(|i| {
                i["networkInterfaces"][0]["networkIP"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        (ips.len() == 2).then_some(ips)
    })
    .await;
    let hung = hung_instance(format!("{}:8080", ips[0]).parse().unwrap()).await;
    serving_instance(format!("{}:8080", ips[1]).parse().unwrap()).await;

    let group = api.get(&format!("{zone}/instanceGroups/web")).await;
    api.post(&format!("{zone}/instanceGroups/web/setNamedPorts"),
        json!({"namedPorts": [{"name": "http", "port": 8080}], "fingerprint": group["fingerprint"]})).await;
    api.post("global/backendServices", json!({"name": "web-bs", "loadBalancingScheme": "EXTERNAL_MANAGED",
        "protocol": "HTTP", "portName": "http", "healthChecks": ["global/healthChecks/hc"],
        "localityLbPolicy": "ROUND_ROBIN",
        "outlierDetection": {"consecutiveGatewayFailure": 1, "baseEjectionTime": {"seconds": "300"}},
        "backends": [{"group": group["selfLink"]}]})).await;
    api.post("global/urlMaps", json!({"name": "web-um", "defaultService": "global/backendServices/web-bs",
        "defaultRouteAction": {"retryPolicy": {"retryConditions": ["connect-failure", "gateway-error", "refused-stream"],
            "numRetries": 1, "perTryTimeout": {"seconds": "1"}}}})).await;
    api.post(
        "global/targetHttpProxies",
        json!({"name": "web-proxy", "urlMap": "global/urlMaps/web-um"}),
    )
    .await;
    api.post("global/addresses", json!({"name": "web-ip"}))
        .await;
    api.post(
        "global/forwardingRules",
        json!({"name": "web-fr", "IPAddress": "global/addresses/web-ip",
        "IPProtocol": "TCP", "portRange": "80", "target": "global/targetHttpProxies/web-proxy",
        "loadBalancingScheme": "EXTERNAL_MANAGED"}),
    )
    .await;

    let listener = eventually("the forwarding rule listens", || async {
        cloud.listeners().first().map(|l| l.listening)
    })
    .await;
    eventually("both instances are healthy", || async {
        let health = api
            .post(
                "global/backendServices/web-bs/getHealth",
                json!({"group": group["selfLink"]}),
            )
            .await;
        let states = health["healthStatus"].as_array()?;
        (states.len() == 2 && states.iter().all(|s| s["healthState"] == "HEALTHY")).then_some(())
    })
    .await;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..8 {
        let response = http
            .get(format!("http://{listener}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "retried on the serving instance");
        assert_eq!(response.text().await.unwrap(), "ok");
    }
    assert_eq!(
        hung.load(Ordering::SeqCst),
        1,
        "after its first timeout, the hung instance is ejected"
    );
    common::finish(cloud).await;
}
