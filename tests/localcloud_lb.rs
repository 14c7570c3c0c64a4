//! A whole external HTTPS load balancer built through the Compute API, then
//! real HTTPS requests through it to the sample app's instances. Stopping
//! one instance takes it out of rotation: once its health check marks it
//! down, no request fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ccd_e2e::{Api, LocalCloudProcess, binary, eventually, temp_dir};
use serde_json::{Value, json};

const ZONE: &str = "zones/europe-west1-b";
const DOMAIN: &str = "hello.example.com";

async fn wait_op(api: &Api, op: Value) {
    let link = op["selfLink"].as_str().unwrap().to_owned();
    let path = link.split("/projects/e2e/").nth(1).unwrap().to_owned();
    let done = api.post(&format!("{path}/wait"), json!({})).await;
    let done = match done {
        Ok(v) => v,
        // `wait` takes no body; a POST with one is still accepted by Compute.
        Err(_) => api.get(&path).await.unwrap(),
    };
    assert!(done.get("error").is_none(), "operation failed: {done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_the_load_balancer_and_out_of_rotation() {
    let data = temp_dir("lb");
    let cloud = LocalCloudProcess::start(&data).await.unwrap();
    let api = cloud.api("e2e");
    let run = json!({"command": [binary("ccd-sample-app").display().to_string()], "args": ["--port", "$(PORT)"],
        "env": {"PORT": "8080", "CCD_VERSION": "1.2.0", "CCD_APP": "hello"}, "stopGraceSec": 5});
    let steps: Vec<(&str, Value)> = vec![
        (
            "global/instanceTemplates",
            json!({"name": "hello-t1", "properties": {"machineType": "e2-small",
            "tags": {"items": ["hello"]}, "metadata": {"items": [{"key": "ccd-local-run", "value": run.to_string()}]}}}),
        ),
        (
            "global/firewalls",
            json!({"name": "hello-allow-lb", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"],
            "targetTags": ["hello"], "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
        ),
        (
            "global/healthChecks",
            json!({"name": "hello-hc", "type": "HTTP", "httpHealthCheck": {"portName": "http", "requestPath": "/healthz"},
            "checkIntervalSec": 1, "timeoutSec": 1, "healthyThreshold": 1, "unhealthyThreshold": 2}),
        ),
        (
            "zones/europe-west1-b/instanceGroupManagers",
            json!({"name": "hello", "instanceTemplate": "global/instanceTemplates/hello-t1", "targetSize": 2}),
        ),
    ];
    for (path, body) in steps {
        wait_op(&api, api.post(path, body).await.unwrap()).await;
    }
    let group = api
        .get(&format!("{ZONE}/instanceGroups/hello"))
        .await
        .unwrap();
    wait_op(&api, api.post(&format!("{ZONE}/instanceGroups/hello/setNamedPorts"),
        json!({"namedPorts": [{"name": "http", "port": 8080}], "fingerprint": group["fingerprint"]})).await.unwrap()).await;
    let steps: Vec<(&str, Value)> = vec![
        (
            "global/backendServices",
            json!({"name": "hello-bs", "loadBalancingScheme": "EXTERNAL_MANAGED", "protocol": "HTTP",
            "portName": "http", "healthChecks": ["global/healthChecks/hello-hc"], "connectionDraining": {"drainingTimeoutSec": 5},
            "backends": [{"group": group["selfLink"], "balancingMode": "UTILIZATION", "capacityScaler": 1.0}]}),
        ),
        (
            "global/urlMaps",
            json!({"name": "hello-map", "defaultService": "global/backendServices/hello-bs"}),
        ),
        (
            "global/sslCertificates",
            json!({"name": "hello-cert", "type": "MANAGED", "managed": {"domains": [DOMAIN]}}),
        ),
        (
            "global/targetHttpsProxies",
            json!({"name": "hello-proxy", "urlMap": "global/urlMaps/hello-map",
            "sslCertificates": ["global/sslCertificates/hello-cert"]}),
        ),
        ("global/addresses", json!({"name": "hello-ip"})),
        (
            "global/forwardingRules",
            json!({"name": "hello-fr", "IPAddress": "global/addresses/hello-ip", "IPProtocol": "TCP",
            "portRange": "443", "target": "global/targetHttpsProxies/hello-proxy", "loadBalancingScheme": "EXTERNAL_MANAGED"}),
        ),
    ];
    for (path, body) in steps {
        wait_op(&api, api.post(path, body).await.unwrap()).await;
    }

    // The listener, the certificate a client should trust, and a client that resolves the domain to it.
    let http = cloud.http();
    let listener: SocketAddr = eventually(
        "the forwarding rule to listen",
        Duration::from_secs(30),
        || async {
            let l: Value = http
                .get(format!("{}/admin/v1/listeners", cloud.base))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            l["listeners"][0]["listening"].as_str()?.parse().ok()
        },
    )
    .await
    .unwrap();
    let cert = api.get("global/sslCertificates/hello-cert").await.unwrap();
    assert_eq!(cert["managed"]["status"], "ACTIVE");
    assert!(
        cert.get("privateKey").is_none(),
        "the private key is never sent back"
    );
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert["certificate"].as_str().unwrap().as_bytes())
                .unwrap(),
        )
        .resolve(DOMAIN, listener)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("https://{DOMAIN}:{}/", listener.port());

    // Both instances serve through the load balancer once healthy.
    let seen = eventually(
        "both instances to answer through the load balancer",
        Duration::from_secs(60),
        || async {
            let mut seen = BTreeSet::new();
            for _ in 0..20 {
                let r = client.get(&url).send().await.ok()?;
                if r.status() != 200 {
                    return None;
                }
                let body: Value = r.json().await.ok()?;
                assert_eq!(body["version"], "1.2.0");
                seen.insert(body["instance"].as_str()?.to_owned());
            }
            (seen.len() == 2).then_some(seen)
        },
    )
    .await
    .unwrap();
    let http2 = client.get(&url).send().await.unwrap();
    assert_eq!(
        http2.version(),
        reqwest::Version::HTTP_2,
        "TLS clients get HTTP/2 by ALPN"
    );

    // Stop one instance; once the health check marks it down, every request succeeds and goes to the other.
    let stopped = seen.iter().next().unwrap().clone();
    wait_op(
        &api,
        api.post(&format!("{ZONE}/instances/{stopped}/stop"), json!({}))
            .await
            .unwrap(),
    )
    .await;
    eventually(
        "the stopped instance to be marked down",
        Duration::from_secs(30),
        || async {
            let h = api
                .post(
                    "global/backendServices/hello-bs/getHealth",
                    json!({"group": group["selfLink"]}),
                )
                .await
                .ok()?;
            let statuses = h["healthStatus"].as_array().cloned().unwrap_or_default();
            let down = statuses.iter().all(|s| {
                !s["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with(&stopped)
                    || s["healthState"] != "HEALTHY"
            });
            down.then_some(())
        },
    )
    .await
    .unwrap();
    let mut failures = 0;
    for _ in 0..200 {
        match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => {
                let body: Value = r.json().await.unwrap();
                assert_ne!(
                    body["instance"],
                    stopped.as_str(),
                    "a stopped instance got traffic"
                );
            }
            _ => failures += 1,
        }
    }
    assert_eq!(
        failures, 0,
        "requests failed after the stopped instance was marked down"
    );
    drop(cloud);
    let _ = std::fs::remove_dir_all(&data);
}
