//! Google's HTTP-to-HTTPS redirect for a global external Application Load Balancer: a URL map
//! with `defaultUrlRedirect` and no service, a target HTTP proxy on it and a forwarding rule on
//! port 80 beside the HTTPS rule on 443, on one reserved address. The port-80 listener answers
//! with the redirect, and following it reaches the app over HTTPS.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{PROJECT, REGION, ZONE, assert_error, done, eventually};
use google_cloud_compute_v1::client::{
    GlobalAddresses, GlobalForwardingRules, SslCertificates, TargetHttpsProxies, UrlMaps,
};
use google_cloud_compute_v1::model;
use google_cloud_compute_v1::model::http_redirect_action::RedirectResponseCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const DOMAIN: &str = "app.example.com";

/// The REST API, with every operation waited for (the SDK's target HTTP proxies are not
/// among this crate's test features).
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

/// The app: answers each HTTP/1.1 request with its request line and the scheme the load
/// balancer says the client used.
async fn echo_instance(addr: SocketAddr) {
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
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let line = head.lines().next().unwrap_or_default();
                        let proto = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("x-forwarded-proto")
                                    .then(|| value.trim().to_owned())
                            })
                            .unwrap_or_default();
                        let body = format!("{line}\nproto={proto}");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
}

/// Everything behind the HTTPS proxy: an instance running the echo app, its group, health
/// check, firewall and backend service. Returns the backend service's link.
async fn backend(api: &Rest) -> String {
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
        "instanceTemplate": "global/instanceTemplates/t", "targetSize": 1}),
    )
    .await;
    let ip: String = eventually("the instance runs", || async {
        let list = api.get(&format!("{zone}/instances")).await;
        list["items"]
            .as_array()?
            .iter()
            .find(|i| i["status"] == "RUNNING")?["networkInterfaces"][0]["networkIP"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    echo_instance(format!("{ip}:8080").parse().unwrap()).await;
    let group = api.get(&format!("{zone}/instanceGroups/web")).await;
    api.post(
        &format!("{zone}/instanceGroups/web/setNamedPorts"),
        json!({"namedPorts": [{"name": "http", "port": 8080}], "fingerprint": group["fingerprint"]}),
    )
    .await;
    api.post(
        "global/backendServices",
        json!({"name": "web-bs", "loadBalancingScheme": "EXTERNAL_MANAGED", "protocol": "HTTP",
        "portName": "http", "healthChecks": ["global/healthChecks/hc"],
        "backends": [{"group": group["selfLink"]}]}),
    )
    .await;
    eventually("the instance is healthy", || async {
        let health = api
            .post(
                "global/backendServices/web-bs/getHealth",
                json!({"group": group["selfLink"]}),
            )
            .await;
        (health["healthStatus"][0]["healthState"] == "HEALTHY").then_some(())
    })
    .await;
    api.get("global/backendServices/web-bs").await["selfLink"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn redirect_map(name: &str) -> model::UrlMap {
    model::UrlMap::new()
        .set_name(name)
        .set_default_url_redirect(
            model::HttpRedirectAction::new()
                .set_https_redirect(true)
                .set_redirect_response_code(RedirectResponseCode::MovedPermanentlyDefault),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_80_redirects_to_the_https_listener_of_the_same_address() {
    let cloud = common::start().await;
    let api = Rest::new(&cloud);
    let url_maps = client!(UrlMaps, cloud);
    let certs = client!(SslCertificates, cloud);
    let https_proxies = client!(TargetHttpsProxies, cloud);
    let addresses = client!(GlobalAddresses, cloud);
    let rules = client!(GlobalForwardingRules, cloud);
    let service = backend(&api).await;

    // The HTTPS load balancer: map, managed certificate, proxy, reserved address, rule on 443.
    let web_map = model::UrlMap::new()
        .set_name("web-map")
        .set_default_service(&service);
    done(
        url_maps
            .insert()
            .set_project(PROJECT)
            .set_body(web_map)
            .poller(),
    )
    .await;
    let cert = model::SslCertificate::new()
        .set_name("web-cert")
        .set_type(model::ssl_certificate::Type::Managed)
        .set_managed(model::SslCertificateManagedSslCertificate::new().set_domains([DOMAIN]));
    done(certs.insert().set_project(PROJECT).set_body(cert).poller()).await;
    let proxy = model::TargetHttpsProxy::new()
        .set_name("web-https-proxy")
        .set_url_map("global/urlMaps/web-map")
        .set_ssl_certificates(["global/sslCertificates/web-cert"]);
    done(
        https_proxies
            .insert()
            .set_project(PROJECT)
            .set_body(proxy)
            .poller(),
    )
    .await;
    done(
        addresses
            .insert()
            .set_project(PROJECT)
            .set_body(model::Address::new().set_name("web-ip"))
            .poller(),
    )
    .await;
    let address = addresses
        .get()
        .set_project(PROJECT)
        .set_address("web-ip")
        .send()
        .await
        .unwrap();
    let ip: IpAddr = address.address.unwrap().parse().unwrap();
    // Port 443 taken on the address (when this test may bind it at all): the HTTPS listener
    // moves up, so the redirect has to name where it really is.
    let _taken = std::net::TcpListener::bind((ip, 443));
    let scheme = model::forwarding_rule::LoadBalancingScheme::ExternalManaged;
    let rule = |name: &str, port: &str, target: &str| {
        model::ForwardingRule::new()
            .set_name(name)
            .set_ip_protocol(model::forwarding_rule::IPProtocol::Tcp)
            .set_ip_address(address.self_link.clone().unwrap())
            .set_port_range(port)
            .set_target(target)
            .set_load_balancing_scheme(scheme.clone())
    };
    done(
        rules
            .insert()
            .set_project(PROJECT)
            .set_body(rule(
                "web-https",
                "443",
                "global/targetHttpsProxies/web-https-proxy",
            ))
            .poller(),
    )
    .await;

    // The redirect: a map with defaultUrlRedirect only, an HTTP proxy, a rule on 80.
    done(
        url_maps
            .insert()
            .set_project(PROJECT)
            .set_body(redirect_map("web-redirect"))
            .poller(),
    )
    .await;
    let stored = url_maps
        .get()
        .set_project(PROJECT)
        .set_url_map("web-redirect")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.default_url_redirect,
        redirect_map("x").default_url_redirect
    );
    assert_eq!(stored.default_service, None);
    api.post(
        "global/targetHttpProxies",
        json!({"name": "web-http-proxy", "urlMap": "global/urlMaps/web-redirect"}),
    )
    .await;
    let http_proxy = api.get("global/targetHttpProxies/web-http-proxy").await;
    assert!(
        http_proxy["urlMap"]
            .as_str()
            .unwrap()
            .ends_with("/global/urlMaps/web-redirect")
    );
    done(
        rules
            .insert()
            .set_project(PROJECT)
            .set_body(rule(
                "web-http",
                "80",
                "global/targetHttpProxies/web-http-proxy",
            ))
            .poller(),
    )
    .await;
    let http_rule = rules
        .get()
        .set_project(PROJECT)
        .set_forwarding_rule("web-http")
        .send()
        .await
        .unwrap();
    assert_eq!(http_rule.ip_address, Some(ip.to_string()));
    assert_eq!(http_rule.port_range.as_deref(), Some("80-80"));

    // Both rules listen on the one address, each on its port (or where it was moved).
    let (http_at, https_at) = eventually("both rules listen", || async {
        let listeners = cloud.listeners();
        let of = |name: &str| {
            listeners
                .iter()
                .find(|l| l.forwarding_rule.ends_with(name))
                .map(|l| (l.requested, l.listening))
        };
        Some((of("/web-http")?, of("/web-https")?))
    })
    .await;
    assert_eq!(http_at.0, SocketAddr::new(ip, 80));
    assert_eq!(https_at.0, SocketAddr::new(ip, 443));
    assert_eq!(https_at.1.ip(), ip);

    let path = "/shop/cart?item=7&q=a%20b";
    let https_port = match https_at.1.port() {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let expected = format!("https://{DOMAIN}{https_port}{path}");
    let client = |follow: bool| {
        let policy = match follow {
            true => reqwest::redirect::Policy::limited(2),
            false => reqwest::redirect::Policy::none(),
        };
        reqwest::Client::builder()
            .resolve(DOMAIN, SocketAddr::new(ip, 0))
            // The managed certificate is self-signed here.
            .danger_accept_invalid_certs(true)
            .redirect(policy)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let http_url = format!("http://{DOMAIN}:{}{path}", http_at.1.port());
    let location = eventually("the redirect names the HTTPS listener", || async {
        let response = client(false).get(&http_url).send().await.ok()?;
        assert_eq!(response.status(), 301, "MOVED_PERMANENTLY_DEFAULT");
        let location = response
            .headers()
            .get("location")?
            .to_str()
            .ok()?
            .to_owned();
        (location == expected).then_some(location)
    })
    .await;

    let response = client(true).get(&http_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.url().as_str(), location);
    assert_eq!(
        response.text().await.unwrap(),
        format!("GET {path} HTTP/1.1\nproto=https"),
        "the app got the same path and query, over HTTPS"
    );
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_url_map_sends_requests_one_way_at_each_level() {
    let cloud = common::start().await;
    let api = Rest::new(&cloud);
    let url_maps = client!(UrlMaps, cloud);
    api.post("global/healthChecks", json!({"name": "hc", "type": "TCP"}))
        .await;
    api.post(
        "global/backendServices",
        json!({"name": "web-bs", "healthChecks": ["global/healthChecks/hc"]}),
    )
    .await;
    let service = "global/backendServices/web-bs";

    // A service and a redirect: Compute takes only one of them, at every level.
    let both = redirect_map("both").set_default_service(service);
    let split = redirect_map("split").set_default_route_action(
        model::HttpRouteAction::new().set_weighted_backend_services([
            model::WeightedBackendService::new()
                .set_backend_service(service)
                .set_weight(100_u32),
        ]),
    );
    let in_matcher = model::UrlMap::new()
        .set_name("in-matcher")
        .set_default_service(service)
        .set_path_matchers([model::PathMatcher::new()
            .set_name("m")
            .set_default_service(service)
            .set_path_rules([model::PathRule::new()
                .set_paths(["/old"])
                .set_service(service)
                .set_url_redirect(model::HttpRedirectAction::new().set_path_redirect("/new"))])]);
    let path_and_prefix = model::UrlMap::new()
        .set_name("path-and-prefix")
        .set_default_url_redirect(
            model::HttpRedirectAction::new()
                .set_path_redirect("/a")
                .set_prefix_redirect("/b"),
        );
    for map in [both, split, in_matcher, path_and_prefix] {
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

    // Each redirect code Compute defines is taken, globally and in a region.
    for (name, code) in [
        ("found", RedirectResponseCode::Found),
        ("see-other", RedirectResponseCode::SeeOther),
        ("temporary", RedirectResponseCode::TemporaryRedirect),
        ("permanent", RedirectResponseCode::PermanentRedirect),
    ] {
        let map = model::UrlMap::new()
            .set_name(name)
            .set_default_url_redirect(
                model::HttpRedirectAction::new()
                    .set_host_redirect("www.example.com")
                    .set_strip_query(true)
                    .set_redirect_response_code(code.clone()),
            );
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
            .set_url_map(name)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.default_url_redirect
                .and_then(|r| r.redirect_response_code),
            Some(code)
        );
    }
    api.post(
        &format!("regions/{REGION}/urlMaps"),
        json!({"name": "regional", "defaultUrlRedirect": {"httpsRedirect": true}}),
    )
    .await;
    let regional = api.get(&format!("regions/{REGION}/urlMaps/regional")).await;
    assert_eq!(regional["defaultUrlRedirect"]["httpsRedirect"], true);
    common::finish(cloud).await;
}
