//! Operations (zonal and global get/wait, failed operations), request ids,
//! and injected faults, through the official SDK.

use crate::common;

use ccd_localcloud::FaultConfig;
use common::{PROJECT, ZONE, assert_error, classify, done, simulated_template};
use google_cloud_compute_v1::client::{
    Firewalls, GlobalOperations, InstanceGroupManagers, InstanceTemplates, ZoneOperations,
};
use google_cloud_compute_v1::errors::OperationError;
use google_cloud_compute_v1::model::{self, operation::Status};
use google_cloud_gax::paginator::ItemPaginator as _;
use google_cloud_lro::Poller as _;

fn firewall(name: &str) -> model::Firewall {
    model::Firewall::new()
        .set_name(name)
        .set_source_ranges(["10.0.0.0/8"])
        .set_allowed([model::firewall::Allowed::new()
            .set_ip_protocol("tcp")
            .set_ports(["80"])])
}

async fn firewall_names(firewalls: &Firewalls) -> Vec<String> {
    let mut names = Vec::new();
    let mut list = firewalls.list().set_project(PROJECT).by_item();
    while let Some(f) = list.next().await.transpose().unwrap() {
        names.push(f.name.unwrap());
    }
    names
}

#[tokio::test]
async fn zone_and_global_operations_get_and_wait() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let global_ops = client!(GlobalOperations, cloud);
    let zone_ops = client!(ZoneOperations, cloud);

    let op = templates
        .insert()
        .set_project(PROJECT)
        .set_body(simulated_template("tpl"))
        .send()
        .await
        .unwrap();
    let name = op.name.clone().expect("an operation has a name");
    assert!(
        op.self_link
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!("/global/operations/{name}"))),
        "{op:?}"
    );
    let got = global_ops
        .get()
        .set_project(PROJECT)
        .set_operation(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(got.name.as_deref(), Some(name.as_str()));
    assert_eq!(got.operation_type.as_deref(), Some("insert"));
    assert!(
        got.target_link
            .as_deref()
            .is_some_and(|l| l.ends_with("/global/instanceTemplates/tpl"))
    );
    let waited = global_ops
        .wait()
        .set_project(PROJECT)
        .set_operation(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(waited.status, Some(Status::Done));
    assert_eq!(waited.progress, Some(100));
    assert!(waited.end_time.is_some() && waited.insert_time.is_some());
    waited.to_result().expect("the insert succeeded");

    let group = model::InstanceGroupManager::new()
        .set_name("web")
        .set_instance_template("global/instanceTemplates/tpl")
        .set_target_size(1);
    let op = igm
        .insert()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_body(group)
        .send()
        .await
        .unwrap();
    let name = op.name.clone().unwrap();
    let got = zone_ops
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_operation(&name)
        .send()
        .await
        .unwrap();
    assert!(
        got.zone
            .as_deref()
            .is_some_and(|z| z.ends_with(&format!("/zones/{ZONE}"))),
        "{got:?}"
    );
    assert!(
        got.self_link
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!("/zones/{ZONE}/operations/{name}")))
    );
    let waited = zone_ops
        .wait()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_operation(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(waited.status, Some(Status::Done));
    assert_eq!(
        waited.target_id,
        igm.get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .send()
            .await
            .unwrap()
            .id
    );

    // Operations live where their resources do.
    assert_error(
        global_ops
            .get()
            .set_project(PROJECT)
            .set_operation(&name)
            .send()
            .await,
        404,
        "notFound",
    );
    assert_error(
        zone_ops
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_operation("operation-missing")
            .send()
            .await,
        404,
        "notFound",
    );

    let mut listed = Vec::new();
    let mut list = zone_ops
        .list()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .by_item();
    while let Some(op) = list.next().await.transpose().unwrap() {
        listed.push(op.name.unwrap());
    }
    assert_eq!(listed, [name]);
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_request_id_makes_a_mutation_happen_once() {
    let cloud = common::start().await;
    let firewalls = client!(Firewalls, cloud);
    let id = common::request_id();

    let first = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("once"))
        .set_request_id(&id)
        .send()
        .await
        .unwrap();
    let again = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("once"))
        .set_request_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.name, again.name,
        "a retry with the same request id gets the same operation"
    );
    assert_eq!(again.status, Some(Status::Done));
    again
        .to_result()
        .expect("the retried operation is the successful one");
    // The poller retries the same way: same operation, still one firewall.
    let polled = done(
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(firewall("once"))
            .set_request_id(&id)
            .poller(),
    )
    .await;
    assert_eq!(polled.name, first.name);
    assert_eq!(firewall_names(&firewalls).await, ["once"]);

    // Without the request id, the same insert is a new request: 409.
    assert_error(
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(firewall("once"))
            .send()
            .await,
        409,
        "alreadyExists",
    );
    // A different request id is a different mutation.
    let delete = firewalls
        .delete()
        .set_project(PROJECT)
        .set_firewall("once")
        .set_request_id(common::request_id());
    done(delete.poller()).await;
    assert!(firewall_names(&firewalls).await.is_empty());

    // Compute wants a UUID, and not the zero UUID.
    for bad in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let r = firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(firewall("bad"))
            .set_request_id(bad)
            .send()
            .await;
        assert_error(r, 400, "invalid");
    }
    assert!(firewall_names(&firewalls).await.is_empty());
    common::finish(cloud).await;
}

#[tokio::test]
async fn slow_operations_are_pending_until_done() {
    let faults = FaultConfig {
        operation_latency_ms: 300,
        ..FaultConfig::default()
    };
    let cloud = common::start_with(faults).await;
    let firewalls = client!(Firewalls, cloud);
    let global_ops = client!(GlobalOperations, cloud);

    let op = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("slow"))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(op.status, Some(Status::Pending | Status::Running)),
        "{op:?}"
    );
    let waited = wait_done(&global_ops, op.name.as_deref().unwrap()).await;
    waited.to_result().expect("the insert succeeded");
    firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("slow")
        .send()
        .await
        .expect("the firewall exists once its operation is done");

    // until_done polls a slow operation to its end.
    done(
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(firewall("polled"))
            .poller(),
    )
    .await;
    firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("polled")
        .send()
        .await
        .expect("the firewall exists");

    // An operation that fails is still Ok from until_done: only to_result
    // tells. Two inserts of one name while the first is under way (slower
    // operations, so the second surely comes before the first is done): both
    // are accepted, the second's operation fails with 409 when it runs.
    let admin = format!("{}/admin/v1/faults", cloud.endpoint());
    let put = common::http(&cloud)
        .put(&admin)
        .header("content-type", "application/json")
        .body(r#"{"operationLatencyMs": 2000}"#)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let first = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("raced"))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(first.status, Some(Status::Pending | Status::Running)),
        "{first:?}"
    );
    let second = tokio::time::timeout(
        common::CONVERGE,
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(firewall("raced"))
            .poller()
            .until_done(),
    )
    .await
    .expect("in time")
    .expect("until_done is Ok for a DONE operation, failed or not");
    assert_eq!(second.status, Some(Status::Done));
    assert_eq!(second.http_error_status_code, Some(409));
    match second.to_result() {
        Err(OperationError::Generic(e)) => assert_eq!(e.status_code, Some(409), "{e:?}"),
        other => panic!("expected the second insert to fail with 409, got {other:?}"),
    }
    wait_done(&global_ops, first.name.as_deref().unwrap())
        .await
        .to_result()
        .expect("the first insert succeeded");
    assert_eq!(
        firewall_names(&firewalls).await,
        ["polled", "raced", "slow"]
    );
    common::finish(cloud).await;
}

/// globalOperations.wait until DONE (one wait may return before).
async fn wait_done(ops: &GlobalOperations, name: &str) -> model::Operation {
    tokio::time::timeout(common::CONVERGE, async {
        loop {
            let op = ops
                .wait()
                .set_project(PROJECT)
                .set_operation(name)
                .send()
                .await
                .unwrap();
            if op.status == Some(Status::Done) {
                return op;
            }
        }
    })
    .await
    .expect("the operation finishes")
}

#[tokio::test]
async fn injected_faults_fail_calls_the_way_compute_does() {
    let faults = FaultConfig {
        error_rate: 1.0,
        error_codes: vec![503],
        ..FaultConfig::default()
    };
    let cloud = common::start_with(faults).await;
    // No retries, to see each failure (the SDK retries idempotent calls on 503).
    let firewalls = google_cloud_compute_v1::client::Firewalls::builder()
        .with_endpoint(cloud.endpoint())
        .with_credentials(common::credentials(&cloud))
        .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry)
        .build()
        .await
        .unwrap();

    let e = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("fw"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(classify(&e), (Some(503), Some("backendError".to_owned())));
    assert_eq!(
        e.status().map(|s| s.code),
        Some(google_cloud_gax::error::rpc::Code::Unavailable)
    );
    let e = firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("fw")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.http_status_code(), Some(503));

    // Faults are changed at run time through the admin endpoint.
    let admin = format!("{}/admin/v1/faults", cloud.endpoint());
    let http = common::http(&cloud);
    let put = |body: &'static str| {
        http.put(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert!(
        put(r#"{"errorRate": 1.0, "errorCodes": [403]}"#)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let e = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("fw"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        classify(&e),
        (Some(403), Some("rateLimitExceeded".to_owned()))
    );
    assert!(
        put(r#"{"errorRate": 1.0, "errorCodes": [429]}"#)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let e = firewalls
        .insert()
        .set_project(PROJECT)
        .set_body(firewall("fw"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.http_status_code(), Some(429));
    assert_eq!(
        e.status().map(|s| s.code),
        Some(google_cloud_gax::error::rpc::Code::ResourceExhausted)
    );

    assert!(
        put(r#"{"errorRate": 0}"#)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    done(
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(firewall("fw"))
            .poller(),
    )
    .await;
    firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("fw")
        .send()
        .await
        .expect("calls work again");
    common::finish(cloud).await;
}
