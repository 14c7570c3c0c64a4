//! Traffic per backend group through the Cloud port: real requests through a
//! real internal load balancer (the local cloud's proxy) to real sample-app
//! instances that answer a share of them with 500, then `lb_traffic` reads
//! them back from the local cloud's Cloud Monitoring API.

use crate::common;
use crate::processes;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use ccd_cloud::model::{
    BackendTraffic, FirewallSpec, LbBackend, LbKind, LbTraffic, LoadBalancerSpec,
};
use ccd_cloud::{Cloud, GceCloud};
use processes::{Processes, quick_health, sample_template};

fn total(t: &LbTraffic) -> (u64, u64) {
    t.backends
        .iter()
        .fold((0, 0), |(r, e), b| (r + b.requests, e + b.server_errors))
}

/// `lb_traffic` once its counts are complete up to `until`.
async fn traffic_until(
    cloud: &GceCloud,
    lb: &LoadBalancerSpec,
    since: SystemTime,
    until: SystemTime,
) -> LbTraffic {
    common::eventually("the counts are complete", || async {
        let t = cloud.lb_traffic(&lb.id(), since).await.unwrap();
        t.complete_until.is_some_and(|c| c >= until).then_some(t)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_balancer_reports_the_requests_and_errors_its_group_answered() {
    let p = Processes::start("lb-traffic").await;
    let (local, cloud) = (&p.local, &p.cloud);
    let app = "shop";

    let template = sample_template(app, "1", &[("SAMPLE_ERROR_PERCENT", "20")]);
    let tpl = cloud.ensure_template(&template).await.unwrap();
    let firewall = FirewallSpec::health_checks(app, 8080);
    cloud.apply_firewall(&firewall).await.unwrap();
    let group = common::group(app, &tpl, 2);
    cloud.apply_group(&group).await.unwrap();
    // Named like its group, so its backend service is `{group}-bs` whether
    // the adapter names it after the balancer or after the group.
    let lb = LoadBalancerSpec {
        app: app.to_owned(),
        name: group.name.clone(),
        backends: vec![LbBackend {
            group: group.id(),
            weight: 1,
        }],
        port_name: "http".to_owned(),
        health: quick_health(),
        drain: Duration::from_secs(1),
        kind: LbKind::Internal { port: 8080 },
        labels: Default::default(),
        retry: None,
        outlier: None,
    };
    let state = cloud.apply_load_balancer(&lb).await.unwrap();
    let address = state.address.unwrap();
    let listener: SocketAddr = common::eventually("the load balancer listens", || async {
        local
            .listeners()
            .into_iter()
            .find(|l| l.requested.ip() == address)
            .map(|l| l.listening)
    })
    .await;
    let url = format!("http://{listener}/");
    let http = reqwest::Client::new();
    common::eventually("both instances serve through the load balancer", || async {
        let mut instances = std::collections::BTreeSet::new();
        for _ in 0..10 {
            let r = http.get(&url).send().await.ok()?;
            if r.status().is_success() {
                instances.insert(r.text().await.ok()?);
            }
        }
        (instances.len() == 2).then_some(())
    })
    .await;
    // The window starts once the warm-up above is counted.
    let warmed_up = ccd_clock::wall();
    traffic_until(cloud, &lb, warmed_up, warmed_up).await;
    let since = ccd_clock::wall();
    let reads_before = cloud.api_calls().reads;

    let (mut answered, mut server_errors) = (0u64, 0u64);
    for _ in 0..60 {
        let status = http.get(&url).send().await.unwrap().status();
        answered += 1;
        if status.is_server_error() {
            server_errors += 1;
        }
    }
    let last_request = ccd_clock::wall();
    assert!(server_errors > 0, "the sample app answers a share with 500");

    let traffic = traffic_until(cloud, &lb, since, last_request).await;
    assert_eq!(
        traffic.backends,
        [BackendTraffic {
            group: group.name.clone(),
            requests: answered,
            server_errors,
        }]
    );
    assert!(
        cloud.api_calls().reads > reads_before,
        "Monitoring calls are counted as reads"
    );

    // A window that starts after the requests holds none of them.
    let after = ccd_clock::wall();
    let later = traffic_until(cloud, &lb, after, after).await;
    assert_eq!(total(&later), (0, 0), "{later:?}");

    cloud.delete_load_balancer(&lb.id()).await.unwrap();
    cloud.delete_group(&group.id()).await.unwrap();
    cloud.delete_firewall(app, &firewall.name).await.unwrap();
    p.finish().await;
}
