//! Malformed input, sent raw (the SDK cannot send it): every refusal is a 400
//! in Google's error shape naming the field, and the server keeps answering.

use crate::common;

use common::{PROJECT, assert_error, done};
use google_cloud_compute_v1::client::Firewalls;
use google_cloud_compute_v1::model;
use serde_json::Value;

/// POSTs `body` to a collection and returns the status and the JSON answer.
async fn post(
    http: &reqwest::Client,
    cloud: &ccd_localcloud::LocalCloud,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let url = format!("{}projects/{PROJECT}/{path}", cloud.compute_url());
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert!(
        json.as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{json:?}"
    );
    (status, response.json().await.unwrap())
}

/// Asserts Google's error shape and returns the message.
fn assert_google_error(status: u16, body: &Value, code: u16, reason: &str) -> String {
    assert_eq!(status, code, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().expect("error.message").to_owned();
    let errors = error["errors"].as_array().expect("error.errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["reason"], reason, "{body}");
    assert_eq!(errors[0]["domain"], "global", "{body}");
    assert_eq!(errors[0]["message"], message.as_str(), "{body}");
    message
}

#[tokio::test]
async fn malformed_requests_are_refused_in_googles_error_shape() {
    let cloud = common::start().await;
    let http = common::http(&cloud);
    let firewalls = "global/firewalls";

    let (status, body) = post(
        &http,
        &cloud,
        firewalls,
        r#"{"name": "fw", "allowed": [{"IPProtocol": "tcp"}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "invalid");
    assert!(message.contains("Invalid JSON payload"), "{message}");

    let (status, body) = post(&http, &cloud, firewalls, r#"["not", "an", "object"]"#).await;
    assert_google_error(status, &body, 400, "invalid");

    let (status, body) = post(
        &http,
        &cloud,
        firewalls,
        r#"{"name": "fw", "allowed": [{"IPProtocol": "tcp"}], "sourceRanges": ["10.0.0.0/8"], "bogusField": 1}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "invalid");
    assert!(
        message.contains("bogusField"),
        "the unknown field is named: {message}"
    );

    let (status, body) = post(
        &http,
        &cloud,
        firewalls,
        r#"{"name": "fw", "allowed": [{"IPProtocol": "tcp"}], "sourceRanges": ["10.0.0.0/8"], "priority": "high"}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "invalid");
    assert!(
        message.contains("priority"),
        "the mistyped field is named: {message}"
    );

    let (status, body) = post(
        &http,
        &cloud,
        firewalls,
        r#"{"name": "fw", "allowed": {"IPProtocol": "tcp"}, "sourceRanges": ["10.0.0.0/8"]}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "invalid");
    assert!(
        message.contains("allowed"),
        "the mistyped field is named: {message}"
    );

    let (status, body) = post(
        &http,
        &cloud,
        firewalls,
        r#"{"name": "fw", "direction": "SIDEWAYS", "allowed": [{"IPProtocol": "tcp"}], "sourceRanges": ["10.0.0.0/8"]}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "invalid");
    assert!(
        message.contains("direction"),
        "the bad enum value is named: {message}"
    );

    for bad in [
        "Bad_Name",
        "1starts-with-digit",
        "ends-with-dash-",
        &"a".repeat(64),
    ] {
        let text = format!(
            r#"{{"name": "{bad}", "allowed": [{{"IPProtocol": "tcp"}}], "sourceRanges": ["10.0.0.0/8"]}}"#
        );
        let (status, body) = post(&http, &cloud, firewalls, &text).await;
        let message = assert_google_error(status, &body, 400, "invalid");
        assert!(
            message.contains("name") && message.contains(bad),
            "the name is named: {message}"
        );
    }

    let (status, body) = post(
        &http,
        &cloud,
        firewalls,
        r#"{"allowed": [{"IPProtocol": "tcp"}]}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "required");
    assert!(message.contains("name"), "{message}");

    let (status, body) = post(&http, &cloud, firewalls, "").await;
    assert_google_error(status, &body, 400, "required");

    let (status, body) = post(
        &http,
        &cloud,
        "zones/europe-west1-b/instanceGroupManagers",
        r#"{"name": "web"}"#,
    )
    .await;
    let message = assert_google_error(status, &body, 400, "required");
    assert!(message.contains("targetSize"), "{message}");

    // A query parameter of the wrong type.
    let url = format!(
        "{}projects/{PROJECT}/global/firewalls?maxResults=lots",
        cloud.compute_url()
    );
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let message = assert_google_error(status, &response.json().await.unwrap(), 400, "invalid");
    assert!(message.contains("maxResults"), "{message}");

    // A path that is no method at all.
    let url = format!(
        "{}projects/{PROJECT}/global/noSuchThings",
        cloud.compute_url()
    );
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    assert_google_error(status, &response.json().await.unwrap(), 404, "notFound");

    // Nothing was created, and the server keeps answering, raw and through the SDK.
    let url = format!("{}projects/{PROJECT}/global/firewalls", cloud.compute_url());
    let list: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["kind"], "compute#firewallList");
    assert!(list.get("items").is_none(), "{list}");
    let sdk = client!(Firewalls, cloud);
    let rule = model::Firewall::new()
        .set_name("fw")
        .set_source_ranges(["10.0.0.0/8"])
        .set_allowed([model::firewall::Allowed::new().set_ip_protocol("tcp")]);
    done(sdk.insert().set_project(PROJECT).set_body(rule).poller()).await;
    sdk.get()
        .set_project(PROJECT)
        .set_firewall("fw")
        .send()
        .await
        .unwrap();
    assert_error(
        sdk.get()
            .set_project(PROJECT)
            .set_firewall("gone")
            .send()
            .await,
        404,
        "notFound",
    );
    common::finish(cloud).await;
}
