//! Health checks, firewall rules and load balancer chains through the Cloud
//! port, against the local cloud: built in dependency order, reported, and
//! torn down in reverse until nothing of the app is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ccd_cloud::model::{
    Autohealing, FirewallSpec, HealthCheckSpec, LbBackend, LbKind, LbPieceKind, LoadBalancerSpec,
    Probe,
};
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::FaultConfig;
use common::{converge, group, http_health, template};

fn lb(app: &str, kind: LbKind) -> LoadBalancerSpec {
    LoadBalancerSpec {
        app: app.to_owned(),
        name: format!("{app}-ext"),
        backends: vec![LbBackend {
            group: group(app, "unused", 1).id(),
            weight: 1,
        }],
        port_name: "http".to_owned(),
        health: http_health(),
        drain: Duration::from_secs(30),
        kind,
        labels: BTreeMap::from([("team".to_owned(), "core".to_owned())]),
    }
}

#[tokio::test]
async fn an_external_load_balancer_is_built_reported_and_torn_down_in_reverse() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "shop";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    let heal = HealthCheckSpec {
        app: app.into(),
        name: format!("{app}-heal"),
        health: http_health(),
    };
    cloud.apply_health_check(&heal).await.unwrap();
    // Corrected in place when the definition changes.
    let mut tcp = heal.clone();
    tcp.health.probe = Probe::Tcp { port: 8080 };
    cloud.apply_health_check(&tcp).await.unwrap();
    cloud.apply_health_check(&heal).await.unwrap();

    for rule in [
        FirewallSpec::health_checks(app, 8080),
        FirewallSpec::allow_from(app, "office", 8080, vec!["203.0.113.0/24".into()]),
    ] {
        cloud.apply_firewall(&rule).await.unwrap();
        cloud.apply_firewall(&rule).await.unwrap();
    }
    let mut rules = cloud.list_firewalls(app).await.unwrap();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        rules,
        [
            FirewallSpec::health_checks(app, 8080),
            FirewallSpec::allow_from(app, "office", 8080, vec!["203.0.113.0/24".into()])
        ]
    );
    // A changed rule is replaced.
    let wider = FirewallSpec::allow_from(
        app,
        "office",
        8080,
        vec!["203.0.113.0/24".into(), "198.51.100.0/24".into()],
    );
    cloud.apply_firewall(&wider).await.unwrap();
    assert!(cloud.list_firewalls(app).await.unwrap().contains(&wider));

    let mut spec = group(app, &tpl, 2);
    spec.autohealing = Some(Autohealing {
        health_check: heal.name.clone(),
        initial_delay: Duration::from_secs(30),
    });
    cloud.apply_group(&spec).await.unwrap();
    converge(&cloud, &spec.id(), "two healthy instances", |g| {
        g.instances.len() == 2
    })
    .await;

    let domains = vec!["shop.example.com".to_owned()];
    let ext = lb(
        app,
        LbKind::External {
            domains: domains.clone(),
        },
    );
    let missing = cloud.get_load_balancer(&ext.id()).await.unwrap();
    assert!(missing.absent() && missing.address.is_none(), "{missing:?}");
    let state = cloud.apply_load_balancer(&ext).await.unwrap();
    assert!(state.complete(), "{state:?}");
    assert!(state.address.is_some(), "{state:?}");
    let kinds: Vec<LbPieceKind> = state.pieces.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.len(), 7);
    assert_eq!(cloud.get_load_balancer(&ext.id()).await.unwrap(), state);
    // Applying again creates nothing new.
    let before = common::inventory(&local, app).await;
    assert_eq!(cloud.apply_load_balancer(&ext).await.unwrap(), state);
    assert_eq!(common::inventory(&local, app).await, before);

    // New domains: a new certificate, the old one is let go of.
    let mut renamed = ext.clone();
    renamed.kind = LbKind::External {
        domains: vec!["shop.example.org".to_owned()],
    };
    let after = cloud.apply_load_balancer(&renamed).await.unwrap();
    assert!(after.complete());
    assert_eq!(after.address, state.address, "the address is kept");
    let certs = &common::inventory(&local, app).await["global/sslCertificates"];
    assert_eq!(certs.len(), 1, "{certs:?}");
    let cert = |s: &ccd_cloud::model::LbState| {
        s.pieces
            .iter()
            .find(|p| p.kind == LbPieceKind::Certificate)
            .map(|p| p.name.clone())
    };
    assert_ne!(cert(&after), cert(&state));

    // The group is still a backend: it cannot go before the balancer.
    assert!(matches!(
        cloud.delete_group(&spec.id()).await,
        Err(CloudError::InUse { .. })
    ));

    // Teardown in reverse dependency order.
    cloud.delete_load_balancer(&ext.id()).await.unwrap();
    assert!(cloud.get_load_balancer(&ext.id()).await.unwrap().absent());
    cloud
        .delete_load_balancer(&ext.id())
        .await
        .expect("deleting what is gone succeeds");
    cloud.delete_group(&spec.id()).await.unwrap();
    cloud.delete_health_check(app, &heal.name).await.unwrap();
    for t in cloud.list_templates(app).await.unwrap() {
        cloud.delete_template(app, &t.name).await.unwrap();
    }
    for rule in cloud.list_firewalls(app).await.unwrap() {
        cloud.delete_firewall(app, &rule.name).await.unwrap();
    }
    assert!(cloud.list_firewalls(app).await.unwrap().is_empty());
    common::eventually("nothing of the app is left", || async {
        let left = common::inventory(&local, app).await;
        left.is_empty().then_some(())
    })
    .await;
    common::finish(local).await;
}

#[tokio::test]
async fn an_internal_load_balancer_is_a_regional_chain() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "billing";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    let spec = group(app, &tpl, 1);
    cloud.apply_group(&spec).await.unwrap();

    let mut int = lb(app, LbKind::Internal { port: 8080 });
    int.name = format!("{app}-int");
    let state = cloud.apply_load_balancer(&int).await.unwrap();
    assert!(state.complete() && state.address.is_some(), "{state:?}");
    assert_eq!(state.pieces.len(), 6, "no certificate inside the network");
    let regional = common::inventory(&local, app).await;
    for collection in [
        "healthChecks",
        "backendServices",
        "urlMaps",
        "targetHttpProxies",
        "addresses",
        "forwardingRules",
    ] {
        assert_eq!(
            regional[&format!("regions/{}/{collection}", common::REGION)].len(),
            1,
            "{regional:?}"
        );
    }

    cloud.delete_load_balancer(&int.id()).await.unwrap();
    assert!(cloud.get_load_balancer(&int.id()).await.unwrap().absent());
    cloud.delete_group(&spec.id()).await.unwrap();
    cloud.delete_template(app, &tpl).await.unwrap();
    common::eventually("nothing of the app is left", || async {
        common::inventory(&local, app)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    common::finish(local).await;
}

#[tokio::test]
async fn a_load_balancer_needs_its_group() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let ext = lb(
        "ghost",
        LbKind::External {
            domains: vec!["ghost.example.com".into()],
        },
    );
    match cloud.apply_load_balancer(&ext).await {
        Err(CloudError::NotFound { resource }) => assert!(
            resource.contains("instanceGroupManagers/ghost"),
            "{resource}"
        ),
        other => panic!("expected NotFound, got {other:?}"),
    }
    common::finish(local).await;
}

#[tokio::test]
async fn backends_compute_would_refuse_are_refused_before_anything_is_made() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "odd";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    cloud.apply_group(&group(app, &tpl, 1)).await.unwrap();
    let mut int = lb(app, LbKind::Internal { port: 8080 });
    let a = group(app, &tpl, 1).id();
    let mut b = a.clone();
    b.name = format!("{app}-canary");
    let cases: [(Vec<LbBackend>, &str); 3] = [
        (vec![], "at least one group"),
        (
            vec![
                LbBackend {
                    group: a.clone(),
                    weight: 0,
                },
                LbBackend {
                    group: b.clone(),
                    weight: 0,
                },
            ],
            "weight above 0",
        ),
        (
            vec![LbBackend {
                group: a.clone(),
                weight: 1001,
            }],
            "from 0 to 1000",
        ),
    ];
    for (backends, fix) in cases {
        int.backends = backends;
        match cloud.apply_load_balancer(&int).await {
            Err(CloudError::Invalid { resource, message }) => {
                assert_eq!(resource, format!("load balancer {}", int.name));
                assert!(message.contains(fix), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    let made = common::inventory(&local, app).await;
    assert_eq!(
        made.keys().collect::<Vec<_>>(),
        [
            "global/instanceTemplates",
            "zones/europe-west1-b/instanceGroupManagers",
            "zones/europe-west1-b/instances"
        ],
        "{made:?}"
    );
    common::finish(local).await;
}

/// A raw regional call, as an older ccd or a person made them; a change's
/// operation is waited for.
async fn regional(
    local: &ccd_localcloud::LocalCloud,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let api = |path: &str| {
        format!(
            "{}/compute/v1/projects/{}/regions/{}/{path}",
            local.endpoint(),
            common::PROJECT,
            common::REGION
        )
    };
    let http = reqwest::Client::new();
    let mut req = http.request(method.clone(), api(path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let answer: serde_json::Value = req
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    if method == reqwest::Method::GET {
        return answer;
    }
    let wait = format!("operations/{}/wait", answer["name"].as_str().unwrap());
    let done: serde_json::Value = http
        .post(api(&wait))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(done.get("error").is_none(), "{done}");
    answer
}

/// Before a load balancer had a backend service per group, it had one,
/// `{name}-bs`, marked as the app's only: still the balancer's, found,
/// corrected (or, named otherwise than the group's, let go of), and
/// deleted with it.
#[tokio::test]
async fn a_backend_service_made_before_backends_were_marked_is_still_found() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "elder";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    let spec = group(app, &tpl, 1);
    cloud.apply_group(&spec).await.unwrap();
    let old_marker = serde_json::json!({"description": format!("ccd-managed=true ccd-app={app}")});

    // The app's group is named like its balancer: the backend service keeps its name.
    let mut int = lb(app, LbKind::Internal { port: 8080 });
    int.name = app.to_owned();
    cloud.apply_load_balancer(&int).await.unwrap();
    let patch = reqwest::Method::PATCH;
    regional(
        &local,
        patch,
        "backendServices/elder-bs",
        Some(old_marker.clone()),
    )
    .await;
    let state = cloud.get_load_balancer(&int.id()).await.unwrap();
    assert!(state.complete(), "{state:?}");
    let before = cloud.api_calls().mutations;
    assert_eq!(cloud.apply_load_balancer(&int).await.unwrap(), state);
    assert_eq!(
        cloud.api_calls().mutations - before,
        1,
        "the marker is added, nothing else changes"
    );

    let names = |s: &ccd_cloud::model::LbState| -> Vec<String> {
        s.pieces
            .iter()
            .filter(|p| p.kind == LbPieceKind::BackendService)
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names(&state), ["elder-bs"]);

    // The group's backend service is this balancer's: another of the same
    // kind on the same group is refused, naming the one that has it.
    let mut other = int.clone();
    other.name = format!("{app}-int");
    match cloud.apply_load_balancer(&other).await {
        Err(CloudError::Invalid { message, .. }) => {
            assert!(message.contains("load balancer elder"), "{message}");
        }
        got => panic!("expected Invalid, got {got:?}"),
    }
    cloud.delete_load_balancer(&other.id()).await.unwrap();
    cloud.delete_load_balancer(&int.id()).await.unwrap();
    let regional_services = format!("regions/{}/backendServices", common::REGION);
    let left = common::inventory(&local, app).await;
    assert!(!left.contains_key(&regional_services), "{left:?}");

    // A balancer named otherwise had `{name}-bs`: it goes once the map names the group's.
    cloud.apply_load_balancer(&other).await.unwrap();
    let old = serde_json::json!({"name": "elder-int-bs", "loadBalancingScheme": "INTERNAL_MANAGED",
        "protocol": "HTTP", "portName": "http", "description": old_marker["description"],
        "healthChecks": [format!("regions/{}/healthChecks/elder-int-hc", common::REGION)],
        "backends": [{"group": format!("zones/{}/instanceGroups/{app}", common::ZONE)}]});
    regional(&local, reqwest::Method::POST, "backendServices", Some(old)).await;
    let map = regional(&local, reqwest::Method::GET, "urlMaps/elder-int-um", None).await;
    let to_old = serde_json::json!({"name": "elder-int-um", "fingerprint": map["fingerprint"],
        "defaultService": format!("regions/{}/backendServices/elder-int-bs", common::REGION)});
    regional(
        &local,
        reqwest::Method::PUT,
        "urlMaps/elder-int-um",
        Some(to_old),
    )
    .await;
    let state = cloud.get_load_balancer(&other.id()).await.unwrap();
    assert_eq!(names(&state), ["elder-bs", "elder-int-bs"]);
    let state = cloud.apply_load_balancer(&other).await.unwrap();
    assert_eq!(names(&state), ["elder-bs"]);
    assert_eq!(
        common::inventory(&local, app).await[&regional_services],
        ["elder-bs"],
        "the old backend service is gone"
    );

    cloud.delete_load_balancer(&other.id()).await.unwrap();
    let left = common::inventory(&local, app).await;
    assert!(!left.contains_key(&regional_services), "{left:?}");
    common::finish(local).await;
}
