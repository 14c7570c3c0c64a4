#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Body checks: real-shaped bodies pass; the mistakes Google would reject are
//! rejected with the field path; responses must look like Google's.

use ccd_discovery::{Api, FieldError};
use serde_json::{Value, json};

fn request(schema: &str, body: &Value) -> Vec<FieldError> {
    Api::compute()
        .check_request(schema, body)
        .err()
        .unwrap_or_default()
}

fn response(schema: &str, body: &Value) -> Vec<FieldError> {
    Api::compute()
        .check_response(schema, body)
        .err()
        .unwrap_or_default()
}

/// The single problem reported, which must be at `field`.
fn only(errors: Vec<FieldError>, field: &str) -> FieldError {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors.into_iter().next().unwrap();
    assert_eq!(e.field, field, "{e}");
    e
}

fn instance_template() -> Value {
    json!({
        "name": "web-v3",
        "description": "ccd app web, release 3",
        "properties": {
            "machineType": "e2-small",
            "labels": {"ccd-app": "web"},
            "tags": {"items": ["ccd-web", "http-server"]},
            "metadata": {"items": [
                {"key": "gce-container-declaration", "value": "spec:\n  containers:\n  - name: web\n"},
                {"key": "google-logging-enabled", "value": "true"}
            ]},
            "disks": [{
                "boot": true, "autoDelete": true, "type": "PERSISTENT", "mode": "READ_WRITE",
                "initializeParams": {
                    "sourceImage": "projects/cos-cloud/global/images/family/cos-stable",
                    "diskSizeGb": "10",
                    "diskType": "pd-balanced"
                }
            }],
            "networkInterfaces": [{
                "network": "global/networks/default",
                "accessConfigs": [{"name": "External NAT", "type": "ONE_TO_ONE_NAT", "networkTier": "PREMIUM"}]
            }],
            "serviceAccounts": [{"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
            "scheduling": {"automaticRestart": true, "onHostMaintenance": "MIGRATE", "preemptible": false}
        }
    })
}

fn instance_group_manager() -> Value {
    json!({
        "name": "web",
        "baseInstanceName": "web",
        "instanceTemplate": "projects/p/global/instanceTemplates/web-v3",
        "targetSize": 3,
        "versions": [
            {"name": "v3", "instanceTemplate": "projects/p/global/instanceTemplates/web-v3"},
            {"name": "canary", "instanceTemplate": "projects/p/global/instanceTemplates/web-v4",
             "targetSize": {"fixed": 1}}
        ],
        "namedPorts": [{"name": "http", "port": 8080}],
        "autoHealingPolicies": [{"healthCheck": "projects/p/global/healthChecks/web", "initialDelaySec": 300}],
        "updatePolicy": {
            "type": "PROACTIVE", "minimalAction": "REPLACE", "replacementMethod": "SUBSTITUTE",
            "maxSurge": {"fixed": 1}, "maxUnavailable": {"percent": 0}
        }
    })
}

fn backend_service() -> Value {
    json!({
        "name": "web",
        "protocol": "HTTP",
        "portName": "http",
        "timeoutSec": 30,
        "loadBalancingScheme": "EXTERNAL_MANAGED",
        "healthChecks": ["projects/p/global/healthChecks/web"],
        "backends": [{
            "group": "projects/p/zones/us-central1-a/instanceGroups/web",
            "balancingMode": "UTILIZATION", "maxUtilization": 0.8, "capacityScaler": 1.0
        }],
        "connectionDraining": {"drainingTimeoutSec": 60},
        "logConfig": {"enable": true, "sampleRate": 1.0},
        "fingerprint": "42WmSpB8rSM="
    })
}

fn firewall() -> Value {
    json!({
        "name": "ccd-web-allow-lb",
        "network": "global/networks/default",
        "direction": "INGRESS",
        "priority": 1000,
        "sourceRanges": ["130.211.0.0/22", "35.191.0.0/16"],
        "targetTags": ["ccd-web"],
        "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]
    })
}

#[test]
fn realistic_requests_pass() {
    for (schema, body) in [
        ("InstanceTemplate", instance_template()),
        ("InstanceGroupManager", instance_group_manager()),
        ("BackendService", backend_service()),
        ("Firewall", firewall()),
    ] {
        assert_eq!(
            Api::compute().check_request(schema, &body),
            Ok(()),
            "{schema}"
        );
    }
}

#[test]
fn unknown_field_is_named_like_google_does() {
    let mut body = instance_template();
    body["properties"]["foo"] = json!(1);
    let e = only(request("InstanceTemplate", &body), "properties.foo");
    assert_eq!(
        e.message,
        "Invalid JSON payload received. Unknown name \"foo\" at 'instance_template.properties': Cannot find field."
    );

    let mut body = instance_group_manager();
    body["versions"][1]["targetSize"]["fixd"] = json!(1);
    only(
        request("InstanceGroupManager", &body),
        "versions[1].targetSize.fixd",
    );

    let e = only(
        request("Firewall", &json!({"name": "f", "allow": []})),
        "allow",
    );
    assert!(e.message.contains("at 'firewall'"), "{e}");
}

#[test]
fn wrong_types_name_the_expected_type() {
    let mut body = instance_group_manager();
    body["updatePolicy"]["maxSurge"]["fixed"] = json!("one");
    let e = only(
        request("InstanceGroupManager", &body),
        "updatePolicy.maxSurge.fixed",
    );
    assert!(
        e.message
            .contains("'instance_group_manager.update_policy.max_surge.fixed' (TYPE_INT32)"),
        "{e}"
    );
    assert!(e.message.contains("int32"), "{e}");

    for (field, value, expected) in [
        ("name", json!(5), "TYPE_STRING"),
        ("targetSize", json!(2.5), "TYPE_INT32"),
        ("targetSize", json!(true), "TYPE_INT32"),
        ("targetSize", json!(4_294_967_296_u64), "TYPE_INT32"),
        ("versions", json!({"name": "v3"}), "a list"),
        ("updatePolicy", json!("PROACTIVE"), "TYPE_MESSAGE"),
    ] {
        let mut body = instance_group_manager();
        body[field] = value;
        let e = only(request("InstanceGroupManager", &body), field);
        assert!(e.message.contains(expected), "{field}: {e}");
    }

    let mut body = instance_template();
    body["properties"]["disks"][0]["boot"] = json!("yes");
    let e = only(
        request("InstanceTemplate", &body),
        "properties.disks[0].boot",
    );
    assert!(e.message.contains("TYPE_BOOL"), "{e}");

    body = instance_template();
    body["properties"]["labels"]["tier"] = json!(1);
    only(request("InstanceTemplate", &body), "properties.labels.tier");

    body = instance_template();
    body["properties"]["metadata"]["items"][1]["value"] = json!(true);
    only(
        request("InstanceTemplate", &body),
        "properties.metadata.items[1].value",
    );
}

#[test]
fn bad_enum_lists_the_valid_values() {
    let mut body = instance_group_manager();
    body["updatePolicy"]["type"] = json!("SOMETIMES");
    let e = only(request("InstanceGroupManager", &body), "updatePolicy.type");
    assert!(e.message.contains("\"SOMETIMES\""), "{e}");
    assert!(e.message.contains("OPPORTUNISTIC, PROACTIVE"), "{e}");

    let mut body = firewall();
    body["direction"] = json!("ingress");
    let e = only(request("Firewall", &body), "direction");
    assert!(e.message.contains("EGRESS, INGRESS"), "{e}");
}

#[test]
fn requests_take_integers_as_numbers_or_strings() {
    let mut body = instance_template();
    let disk = &mut body["properties"]["disks"][0]["initializeParams"];
    disk["diskSizeGb"] = json!(10); // int64 as a number
    assert_eq!(
        Api::compute().check_request("InstanceTemplate", &body),
        Ok(())
    );

    let mut body = instance_group_manager();
    body["targetSize"] = json!("3"); // int32 as a string
    body["updatePolicy"]["maxSurge"]["fixed"] = json!(1.0);
    assert_eq!(
        Api::compute().check_request("InstanceGroupManager", &body),
        Ok(())
    );

    let mut body = instance_template();
    body["properties"]["disks"][0]["initializeParams"]["diskSizeGb"] = json!("10GB");
    let e = only(
        request("InstanceTemplate", &body),
        "properties.disks[0].initializeParams.diskSizeGb",
    );
    assert!(e.message.contains("TYPE_INT64"), "{e}");
}

#[test]
fn null_means_unset_in_requests_and_output_fields_are_ignored() {
    let mut body = firewall();
    body["description"] = Value::Null;
    body["id"] = json!("123"); // output only, but Google accepts and ignores it
    body["creationTimestamp"] = json!("2026-01-01T00:00:00.000-08:00");
    assert_eq!(Api::compute().check_request("Firewall", &body), Ok(()));
}

#[test]
fn bytes_must_be_base64() {
    let mut body = backend_service();
    body["fingerprint"] = json!("not base64!");
    let e = only(request("BackendService", &body), "fingerprint");
    assert!(e.message.contains("TYPE_BYTES"), "{e}");
}

#[test]
fn every_problem_is_reported() {
    let body = json!({"name": 1, "priority": "high", "direction": "UP", "bogus": true});
    let mut fields: Vec<_> = request("Firewall", &body)
        .into_iter()
        .map(|e| e.field)
        .collect();
    fields.sort();
    assert_eq!(fields, ["bogus", "direction", "name", "priority"]);
}

/// `{"a": {"a": ... "leaf"}}` with `levels` objects, parsed from text the way
/// a server receives it (serde_json refuses more than 128 levels).
fn nested(levels: usize) -> Value {
    let text = format!("{}\"leaf\"{}", "{\"a\":".repeat(levels), "}".repeat(levels));
    serde_json::from_str(&text).unwrap()
}

/// The same, built in a loop, for depths no parser would hand over.
fn nested_built(levels: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..levels {
        // Not `json!({"a": v})`: that serializes (copies) `v` every time.
        let mut map = serde_json::Map::new();
        map.insert("a".to_owned(), v);
        v = Value::Object(map);
    }
    v
}

#[test]
fn deep_nesting_is_rejected_with_the_field_path() {
    let mut body = instance_template();
    body["properties"]["labels"] = nested(120);
    let errors = request("InstanceTemplate", &body);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.field.starts_with("properties.labels.a.a."), "{e}");
    assert!(e.message.contains("deeper than 64"), "{e}");

    // Within the limit, the body is judged on its content instead.
    let mut body = instance_template();
    body["properties"]["labels"] = nested(60);
    let e = only(request("InstanceTemplate", &body), "properties.labels.a");
    assert!(!e.message.contains("deeper"), "{e}");

    assert!(
        response("Operation", &nested(100))
            .iter()
            .any(|e| e.message.contains("deeper"))
    );
}

#[test]
fn checking_a_very_deep_body_needs_little_stack() {
    // Building and dropping a 20,000-level value recurses in serde_json, so
    // that happens on a big stack; the check itself runs on a small one,
    // which unbounded recursion over the body would overflow.
    let big = std::thread::Builder::new().stack_size(512 << 20);
    let outcome = big
        .spawn(|| {
            let mut body = instance_template();
            body["properties"]["labels"] = nested_built(20_000);
            let small = std::thread::Builder::new().stack_size(1 << 20);
            std::thread::scope(|s| {
                let checked = small
                    .spawn_scoped(s, || request("InstanceTemplate", &body))
                    .unwrap();
                checked.join().unwrap()
            })
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(outcome.len(), 1);
    assert!(
        outcome[0].message.contains("deeper than 64"),
        "{}",
        outcome[0]
    );
}

#[test]
fn unknown_schema_is_an_error() {
    let errors = request("NoSuchSchema", &json!({}));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("NoSuchSchema"));
}

#[test]
fn field_error_displays_field_then_message() {
    let e = FieldError {
        field: "updatePolicy.type".into(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "updatePolicy.type: bad");
}

fn operation() -> Value {
    json!({
        "kind": "compute#operation",
        "id": "4125350285339458012",
        "name": "operation-1767225600000-abc",
        "zone": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a",
        "operationType": "compute.instanceGroupManagers.resize",
        "targetLink": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instanceGroupManagers/web",
        "targetId": "8870431245896410000",
        "status": "DONE",
        "user": "ccd@example.com",
        "progress": 100,
        "insertTime": "2026-01-01T00:00:00.000-08:00",
        "startTime": "2026-01-01T00:00:00.100-08:00",
        "endTime": "2026-01-01T00:00:01.000-08:00",
        "selfLink": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/operations/operation-1767225600000-abc"
    })
}

#[test]
fn response_int64_must_be_a_string() {
    assert_eq!(
        Api::compute().check_response("Operation", &operation()),
        Ok(())
    );

    let mut body = operation();
    body["id"] = json!(4_125_350_285_339_458_012_u64);
    let e = only(response("Operation", &body), "id");
    assert!(e.message.contains("uint64 as a JSON string"), "{e}");
    // The same body is fine as a request: Google reads numbers there.
    assert_eq!(Api::compute().check_request("Operation", &body), Ok(()));
}

#[test]
fn response_checks_are_strict() {
    let mut body = operation();
    body["progress"] = json!("100"); // int32 goes out as a number
    only(response("Operation", &body), "progress");

    let mut body = operation();
    body["status"] = json!("FINISHED");
    let e = only(response("Operation", &body), "status");
    assert!(e.message.contains("DONE, PENDING, RUNNING"), "{e}");

    let mut body = operation();
    body["warnings"] = json!(null);
    only(response("Operation", &body), "warnings");

    let mut body = operation();
    body["targetName"] = json!("web");
    only(response("Operation", &body), "targetName");

    let mut body = operation();
    body["error"] =
        json!({"errors": [{"code": "RESOURCE_NOT_FOUND", "message": "gone", "severity": 1}]});
    only(response("Operation", &body), "error.errors[0].severity");
}

#[test]
fn response_shaped_group_manager_passes() {
    let mut body = instance_group_manager();
    let extra = json!({
        "kind": "compute#instanceGroupManager",
        "id": "1234567890123456789",
        "creationTimestamp": "2026-01-01T00:00:00.000-08:00",
        "fingerprint": "42WmSpB8rSM=",
        "zone": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a",
        "instanceGroup": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instanceGroups/web",
        "selfLink": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instanceGroupManagers/web",
        "currentActions": {"none": 3, "creating": 0, "recreating": 0, "deleting": 0},
        "status": {"isStable": true, "versionTarget": {"isReached": true}}
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    assert_eq!(
        Api::compute().check_response("InstanceGroupManager", &body),
        Ok(())
    );
}
