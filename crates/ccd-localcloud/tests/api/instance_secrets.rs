//! Secrets, emulated from files: a template's `ccd-secrets` references are
//! read from `DIR/secrets` into the environment of the instance's process;
//! a missing one stops the app from starting, says so in the instance's
//! log, and the group never becomes healthy; so does a secret that the
//! instance's own service account is not granted. Real processes: the
//! sample app.

use crate::common;

use std::path::{Path, PathBuf};

use ccd_localcloud::{Config, LocalCloud};
use common::{PROJECT, ZONE, eventually, finish};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The sample app's binary, built into this test's target folder (cargo
/// builds only this package's binaries for its tests).
fn sample_app() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let status = nested_cargo()
        // As `cargo test --workspace` builds it (same targets, so the same
        // features): fresh under `make test`, not built a second way.
        .args(["build", "--workspace", "--tests", "--bins"])
        .args(["--profile", &profile])
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "building ccd-sample-app failed");
    profile_dir.join("ccd-sample-app")
}

struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status}: {value}");
        value
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// The group's single member, with its address, once it has one.
    async fn member(&self, group: &str) -> Option<(Value, String)> {
        let zone = format!("zones/{ZONE}");
        let list = self
            .post(
                &format!("{zone}/instanceGroupManagers/{group}/listManagedInstances"),
                json!({}),
            )
            .await;
        let m = list["managedInstances"].as_array()?.first()?.clone();
        let name = m["name"].as_str()?.to_owned();
        let i = self.get(&format!("{zone}/instances/{name}")).await;
        let ip = i["networkInterfaces"][0]["networkIP"].as_str()?.to_owned();
        Some((m, ip))
    }
}

fn template(name: &str, app: &Path, secrets: Value) -> Value {
    let run = json!({
        "command": [app.display().to_string()],
        "args": ["--port", "$(PORT)"],
        "env": {"PORT": "8080", "SAMPLE_EXPOSE_ENV": "1"},
        "stopGraceSec": 2,
    });
    json!({"name": name, "properties": {"machineType": "e2-small", "tags": {"items": ["web"]},
    "networkInterfaces": [{"network": "global/networks/default"}],
    "metadata": {"items": [
        {"key": "ccd-local-run", "value": run.to_string()},
        {"key": "ccd-secrets", "value": secrets.to_string()},
    ]}}})
}

fn group(name: &str, template: &str) -> Value {
    // A long initial delay: autohealing must not replace the broken instance mid-test.
    json!({"name": name, "instanceTemplate": format!("global/instanceTemplates/{template}"),
        "targetSize": 1,
        "autoHealingPolicies": [{"healthCheck": "global/healthChecks/hc", "initialDelaySec": 600}]})
}

fn sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn health(member: &Value) -> &str {
    member["instanceHealth"][0]["detailedHealthState"]
        .as_str()
        .unwrap_or("")
}

/// Every log the local cloud wrote for its instances, concatenated.
fn all_logs(dir: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push_str(&all_logs(&path));
        } else {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&path).unwrap_or_default(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_process_and_a_missing_one_keeps_the_app_down() {
    let app = sample_app();
    let data = std::env::temp_dir().join(format!("ccd-localcloud-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let secrets = data.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("db-password"), "correct horse\n").unwrap();
    std::fs::write(secrets.join("api-key"), "latest-key").unwrap();
    std::fs::write(secrets.join("api-key@2"), "second-key").unwrap();

    let cloud = LocalCloud::start(Config {
        data_dir: Some(data.clone()),
        check_responses: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let rest = Rest {
        http: common::http(&cloud),
        base: format!("{}projects/{PROJECT}/", cloud.compute_url()),
    };
    rest.post(
        "global/healthChecks",
        json!({"name": "hc", "type": "HTTP",
        "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"},
        "checkIntervalSec": 1, "timeoutSec": 1, "healthyThreshold": 1, "unhealthyThreshold": 2}),
    )
    .await;
    rest.post(
        "global/firewalls",
        json!({"name": "allow-hc", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"],
        "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
    )
    .await;
    rest.post(
        "global/instanceTemplates",
        template(
            "ok-v1",
            &app,
            json!({"DB_PASSWORD": format!("projects/{PROJECT}/secrets/db-password/versions/latest"),
                "API_KEY": format!("projects/{PROJECT}/secrets/api-key/versions/2")}),
        ),
    )
    .await;
    rest.post(
        "global/instanceTemplates",
        template(
            "broken-v1",
            &app,
            json!({"DB_PASSWORD": format!("projects/{PROJECT}/secrets/db-password/versions/latest"),
                "MISSING": format!("projects/{PROJECT}/secrets/not-there/versions/latest")}),
        ),
    )
    .await;
    let zone = format!("zones/{ZONE}");
    rest.post(
        &format!("{zone}/instanceGroupManagers"),
        group("ok", "ok-v1"),
    )
    .await;
    rest.post(
        &format!("{zone}/instanceGroupManagers"),
        group("broken", "broken-v1"),
    )
    .await;

    // With its files present, the process has the values (by hash), the
    // numbered version winning over latest.
    let (_, ip) = eventually("the ok group's instance is healthy", || async {
        let (m, ip) = rest.member("ok").await?;
        (health(&m) == "HEALTHY").then_some((m, ip))
    })
    .await;
    let http = reqwest::Client::new();
    let env = |name: &'static str| {
        let (http, ip) = (http.clone(), ip.clone());
        async move {
            http.get(format!("http://{ip}:8080/env/{name}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let db = env("DB_PASSWORD").await;
    assert_eq!(db["set"], true, "{db}");
    assert_eq!(
        db["sha256"],
        sha256("correct horse"),
        "trailing newline dropped"
    );
    assert_eq!(env("API_KEY").await["sha256"], sha256("second-key"));
    assert_eq!(env("MISSING").await["set"], false);

    // A missing file: the instance runs (a VM boots) but its app never
    // starts, so nothing answers its health check (TIMEOUT, Compute's
    // unhealthy state for an instance it cannot reach), and its log says
    // what to create.
    let (m, _) = eventually("the broken group's instance is unreachable", || async {
        let (m, ip) = rest.member("broken").await?;
        (health(&m) == "TIMEOUT").then_some((m, ip))
    })
    .await;
    let broken = m["name"].as_str().unwrap().to_owned();
    let log = std::fs::read_to_string(
        data.join("instances")
            .join(ZONE)
            .join(&broken)
            .join("stderr.log"),
    )
    .unwrap();
    let missing = secrets.join("not-there").display().to_string();
    assert!(
        log.contains(&format!(
            "ccd-localcloud: cannot start the app: secret not-there (version latest) for MISSING: {missing} does not exist; create it holding the value, e.g. `printf '%s' VALUE > {missing}"
        )),
        "{log}"
    );
    let g = rest
        .get(&format!("{zone}/instanceGroupManagers/broken"))
        .await;
    assert_eq!(g["status"]["isStable"], false, "{g}");
    assert_ne!(m["currentAction"], "NONE", "{m}");

    // Values are in no log.
    let logs = all_logs(&data.join("instances"));
    for value in ["correct horse", "second-key", "latest-key"] {
        assert!(!logs.contains(value), "{value} was logged");
    }

    // Once the file exists, a recreated instance starts.
    std::fs::write(secrets.join("not-there"), "now here").unwrap();
    rest.post(
        &format!("{zone}/instanceGroupManagers/broken/recreateInstances"),
        json!({"instances": [format!("{zone}/instances/{broken}")]}),
    )
    .await;
    eventually("the recreated instance is healthy", || async {
        let (m, _) = rest.member("broken").await?;
        (health(&m) == "HEALTHY").then_some(())
    })
    .await;

    finish(cloud).await;
    let _ = std::fs::remove_dir_all(&data);
}

/// An instance that runs as an account made through the local cloud's IAM
/// reads only the secrets the account is granted: without the grant its app
/// never starts and its log names the grant to make; granted, a recreated
/// instance starts with the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_account_reads_only_the_secrets_it_is_granted() {
    let app = sample_app();
    let data =
        std::env::temp_dir().join(format!("ccd-localcloud-secrets-iam-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let secrets = data.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("db-password"), "correct horse").unwrap();
    let cloud = LocalCloud::start(Config {
        data_dir: Some(data.clone()),
        check_responses: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let rest = Rest {
        http: common::http(&cloud),
        base: format!("{}projects/{PROJECT}/", cloud.compute_url()),
    };
    let google = Rest {
        http: common::http(&cloud),
        base: format!("{}/v1/projects/{PROJECT}/", cloud.endpoint()),
    };
    rest.post(
        "global/healthChecks",
        json!({"name": "hc", "type": "HTTP",
        "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"},
        "checkIntervalSec": 1, "timeoutSec": 1, "healthyThreshold": 1, "unhealthyThreshold": 2}),
    )
    .await;
    rest.post(
        "global/firewalls",
        json!({"name": "allow-hc", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"],
        "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
    )
    .await;
    let account = google
        .post("serviceAccounts", json!({"accountId": "ccd-web"}))
        .await;
    let email = account["email"].as_str().unwrap().to_owned();
    let mut web = template(
        "web-v1",
        &app,
        json!({"DB_PASSWORD": format!("projects/{PROJECT}/secrets/db-password/versions/latest")}),
    );
    web["properties"]["serviceAccounts"] = json!([{"email": email,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]);
    rest.post("global/instanceTemplates", web).await;
    let zone = format!("zones/{ZONE}");
    rest.post(
        &format!("{zone}/instanceGroupManagers"),
        group("web", "web-v1"),
    )
    .await;

    let (m, _) = eventually("the ungranted instance is unreachable", || async {
        let (m, ip) = rest.member("web").await?;
        (health(&m) == "TIMEOUT").then_some((m, ip))
    })
    .await;
    let name = m["name"].as_str().unwrap().to_owned();
    let instance = rest.get(&format!("{zone}/instances/{name}")).await;
    assert_eq!(instance["serviceAccounts"][0]["email"], email.as_str());
    let log = std::fs::read_to_string(
        data.join("instances")
            .join(ZONE)
            .join(&name)
            .join("stderr.log"),
    )
    .unwrap();
    assert!(
        log.contains(&format!(
            "ccd-localcloud: cannot start the app: secret db-password (version latest) for DB_PASSWORD: the instance's service account {email} may not access secret db-password: grant it roles/secretmanager.secretAccessor on the secret (projects/{PROJECT}/secrets/db-password)"
        )),
        "{log}"
    );

    google
        .post(
            "secrets/db-password:setIamPolicy",
            json!({"policy": {"bindings": [{"role": "roles/secretmanager.secretAccessor",
                "members": [format!("serviceAccount:{email}")]}]}}),
        )
        .await;
    rest.post(
        &format!("{zone}/instanceGroupManagers/web/recreateInstances"),
        json!({"instances": [format!("{zone}/instances/{name}")]}),
    )
    .await;
    let (_, ip) = eventually("the granted instance is healthy", || async {
        let (m, ip) = rest.member("web").await?;
        (health(&m) == "HEALTHY").then_some((m, ip))
    })
    .await;
    let db: Value = reqwest::get(format!("http://{ip}:8080/env/DB_PASSWORD"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(db["sha256"], sha256("correct horse"), "{db}");

    finish(cloud).await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A nested `cargo` that sees the environment a shell would give it: the
/// variables cargo sets for a running test (its package's name, manifest
/// folder, `OUT_DIR`...) are watched by build scripts (ring's), so left in
/// place they make the nested build rebuild half the workspace.
fn nested_cargo() -> std::process::Command {
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || matches!(
                &*k,
                "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_tests {
            cargo.env_remove(&key);
        }
    }
    cargo
}
