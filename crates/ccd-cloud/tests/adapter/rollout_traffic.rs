//! Rollout traffic through real load balancers of the local cloud, to real
//! sample-app processes in two groups ("blue" answers `GET /` with version
//! blue, "green" with green): the weights of the load balancer's backends
//! move requests from one group to the other in one step, without a failed
//! request; a split sends each group its share; a group left out loses its
//! backend service and can then be deleted.

use crate::common;
use crate::processes;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccd_cloud::model::{FirewallSpec, GroupSpec, LbBackend, LbKind, LbPieceKind, LoadBalancerSpec};
use ccd_cloud::{Cloud, CloudError};
use common::{REGION, converge, eventually, group};
use processes::{Processes, quick_health, sample_template, tally};

/// The blue and green groups of `app`, two sample-app instances each, up.
async fn blue_and_green(p: &Processes, app: &str) -> (GroupSpec, GroupSpec) {
    p.cloud
        .apply_firewall(&FirewallSpec::health_checks(app, 8080))
        .await
        .unwrap();
    let mut out = Vec::new();
    for version in ["blue", "green"] {
        let tpl = p
            .cloud
            .ensure_template(&sample_template(app, version, &[]))
            .await
            .unwrap();
        let mut spec = group(app, &tpl, 2);
        spec.name = format!("{app}-{version}");
        p.cloud.apply_group(&spec).await.unwrap();
        out.push(spec);
    }
    for spec in &out {
        converge(&p.cloud, &spec.id(), "two instances running", |g| {
            g.instances.len() == 2
        })
        .await;
    }
    let green = out.pop().unwrap();
    (out.pop().unwrap(), green)
}

fn balancer(app: &str, kind: LbKind, backends: &[(&GroupSpec, u32)]) -> LoadBalancerSpec {
    LoadBalancerSpec {
        app: app.to_owned(),
        name: app.to_owned(),
        backends: backends
            .iter()
            .map(|(g, weight)| LbBackend {
                group: g.id(),
                weight: *weight,
            })
            .collect(),
        port_name: "http".to_owned(),
        health: quick_health(),
        drain: Duration::from_secs(1),
        kind,
        labels: BTreeMap::new(),
        retry: None,
        outlier: None,
    }
}

/// Waits until the balancer's health check finds every instance of both groups healthy.
async fn both_serving(p: &Processes, scope: &str, app: &str) {
    eventually("both groups healthy behind the load balancer", || async {
        let mut all = true;
        for version in ["blue", "green"] {
            let service = format!("{scope}/backendServices/{app}-{version}-bs");
            all &= p.serving(&service, &format!("{app}-{version}"), 2).await;
        }
        all.then_some(())
    })
    .await;
}

/// One client's answers, in order: the version that answered, or why the request failed.
type Answers = Vec<Result<String, String>>;

/// Clients sending requests one after another, each keeping its answers in order.
struct Steady {
    stop: Arc<AtomicBool>,
    logs: Vec<Arc<Mutex<Answers>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Steady {
    fn start(client: &reqwest::Client, url: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut logs = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let log = Arc::new(Mutex::new(Vec::new()));
            let (client, url, stop, log2) =
                (client.clone(), url.to_owned(), stop.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let answer = processes::version_of(&client, &url).await;
                    log2.lock().unwrap().push(answer);
                }
            }));
            logs.push(log);
        }
        Steady { stop, logs, tasks }
    }

    fn answered(&self, version: &str) -> usize {
        self.logs
            .iter()
            .map(|l| {
                l.lock()
                    .unwrap()
                    .iter()
                    .filter(|a| a.as_deref() == Ok(version))
                    .count()
            })
            .sum()
    }

    async fn stop(self) -> Vec<Answers> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.logs
            .into_iter()
            .map(|l| l.lock().unwrap().clone())
            .collect()
    }
}

/// Applies `to_spec` while clients send requests steadily: every request
/// succeeds, each client sees `from` answers then only `to` answers, and
/// the switch was one change in the cloud.
async fn switch_under_load(
    p: &Processes,
    client: &reqwest::Client,
    url: &str,
    to_spec: &LoadBalancerSpec,
    (from, to): (&str, &str),
) {
    let steady = Steady::start(client, url, 2);
    eventually("requests flowing before the switch", || async {
        (steady.answered(from) >= 40).then_some(())
    })
    .await;
    let before = p.cloud.api_calls().mutations;
    let state = p.cloud.apply_load_balancer(to_spec).await.unwrap();
    assert!(state.complete(), "{state:?}");
    assert_eq!(
        p.cloud.api_calls().mutations - before,
        1,
        "the switch is one URL-map update"
    );
    eventually("100 answers from the new group", || async {
        (steady.answered(to) >= 100).then_some(())
    })
    .await;
    for log in steady.stop().await {
        let failed: Vec<&String> = log.iter().filter_map(|a| a.as_ref().err()).collect();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        let versions: Vec<&str> = log.iter().filter_map(|a| a.as_deref().ok()).collect();
        let first_new = versions.iter().position(|v| *v == to).unwrap_or(0);
        assert!(
            versions[..first_new].iter().all(|v| *v == from)
                && versions[first_new..].iter().all(|v| *v == to),
            "requests went back and forth: {versions:?}"
        );
    }
}

fn backend_services(pieces: &[ccd_cloud::model::LbPiece]) -> Vec<(&str, bool)> {
    pieces
        .iter()
        .filter(|p| p.kind == LbPieceKind::BackendService)
        .map(|p| (p.name.as_str(), p.exists))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_weights_switch_split_and_let_go_of_a_group() {
    let p = Processes::start("lb-internal").await;
    let app = "web";
    let (blue, green) = blue_and_green(&p, app).await;
    let scope = format!("regions/{REGION}");

    let kind = LbKind::Internal { port: 8090 };
    let on_blue = balancer(app, kind.clone(), &[(&blue, 100), (&green, 0)]);
    let state = p.cloud.apply_load_balancer(&on_blue).await.unwrap();
    assert!(state.complete(), "{state:?}");
    assert_eq!(
        backend_services(&state.pieces),
        [("web-blue-bs", true), ("web-green-bs", true)],
        "a backend service per group, the one with weight 0 too"
    );
    both_serving(&p, &scope, app).await;
    let listener = p.listener("web-fr").await;
    let url = format!("http://{listener}/");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(
        tally(&client, &url, 100).await,
        BTreeMap::from([("blue".to_owned(), 100)]),
        "weight 0 gets nothing"
    );

    // Blue/green: all traffic moves in one step, and no request fails.
    let on_green = balancer(app, kind.clone(), &[(&blue, 0), (&green, 100)]);
    switch_under_load(&p, &client, &url, &on_green, ("blue", "green")).await;

    // Canary: a 90/10 split.
    let split = balancer(app, kind.clone(), &[(&blue, 90), (&green, 10)]);
    p.cloud.apply_load_balancer(&split).await.unwrap();
    let counts = eventually("the split to take effect", || async {
        let counts = tally(&client, &url, 500).await;
        (counts.get("blue").copied().unwrap_or(0) > 300).then_some(counts)
    })
    .await;
    let green_share = counts.get("green").copied().unwrap_or(0);
    assert_eq!(
        counts.get("blue").copied().unwrap_or(0) + green_share,
        500,
        "every request answered: {counts:?}"
    );
    // 10% of 500 is 50, give or take 7 (one standard deviation).
    assert!(
        (25..=80).contains(&green_share),
        "green got {green_share} of 500: {counts:?}"
    );

    // Only green: blue's backend service goes, and then blue's group can.
    let only_green = balancer(app, kind, &[(&green, 100)]);
    let state = p.cloud.apply_load_balancer(&only_green).await.unwrap();
    assert!(state.complete(), "{state:?}");
    assert_eq!(backend_services(&state.pieces), [("web-green-bs", true)]);
    let left = common::inventory(&p.local, app).await;
    assert_eq!(
        left[&format!("{scope}/backendServices")],
        ["web-green-bs"],
        "{left:?}"
    );
    let map = p.get(&format!("{scope}/urlMaps/web-um")).await;
    assert!(
        map["defaultService"]
            .as_str()
            .is_some_and(|s| s.ends_with("/web-green-bs"))
            && map.get("defaultRouteAction").is_none(),
        "one backend: the default service again: {map}"
    );
    eventually("only green answering", || async {
        let counts = tally(&client, &url, 50).await;
        (counts == BTreeMap::from([("green".to_owned(), 50)])).then_some(())
    })
    .await;
    p.cloud.delete_group(&blue.id()).await.unwrap();

    // Teardown: no backend service is left behind.
    p.cloud.delete_load_balancer(&on_blue.id()).await.unwrap();
    let left = common::inventory(&p.local, app).await;
    assert!(
        !left.contains_key(&format!("{scope}/backendServices")),
        "{left:?}"
    );
    assert!(
        p.cloud
            .get_load_balancer(&on_blue.id())
            .await
            .unwrap()
            .absent()
    );
    p.cloud.delete_group(&green.id()).await.unwrap();
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_https_switches_from_blue_to_green_without_a_failed_request() {
    let p = Processes::start("lb-external").await;
    let app = "shop";
    let (blue, green) = blue_and_green(&p, app).await;
    let domain = "shop.example.com";
    let kind = LbKind::External {
        domains: vec![domain.to_owned()],
    };

    let on_blue = balancer(app, kind.clone(), &[(&blue, 100), (&green, 0)]);
    let state = p.cloud.apply_load_balancer(&on_blue).await.unwrap();
    assert!(state.complete(), "{state:?}");
    assert_eq!(
        backend_services(&state.pieces),
        [("shop-blue-bs", true), ("shop-green-bs", true)]
    );
    both_serving(&p, "global", app).await;

    // The certificate to trust, and a client that resolves the domain to the listener.
    let cert_name = state
        .pieces
        .iter()
        .find(|p| p.kind == LbPieceKind::Certificate)
        .map(|p| p.name.clone())
        .unwrap();
    let cert = p.get(&format!("global/sslCertificates/{cert_name}")).await;
    let listener = p.listener("shop-fr").await;
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert["certificate"].as_str().unwrap().as_bytes())
                .unwrap(),
        )
        .resolve(domain, listener)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://{domain}:{}/", listener.port());
    assert_eq!(
        tally(&client, &url, 50).await,
        BTreeMap::from([("blue".to_owned(), 50)])
    );

    let on_green = balancer(app, kind, &[(&blue, 0), (&green, 100)]);
    switch_under_load(&p, &client, &url, &on_green, ("blue", "green")).await;

    // While blue still has a backend service, its group cannot go.
    assert!(matches!(
        p.cloud.delete_group(&blue.id()).await,
        Err(CloudError::InUse { .. })
    ));
    p.cloud.delete_load_balancer(&on_blue.id()).await.unwrap();
    let left = common::inventory(&p.local, app).await;
    assert!(!left.contains_key("global/backendServices"), "{left:?}");
    for g in [&blue, &green] {
        p.cloud.delete_group(&g.id()).await.unwrap();
    }
    p.finish().await;
}
