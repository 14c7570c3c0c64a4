//! A name ccd needs, taken by a resource it did not make for the app: the
//! adapter refuses it and leaves it as it was, whether it inserts first (a
//! name it never saw: the insert is answered 409 and what exists is read)
//! or reads first (a name it saw exist). And one of its own found by a 409
//! is corrected like one found by a read.

use crate::common;

use ccd_cloud::model::{FirewallSpec, HealthCheckSpec};
use ccd_cloud::{Cloud, CloudError, GceCloud};
use ccd_localcloud::{FaultConfig, LocalCloud};
use common::{PROJECT, ZONE, group, http_health, template};
use serde_json::{Value, json};

/// Inserts a resource straight through the REST API, as someone else would.
async fn insert(local: &LocalCloud, collection: &str, body: Value) {
    let url = format!(
        "{}/compute/v1/projects/{PROJECT}/{collection}",
        local.endpoint()
    );
    common::http(local)
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

async fn get(local: &LocalCloud, path: &str) -> Value {
    let url = format!("{}/compute/v1/projects/{PROJECT}/{path}", local.endpoint());
    common::http(local)
        .get(url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn refused<T: std::fmt::Debug>(result: Result<T, CloudError>, what: &str) {
    match result {
        Err(CloudError::NotOwned { resource, .. }) => {
            assert!(resource.contains(what), "{resource} names {what}")
        }
        other => panic!("{what}: expected NotOwned, got {other:?}"),
    }
}

#[tokio::test]
async fn a_name_taken_by_someone_else_is_refused_whether_inserted_or_read_first() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "taken";
    let spec = template(app, "1");
    let name = spec.name();
    insert(
        &local,
        "global/instanceTemplates",
        json!({"name": name, "description": "the data team's",
               "properties": {"machineType": "e2-small"}}),
    )
    .await;
    insert(
        &local,
        "global/healthChecks",
        json!({"name": "taken-heal", "type": "TCP", "tcpHealthCheck": {"port": 22}}),
    )
    .await;
    let rule = FirewallSpec::health_checks(app, 8080);
    insert(
        &local,
        "global/firewalls",
        json!({"name": rule.name, "network": "global/networks/default",
               "sourceRanges": ["0.0.0.0/0"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
    )
    .await;
    insert(
        &local,
        &format!("zones/{ZONE}/instanceGroupManagers"),
        json!({"name": app, "baseInstanceName": app, "targetSize": 0,
               "instanceTemplate": format!("global/instanceTemplates/{name}")}),
    )
    .await;
    let heal = HealthCheckSpec {
        app: app.into(),
        name: "taken-heal".into(),
        health: http_health(),
    };
    let mut g = group(app, &name, 1);
    g.named_port = None;
    // The first round inserts first (four inserts answered 409, each then
    // read); the adapter saw them exist then, so the second reads first.
    for (how, inserts) in [("inserted first", 4), ("read first", 0)] {
        let before = cloud.api_calls();
        refused(cloud.ensure_template(&spec).await, &name);
        refused(
            cloud.apply_health_check(&heal).await,
            "healthChecks/taken-heal",
        );
        refused(cloud.apply_firewall(&rule).await, &rule.name);
        refused(cloud.apply_group(&g).await, "instanceGroupManagers/taken");
        let after = cloud.api_calls();
        assert_eq!(
            (
                after.mutations - before.mutations,
                after.reads - before.reads
            ),
            (inserts, 4),
            "{how}"
        );
    }
    // Nothing of theirs changed.
    let hc = get(&local, "global/healthChecks/taken-heal").await;
    assert_eq!(hc["type"], "TCP", "{hc}");
    let fw = get(&local, &format!("global/firewalls/{}", rule.name)).await;
    assert_eq!(fw["sourceRanges"], json!(["0.0.0.0/0"]), "{fw}");
    let igm = get(&local, &format!("zones/{ZONE}/instanceGroupManagers/{app}")).await;
    assert_eq!(igm["targetSize"], 0, "{igm}");
    common::finish(local).await;
}

#[tokio::test]
async fn its_own_resource_found_by_a_409_is_corrected_like_one_found_by_a_read() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "mine";
    let mut heal = HealthCheckSpec {
        app: app.into(),
        name: "mine-heal".into(),
        health: http_health(),
    };
    cloud.apply_health_check(&heal).await.unwrap();
    // Another controller process: it never saw the check, so it inserts first.
    let other = GceCloud::new(common::config(&local)).await.unwrap();
    heal.health.interval = std::time::Duration::from_secs(9);
    let before = other.api_calls();
    other.apply_health_check(&heal).await.unwrap();
    let after = other.api_calls();
    assert_eq!(
        (
            after.mutations - before.mutations,
            after.reads - before.reads
        ),
        (2, 1),
        "an insert (409), a read, an update"
    );
    let hc = get(&local, "global/healthChecks/mine-heal").await;
    assert_eq!(hc["checkIntervalSec"], 9, "{hc}");
    // Now it knows the check: one read, nothing to change.
    let before = other.api_calls();
    other.apply_health_check(&heal).await.unwrap();
    let after = other.api_calls();
    assert_eq!(
        (
            after.mutations - before.mutations,
            after.reads - before.reads
        ),
        (0, 1)
    );
    common::finish(local).await;
}
