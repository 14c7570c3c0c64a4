//! A load balancer's retry policy and outlier detection through the Cloud port, against the
//! local cloud: written on the URL map (global and regional alike) and on each backend
//! service, left alone when they match, and put back when changed by hand.

use crate::common;

use std::time::Duration;

use ccd_cloud::model::{
    LbBackend, LbKind, LoadBalancerSpec, OutlierDetection, RetryOn, RetryPolicy,
};
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::{FaultConfig, LocalCloud};
use common::{PROJECT, REGION, group, http_health, template};
use serde_json::{Value, json};

fn lb(app: &str, kind: LbKind) -> LoadBalancerSpec {
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
        kind,
        labels: Default::default(),
        retry: Some(RetryPolicy {
            on: vec![
                RetryOn::ConnectFailure,
                RetryOn::GatewayError,
                RetryOn::RefusedStream,
            ],
            retries: 2,
            per_try_timeout: Duration::from_secs(4),
        }),
        outlier: Some(OutlierDetection {
            consecutive_errors: 5,
            consecutive_gateway_failures: 3,
            enforcing_consecutive_errors: 0,
            enforcing_consecutive_gateway_failures: 100,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        }),
    }
}

async fn rest(local: &LocalCloud, method: reqwest::Method, path: &str, body: Value) -> Value {
    let url = format!("{}/compute/v1/projects/{PROJECT}/{path}", local.endpoint());
    let request = common::http(local).request(method.clone(), url);
    let request = if method == reqwest::Method::GET {
        request
    } else {
        request.json(&body)
    };
    let response = request.send().await.unwrap().error_for_status().unwrap();
    response.json().await.unwrap()
}

async fn get(local: &LocalCloud, path: &str) -> Value {
    rest(local, reqwest::Method::GET, path, Value::Null).await
}

#[tokio::test]
async fn retry_policy_and_outlier_detection_are_written_kept_and_put_back() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "shop";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    cloud.apply_group(&group(app, &tpl, 1)).await.unwrap();
    let ext = lb(
        app,
        LbKind::External {
            domains: vec!["shop.example.com".into()],
        },
    );
    assert!(cloud.apply_load_balancer(&ext).await.unwrap().complete());

    let map = get(&local, &format!("global/urlMaps/{app}-um")).await;
    assert!(
        map["defaultService"]
            .as_str()
            .unwrap()
            .ends_with("/shop-bs"),
        "{map}"
    );
    let policy = &map["defaultRouteAction"]["retryPolicy"];
    assert_eq!(
        policy["retryConditions"],
        json!(["connect-failure", "gateway-error", "refused-stream"])
    );
    assert_eq!(policy["numRetries"], 2);
    assert_eq!(policy["perTryTimeout"]["seconds"], "4");
    let service = get(&local, &format!("global/backendServices/{app}-bs")).await;
    let outlier = &service["outlierDetection"];
    assert_eq!(outlier["consecutiveGatewayFailure"], 3, "{service}");
    assert_eq!(outlier["enforcingConsecutiveGatewayFailure"], 100);
    assert_eq!(outlier["baseEjectionTime"]["seconds"], "30");
    assert_eq!(outlier["maxEjectionPercent"], 50);
    assert_eq!(service["localityLbPolicy"], "ROUND_ROBIN");

    // Matching: nothing is written again.
    let before = cloud.api_calls().mutations;
    cloud.apply_load_balancer(&ext).await.unwrap();
    assert_eq!(cloud.api_calls().mutations, before);

    // Changed by hand: the drift check sees it, and applying puts it back.
    let patch = json!({"outlierDetection": {"baseEjectionTime": {"seconds": "1"}},
        "fingerprint": service["fingerprint"]});
    let path = format!("global/backendServices/{app}-bs");
    rest(&local, reqwest::Method::PATCH, &path, patch).await;
    common::eventually("the patch is applied", || async {
        let s = get(&local, &path).await;
        (s["outlierDetection"]["baseEjectionTime"]["seconds"] == "1").then_some(())
    })
    .await;
    match cloud.read_only().apply_load_balancer(&ext).await {
        Err(CloudError::WouldChange { resource, .. }) => {
            assert!(resource.contains("backendServices/shop-bs"), "{resource}")
        }
        other => panic!("expected WouldChange, got {other:?}"),
    }
    cloud.apply_load_balancer(&ext).await.unwrap();
    let service = get(&local, &path).await;
    assert_eq!(
        service["outlierDetection"]["baseEjectionTime"]["seconds"],
        "30"
    );

    // A changed policy is one update of the map.
    let mut slower = ext.clone();
    if let Some(retry) = &mut slower.retry {
        retry.per_try_timeout = Duration::from_millis(7500);
    }
    cloud.apply_load_balancer(&slower).await.unwrap();
    let map = get(&local, &format!("global/urlMaps/{app}-um")).await;
    let timeout = &map["defaultRouteAction"]["retryPolicy"]["perTryTimeout"];
    assert_eq!(
        (&timeout["seconds"], &timeout["nanos"]),
        (&json!("7"), &json!(500_000_000))
    );

    cloud.delete_load_balancer(&ext.id()).await.unwrap();
    common::finish(local).await;
}

#[tokio::test]
async fn an_internal_load_balancer_takes_the_same_shape() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let app = "billing";
    let tpl = cloud.ensure_template(&template(app, "1")).await.unwrap();
    cloud.apply_group(&group(app, &tpl, 1)).await.unwrap();
    let int = lb(app, LbKind::Internal { port: 8080 });
    assert!(cloud.apply_load_balancer(&int).await.unwrap().complete());

    let regional = format!("regions/{REGION}");
    let map = get(&local, &format!("{regional}/urlMaps/{app}-um")).await;
    assert!(map["defaultService"].is_string(), "{map}");
    assert_eq!(map["defaultRouteAction"]["retryPolicy"]["numRetries"], 2);
    let service = get(&local, &format!("{regional}/backendServices/{app}-bs")).await;
    assert_eq!(service["outlierDetection"]["consecutiveGatewayFailure"], 3);
    let before = cloud.api_calls().mutations;
    cloud.apply_load_balancer(&int).await.unwrap();
    assert_eq!(cloud.api_calls().mutations, before, "nothing to correct");

    cloud.delete_load_balancer(&int.id()).await.unwrap();
    common::finish(local).await;
}
