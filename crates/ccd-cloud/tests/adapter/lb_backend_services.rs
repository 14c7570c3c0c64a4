//! A load balancer's backend services through the Cloud port, against the
//! local cloud: backends Compute would refuse are refused before anything
//! is made, and backend services made before they were marked with their
//! balancer's name are still found, corrected and deleted.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use ccd_cloud::model::{LbBackend, LbKind, LbPieceKind, LoadBalancerSpec};
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::FaultConfig;
use common::{group, http_health, template};

/// An internal load balancer named like the app, in front of the app's group.
fn lb(app: &str) -> LoadBalancerSpec {
    LoadBalancerSpec {
        app: app.to_owned(),
        name: app.to_owned(),
        backends: vec![LbBackend {
            group: group(app, "unused", 1).id(),
            weight: 1,
        }],
        port_name: "http".to_owned(),
        health: http_health(),
        drain: Duration::from_secs(30),
        kind: LbKind::Internal { port: 8080 },
        labels: BTreeMap::new(),
        retry: None,
        outlier: None,
    }
}

#[tokio::test]
async fn backends_compute_would_refuse_are_refused_before_anything_is_made() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "odd";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    cloud.apply_group(&group(app, &tpl, 1)).await.unwrap();
    let mut int = lb(app);
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
    let http = common::http(local);
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
    let int = lb(app);
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
        "description": map["description"],
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
