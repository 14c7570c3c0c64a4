//! Health checks, firewall rules and load balancer chains through the Cloud
//! port, against the local cloud: built in dependency order, reported, and
//! torn down in reverse until nothing of the app is left.

use crate::common;

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
        retry: None,
        outlier: None,
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
    assert_eq!(cloud.load_balancers(app, &ext.name).await.unwrap(), []);
    let state = cloud.apply_load_balancer(&ext).await.unwrap();
    assert!(state.complete(), "{state:?}");
    assert!(state.address.is_some(), "{state:?}");
    assert_eq!(
        cloud.load_balancers(app, &ext.name).await.unwrap(),
        [ext.id()]
    );
    let kinds: Vec<LbPieceKind> = state.pieces.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.len(), 10, "HTTPS, and the redirect to it on port 80");
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
    assert_eq!(cloud.load_balancers(app, &ext.name).await.unwrap(), []);
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
    // Found in one read, beside an external one of the same name.
    let mut ext = lb(
        app,
        LbKind::External {
            domains: vec!["billing.example.com".into()],
        },
    );
    ext.name = int.name.clone();
    cloud.apply_load_balancer(&ext).await.unwrap();
    let before = cloud.api_calls().reads;
    assert_eq!(
        cloud.load_balancers(app, &int.name).await.unwrap(),
        [ext.id(), int.id()]
    );
    assert_eq!(cloud.api_calls().reads, before + 1);
    cloud.delete_load_balancer(&ext.id()).await.unwrap();
    assert_eq!(
        cloud.load_balancers(app, &int.name).await.unwrap(),
        [int.id()]
    );
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
