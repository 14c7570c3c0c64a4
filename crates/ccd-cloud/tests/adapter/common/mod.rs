//! A local cloud per test, the GCE adapter pointed at it, and a raw view of
//! the REST API to count what exists (bypassing the adapter under test).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use ccd_cloud::model::{
    GroupId, GroupSpec, GroupState, GroupVersion, HealthDefinition, LocalRun, NamedPort, Probe,
    TemplateSpec, UpdatePolicy,
};
use ccd_cloud::{Cloud, EndpointToken, GceCloud, GceConfig};
use ccd_localcloud::{Config, FaultConfig, LocalCloud};

pub const PROJECT: &str = "ccd-test";
pub const REGION: &str = "europe-west1";
pub const ZONE: &str = "europe-west1-b";
/// Limit for anything converging in the background; generous for a loaded machine.
pub const CONVERGE: Duration = Duration::from_secs(90);

pub async fn start(faults: FaultConfig) -> (LocalCloud, GceCloud) {
    let local = LocalCloud::start(Config {
        data_dir: None,
        check_responses: true,
        faults,
        ..Default::default()
    })
    .await
    .expect("the local cloud starts");
    let cloud = GceCloud::new(config(&local))
        .await
        .expect("the adapter starts");
    (local, cloud)
}

pub fn config(local: &LocalCloud) -> GceConfig {
    GceConfig {
        project: PROJECT.to_owned(),
        region: REGION.to_owned(),
        endpoint: Some(local.endpoint()),
        endpoint_token: Some(EndpointToken::new(local.token())),
        rate_limit_per_sec: 500.0,
        op_timeout: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(20),
        ..GceConfig::default()
    }
}

/// A plain HTTP client for the local cloud's API: its token on every request.
pub fn http(local: &LocalCloud) -> reqwest::Client {
    let token = EndpointToken::new(local.token());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, token.header().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Every test ends here: no response strayed from the discovery document.
pub async fn finish(local: LocalCloud) {
    let violations = local.conformance_violations();
    local.shutdown().await;
    assert!(
        violations.is_empty(),
        "responses strayed from the discovery document:\n{}",
        violations.join("\n")
    );
}

pub fn template(app: &str, revision: &str) -> TemplateSpec {
    TemplateSpec {
        app: app.to_owned(),
        revision: revision.to_owned(),
        image: format!("europe-docker.pkg.dev/acme/apps/{app}:{revision}"),
        port: 8080,
        env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        secrets: BTreeMap::new(),
        machine_type: "e2-small".to_owned(),
        local_run: Some(LocalRun::Simulated),
        labels: BTreeMap::from([("team".to_owned(), "core".to_owned())]),
        agent: None,
        open_ports: vec![],
        service_account: None,
    }
}

pub fn group(app: &str, template: &str, size: u32) -> GroupSpec {
    GroupSpec {
        app: app.to_owned(),
        name: app.to_owned(),
        zones: vec![ZONE.to_owned()],
        versions: vec![version("stable", template, None)],
        target_size: Some(size),
        size_range: None,
        update: UpdatePolicy::default(),
        autohealing: None,
        named_port: Some(NamedPort {
            name: "http".to_owned(),
            port: 8080,
        }),
    }
}

pub fn version(
    name: &str,
    template: &str,
    target: Option<ccd_cloud::model::Share>,
) -> GroupVersion {
    GroupVersion {
        name: name.to_owned(),
        template: template.to_owned(),
        target,
    }
}

pub fn http_health() -> HealthDefinition {
    HealthDefinition {
        probe: Probe::Http {
            path: "/healthz".to_owned(),
            port: 8080,
        },
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
    }
}

/// Polls `probe` until it returns `Some`, or panics after [`CONVERGE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The group, once `done` says it is where it should be (read errors are
/// retried: under fault injection a read can fail).
pub async fn converge(
    cloud: &GceCloud,
    id: &GroupId,
    what: &str,
    done: impl Fn(&GroupState) -> bool,
) -> GroupState {
    eventually(what, || async {
        match cloud.get_group(id).await {
            Ok(Some(g)) if g.converged() && done(&g) => Some(g),
            _ => None,
        }
    })
    .await
}

/// Templates of the instances, counted.
pub fn per_template(g: &GroupState) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for i in &g.instances {
        *out.entry(i.template.clone().unwrap_or_default())
            .or_default() += 1;
    }
    out
}

/// Collections where ccd's resources live, global, regional and zonal.
const COLLECTIONS: [&str; 19] = [
    "global/instanceTemplates",
    "global/healthChecks",
    "global/backendServices",
    "global/urlMaps",
    "global/sslCertificates",
    "global/targetHttpsProxies",
    "global/targetHttpProxies",
    "global/addresses",
    "global/forwardingRules",
    "global/firewalls",
    "regions/europe-west1/instanceGroupManagers",
    "regions/europe-west1/healthChecks",
    "regions/europe-west1/backendServices",
    "regions/europe-west1/urlMaps",
    "regions/europe-west1/targetHttpProxies",
    "regions/europe-west1/addresses",
    "regions/europe-west1/forwardingRules",
    "zones/europe-west1-b/instanceGroupManagers",
    "zones/europe-west1-b/instances",
];

/// Names of everything in the project whose name starts with `prefix`, per
/// collection, read straight from the REST API (faults must be off).
pub async fn inventory(local: &LocalCloud, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let http = http(local);
    let mut out = BTreeMap::new();
    for collection in COLLECTIONS {
        let url = format!(
            "{}/compute/v1/projects/{PROJECT}/{collection}",
            local.endpoint()
        );
        let body: serde_json::Value = http
            .get(&url)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<String> = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str())
            .filter(|n| n.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        if !names.is_empty() {
            out.insert(collection.to_owned(), names);
        }
    }
    out
}

/// Changes fault injection while the local cloud runs.
pub async fn set_faults(local: &LocalCloud, faults: serde_json::Value) {
    let url = format!("{}/admin/v1/faults", local.endpoint());
    http(local)
        .put(url)
        .json(&faults)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}
