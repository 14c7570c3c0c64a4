//! The adapter under a misbehaving cloud: throttling and outages on a third
//! of all calls, and slow operations. No call here is retried by the test:
//! the adapter must ride the faults out by itself.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use ccd_cloud::model::{FirewallSpec, HealthCheckSpec, LbBackend, LbKind, LoadBalancerSpec};
use ccd_cloud::{Cloud, CloudError, GceCloud};
use ccd_localcloud::FaultConfig;
use common::{converge, group, http_health, per_template, template};

/// Share of raw API calls that fail right now (the faults are real).
async fn failure_share(local: &ccd_localcloud::LocalCloud) -> f64 {
    let http = common::http(local);
    let url = format!(
        "{}/compute/v1/projects/{}/global/firewalls",
        local.endpoint(),
        common::PROJECT
    );
    let mut failed = 0;
    for _ in 0..200 {
        let status = http.get(&url).send().await.unwrap().status();
        assert!(
            status.is_success() || [429, 503].contains(&status.as_u16()),
            "{status}"
        );
        failed += usize::from(!status.is_success());
    }
    failed as f64 / 200.0
}

#[tokio::test]
async fn throttling_and_outages_neither_stop_convergence_nor_duplicate_anything() {
    let faults = FaultConfig {
        error_rate: 0.3,
        error_codes: vec![429, 503],
        ..Default::default()
    };
    let (local, cloud) = common::start(faults).await;
    let share = failure_share(&local).await;
    assert!((0.15..0.45).contains(&share), "{share}");
    let app = "flaky";
    let (t1, t2) = (template(app, "1"), template(app, "2"));
    let v1 = cloud.ensure_template(&t1).await.unwrap();
    cloud.ensure_template(&t1).await.unwrap();
    let heal = HealthCheckSpec {
        app: app.into(),
        name: format!("{app}-heal"),
        health: http_health(),
    };
    cloud.apply_health_check(&heal).await.unwrap();
    let rule = FirewallSpec::health_checks(app, 8080);
    cloud.apply_firewall(&rule).await.unwrap();
    let spec = group(app, &v1, 3);
    cloud.apply_group(&spec).await.unwrap();
    cloud.apply_group(&spec).await.unwrap();
    converge(&cloud, &spec.id(), "three instances", |g| {
        g.instances.len() == 3
    })
    .await;

    let v2 = cloud.ensure_template(&t2).await.unwrap();
    let mut rolled = group(app, &v2, 3);
    rolled.target_size = None;
    cloud.apply_group(&rolled).await.unwrap();
    converge(&cloud, &spec.id(), "all on v2", |g| {
        per_template(g).get(&v2) == Some(&3)
    })
    .await;

    let ext = LoadBalancerSpec {
        app: app.into(),
        name: format!("{app}-ext"),
        backends: vec![LbBackend {
            group: spec.id(),
            weight: 1,
        }],
        port_name: "http".into(),
        health: http_health(),
        drain: Duration::from_secs(10),
        kind: LbKind::External {
            domains: vec!["flaky.example.com".into()],
        },
        labels: BTreeMap::new(),
        retry: None,
        outlier: None,
    };
    let state = cloud.apply_load_balancer(&ext).await.unwrap();
    assert!(state.complete(), "{state:?}");
    cloud.apply_load_balancer(&ext).await.unwrap();

    // Count with faults off: exactly one of everything, and the group's size.
    common::set_faults(&local, serde_json::json!({"errorRate": 0.0})).await;
    let got = common::inventory(&local, app).await;
    let count = |c: &str| got.get(c).map_or(0, Vec::len);
    assert_eq!(count("global/instanceTemplates"), 2, "{got:?}");
    assert_eq!(
        count("zones/europe-west1-b/instanceGroupManagers"),
        1,
        "{got:?}"
    );
    assert_eq!(
        count("global/healthChecks"),
        2,
        "autohealing's and the balancer's: {got:?}"
    );
    assert_eq!(count("global/firewalls"), 1, "{got:?}");
    for c in [
        "backendServices",
        "sslCertificates",
        "targetHttpsProxies",
        "targetHttpProxies",
        "addresses",
    ] {
        assert_eq!(count(&format!("global/{c}")), 1, "{c}: {got:?}");
    }
    // HTTPS, and the redirect to it on port 80.
    for c in ["urlMaps", "forwardingRules"] {
        assert_eq!(count(&format!("global/{c}")), 2, "{c}: {got:?}");
    }
    let g = cloud.get_group(&spec.id()).await.unwrap().unwrap();
    assert_eq!((g.target_size, g.instances.len()), (3, 3));
    assert_eq!(count("zones/europe-west1-b/instances"), 3, "{got:?}");

    // Teardown under faults too.
    common::set_faults(
        &local,
        serde_json::json!({"errorRate": 0.3, "errorCodes": [429, 503]}),
    )
    .await;
    let (lb_id, group_id) = (ext.id(), spec.id());
    cloud.delete_load_balancer(&lb_id).await.unwrap();
    cloud.delete_group(&group_id).await.unwrap();
    cloud.delete_health_check(app, &heal.name).await.unwrap();
    cloud.delete_firewall(app, &rule.name).await.unwrap();
    for t in [&v1, &v2] {
        cloud.delete_template(app, t).await.unwrap();
    }
    common::set_faults(&local, serde_json::json!({"errorRate": 0.0})).await;
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
async fn slow_operations_are_waited_for_and_a_deadline_holds() {
    let faults = FaultConfig {
        operation_latency_ms: 400,
        ..Default::default()
    };
    let (local, cloud) = common::start(faults).await;
    let app = "slow";
    let before = cloud.api_calls();
    let v1 = cloud.ensure_template(&template(app, "1")).await.unwrap();
    let after = cloud.api_calls();
    assert_eq!(
        (
            after.mutations - before.mutations,
            after.operation_polls - before.operation_polls
        ),
        (1, 1),
        "the insert, then one wait that Compute holds until the operation is DONE"
    );
    // Each call returns only once its operation is DONE: what it made is there.
    assert_eq!(
        common::inventory(&local, app).await["global/instanceTemplates"],
        std::slice::from_ref(&v1)
    );
    let spec = group(app, &v1, 2);
    cloud.apply_group(&spec).await.unwrap();
    assert!(cloud.get_group(&spec.id()).await.unwrap().is_some());
    converge(&cloud, &spec.id(), "two instances", |g| {
        g.instances.len() == 2
    })
    .await;
    cloud.resize_group(&spec.id(), 1).await.unwrap();
    assert_eq!(
        cloud
            .get_group(&spec.id())
            .await
            .unwrap()
            .unwrap()
            .target_size,
        1
    );

    // An operation slower than the adapter's deadline is reported as a timeout.
    let mut config = common::config(&local);
    config.op_timeout = Duration::from_millis(150);
    let impatient = GceCloud::new(config).await.unwrap();
    match impatient.resize_group(&spec.id(), 3).await {
        Err(CloudError::Timeout { resource, after }) => {
            assert!(
                resource.contains("instanceGroupManagers/slow"),
                "{resource}"
            );
            assert_eq!(after, Duration::from_millis(150));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    cloud.delete_group(&spec.id()).await.unwrap();
    common::finish(local).await;
}

#[tokio::test]
async fn a_throttled_answer_pauses_every_call_not_just_the_one_retried() {
    let faults = FaultConfig {
        error_rate: 1.0,
        error_codes: vec![429],
        ..Default::default()
    };
    let local = ccd_localcloud::LocalCloud::start(ccd_localcloud::Config {
        faults,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut config = common::config(&local);
    config.initial_backoff = Duration::from_millis(1500);
    let cloud = std::sync::Arc::new(GceCloud::new(config).await.unwrap());
    let throttled = tokio::spawn({
        let cloud = cloud.clone();
        async move { cloud.list_templates("busy").await }
    });
    // The first answer is 429: the limiter pauses for 1.5 s from then.
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::set_faults(&local, serde_json::json!({"errorRate": 0.0})).await;
    let start = tokio::time::Instant::now();
    cloud.list_templates("other").await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "a call while the project is throttled waits out the pause: {waited:?}"
    );
    throttled.await.unwrap().unwrap();
    local.shutdown().await;
}
