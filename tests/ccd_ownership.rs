//! What ccd may touch and when it deletes, as a user sees it through `ccd
//! up`: a firewall rule and a health check someone else made under an app's
//! names are never changed or deleted, and the app's status names the
//! clash; a spec moved away for a few seconds and back deletes nothing; an
//! app whose spec was deleted while ccd was stopped is removed after the
//! restart; plain HTTP to an external app is redirected to HTTPS; each app
//! runs as an account of its own, granted its secrets and deleted with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ccd_e2e::up::{Up, resources};
use ccd_e2e::{binary, eventually, temp_dir};
use serde_json::{Value, json};

/// Simulated instances (no `run`): what this test is about is the cloud's
/// resources, not the app.
fn spec(app: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: {app}}}
spec:
  image: example/{app}:1.0.0
  version: 1.0.0
  port: 8080
  machine: {{zones: [europe-west1-b]}}
  replicas: {{min: 1}}
  health: {{tcp: {{}}, interval: 1s, timeout: 1s, initialDelay: 2s}}
"
    )
}

const GRACE: &str = "6s";

fn status(data: &Path, app: &str) -> String {
    std::fs::read_to_string(data.join(format!("status/{app}.yaml"))).unwrap_or_default()
}

/// `ccd events APP` for the data folder.
async fn events(data: &Path, app: &str) -> String {
    ccd_e2e::agents::events(&binary("ccd"), data, app).await
}

async fn get(http: &reqwest::Client, compute: &str, path: &str) -> Option<Value> {
    let r = http
        .get(format!("{compute}projects/local/{path}"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// A GET on the local cloud's IAM subset (`/v1/...` beside `/compute/v1/`).
async fn iam(http: &reqwest::Client, compute: &str, path: &str) -> (u16, Value) {
    let base = compute.trim_end_matches("compute/v1/");
    let r = http
        .get(format!("{base}v1/projects/local/{path}"))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn insert(http: &reqwest::Client, compute: &str, collection: &str, body: Value) {
    let r = http
        .post(format!("{compute}projects/local/{collection}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "POST {collection}: {}", r.status());
}

/// The fields someone else's resource is judged unchanged by.
fn essence(v: &Value) -> Value {
    json!({
        "description": v["description"],
        "sourceRanges": v["sourceRanges"],
        "allowed": v["allowed"],
        "targetTags": v["targetTags"],
        "type": v["type"],
        "tcpHealthCheck": v["tcpHealthCheck"],
        "checkIntervalSec": v["checkIntervalSec"],
    })
}

/// Instances of `app`'s group, as `name id` pairs.
async fn instances(http: &reqwest::Client, compute: &str, app: &str) -> Vec<String> {
    let list = get(http, compute, "zones/europe-west1-b/instances")
        .await
        .unwrap_or_default();
    let mut out: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["name"].as_str().is_some_and(|n| n.starts_with(app)))
        .map(|i| format!("{} {}", i["name"], i["id"]))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_resources_are_left_alone_and_deletion_waits_out_its_grace() {
    let data = temp_dir("ownership");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let grace = ["--deletion-grace", GRACE];
    let mut up = Up::start(&data, &grace).await.unwrap();
    let http = up.cloud_http();

    // Someone else's rule and check, under the names app `shop` would use.
    let rule = json!({
        "name": "shop-allow-health",
        "description": "ops: bastion access",
        "network": "global/networks/default",
        "sourceRanges": ["192.168.0.0/16"],
        "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
        "targetTags": ["bastion"],
    });
    insert(&http, &up.compute, "global/firewalls", rule).await;
    let check = json!({
        "name": "shop-autoheal",
        "description": "ops: the bastion's check",
        "type": "TCP",
        "tcpHealthCheck": {"port": 22},
        "checkIntervalSec": 30,
    });
    insert(&http, &up.compute, "global/healthChecks", check).await;
    let foreign = [
        "global/firewalls/shop-allow-health",
        "global/healthChecks/shop-autoheal",
    ];
    let mut before = Vec::new();
    for path in foreign {
        before.push(essence(&get(&http, &up.compute, path).await.unwrap()));
    }

    for app in ["shop", "gone"] {
        std::fs::write(data.join(format!("specs/{app}.yaml")), spec(app)).unwrap();
    }
    // `keep` reads a secret; `lost` names one that does not exist.
    std::fs::write(data.join("cloud/secrets/keep-token"), "s3cret\n").unwrap();
    let with_secret = |app: &str, secret: &str| {
        spec(app).replace(
            "  port: 8080\n",
            &format!("  port: 8080\n  secrets: {{TOKEN: {{secret: {secret}}}}}\n"),
        )
    };
    std::fs::write(
        data.join("specs/keep.yaml"),
        with_secret("keep", "keep-token"),
    )
    .unwrap();
    std::fs::write(data.join("specs/lost.yaml"), with_secret("lost", "nope")).unwrap();
    let front = spec("front").replace(
        "  replicas:",
        "  expose: {external: {https: {domains: [front.example.com]}}}\n  replicas:",
    );
    std::fs::write(data.join("specs/front.yaml"), front).unwrap();
    for app in ["keep", "gone"] {
        eventually(
            &format!("{app} to be Ready"),
            Duration::from_secs(60),
            || async { status(&data, app).contains("phase: Ready").then_some(()) },
        )
        .await
        .unwrap();
    }
    eventually(
        "shop's clash in its status",
        Duration::from_secs(60),
        || async {
            let s = status(&data, "shop");
            s.contains("NameTaken").then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", status(&data, "shop")));
    let shop = status(&data, "shop");
    assert!(shop.contains("phase: Stalled"), "{shop}");

    // Each app runs as its own account, granted its own secret only.
    let keep_account = "ccd-keep@local.iam.gserviceaccount.com";
    let (code, _) = iam(
        &http,
        &up.compute,
        &format!("serviceAccounts/{keep_account}"),
    )
    .await;
    assert_eq!(code, 200, "keep's account exists");
    let (_, policy) = iam(&http, &up.compute, "secrets/keep-token:getIamPolicy").await;
    let readers: Vec<&str> = policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["role"] == "roles/secretmanager.secretAccessor")
        .flat_map(|b| b["members"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        readers,
        [format!("serviceAccount:{keep_account}")],
        "{policy}"
    );
    let template = get(&http, &up.compute, "global/instanceTemplates")
        .await
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str().is_some_and(|n| n.starts_with("keep-")))
        .cloned()
        .unwrap();
    assert_eq!(
        template["properties"]["serviceAccounts"][0]["email"], keep_account,
        "{template}"
    );
    // A secret that does not exist stops its app, naming it; nothing runs.
    eventually(
        "lost's missing secret in its status",
        Duration::from_secs(60),
        || async {
            status(&data, "lost")
                .contains("gcloud secrets create nope")
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", status(&data, "lost")));
    let lost = status(&data, "lost");
    assert!(lost.contains("gcloud secrets create nope"), "{lost}");
    assert!(
        instances(&http, &up.compute, "lost").await.is_empty(),
        "{lost}"
    );
    assert!(
        foreign.iter().any(|f| shop.contains(f)) && shop.contains("rename app shop"),
        "the status names the resource and the fix:\n{shop}"
    );

    // Plain HTTP to an external app is redirected to HTTPS.
    let plain = eventually("front's port 80", Duration::from_secs(60), || async {
        let s = status(&data, "front");
        s.lines().find_map(|l| {
            let l = l.trim().trim_start_matches("- ").trim_matches('"');
            l.strip_prefix("http://").map(str::to_owned)
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", status(&data, "front")));
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(format!("http://{plain}/orders?page=2"))
        .header("Host", "front.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::MOVED_PERMANENTLY);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://front.example.com") && location.ends_with("/orders?page=2"),
        "{location}"
    );

    // A spec moved away for a few seconds and back deletes nothing.
    let keep_before = instances(&http, &up.compute, "keep").await;
    assert_eq!(keep_before.len(), 1, "{keep_before:?}");
    let aside = data.join("keep.yaml.aside");
    std::fs::rename(data.join("specs/keep.yaml"), &aside).unwrap();
    eventually(
        "keep's pending deletion",
        Duration::from_secs(30),
        || async {
            status(&data, "keep")
                .contains("PendingDeletion")
                .then_some(())
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::rename(&aside, data.join("specs/keep.yaml")).unwrap();
    eventually(
        "keep's deletion cancelled",
        Duration::from_secs(30),
        || async {
            events(&data, "keep")
                .await
                .contains("DeletionCancelled")
                .then_some(())
        },
    )
    .await
    .unwrap();

    // Specs deleted while ccd is stopped: `gone` is removed after the
    // restart; `shop`'s own resources go, the foreign ones stay.
    up.stop();
    let _ = tokio::time::timeout(Duration::from_secs(60), up.child.wait()).await;
    std::fs::remove_file(data.join("specs/gone.yaml")).unwrap();
    std::fs::remove_file(data.join("specs/shop.yaml")).unwrap();
    let up = Up::start(&data, &grace).await.unwrap();
    eventually(
        "gone's resources to be deleted",
        Duration::from_secs(90),
        || async {
            resources(&http, &up.compute, "gone")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}:\n{}",
            std::fs::read_to_string(data.join("ccd.log")).unwrap_or_default()
        )
    });
    assert!(events(&data, "gone").await.contains("Deleted"));
    let (code, _) = iam(
        &http,
        &up.compute,
        "serviceAccounts/ccd-gone@local.iam.gserviceaccount.com",
    )
    .await;
    assert_eq!(code, 404, "gone's account is deleted with it");
    assert!(!data.join("status/gone.yaml").exists());
    eventually(
        "shop's own resources to be deleted",
        Duration::from_secs(60),
        || async {
            let left = resources(&http, &up.compute, "shop").await;
            (left.len() == 2).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: left {:?}",
            std::fs::read_dir(data.join("status")).map(|d| d.count())
        )
    });
    for (path, was) in foreign.iter().zip(&before) {
        let now = get(&http, &up.compute, path).await;
        assert_eq!(
            now.as_ref().map(essence).as_ref(),
            Some(was),
            "{path} is someone else's: never changed or deleted"
        );
    }

    assert_eq!(
        instances(&http, &up.compute, "keep").await,
        keep_before,
        "keep's instance was never recreated"
    );
    let keep_events = events(&data, "keep").await;
    assert!(!keep_events.contains("Deleted "), "{keep_events}");
}
