//! The REST API of `ccd up`, driven as a script or the dashboard would:
//! an app applied through it runs; its plan for a new version names the
//! rollout; a broken spec is refused with every located problem while the
//! running version keeps serving; the event stream sees the new version's
//! rollout as it happens; scopes are enforced (401, 403); deleting the app
//! through the API removes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ccd_e2e::up::Up;
use ccd_e2e::{eventually, temp_dir};
use reqwest::StatusCode;
use serde_json::Value;

fn spec(version: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: shop}}
spec:
  image: example/shop:{version}
  version: \"{version}\"
  run: {{command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}}
  port: 8080
  replicas: {{min: 2, max: 2}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, unhealthyThreshold: 2}}
  rollout: {{maxSurge: 1, maxUnavailable: 0, drainTime: 1s}}
  expose: {{internal: {{port: 8141, allowFrom: [10.0.0.0/8]}}}}
"
    )
}

struct Client {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/yaml").body(b);
        }
        let response = req.send().await.unwrap();
        let code = response.status();
        (code, response.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, method: &str, path: &str, body: Option<String>) -> (StatusCode, Value) {
        self.send(method, path, Some(&self.token.clone()), body)
            .await
    }

    async fn app(&self) -> Value {
        self.call("GET", "/v1/apps/shop", None).await.1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_is_applied_planned_refused_watched_and_deleted_through_the_api() {
    let data = temp_dir("api");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let mut up = Up::start(&data, &["--deletion-grace", "1s"]).await.unwrap();
    let c = Client {
        http: reqwest::Client::new(),
        api: up.api.clone(),
        token: up.api_token.clone(),
    };

    // Scopes: none is 401, read may not apply, a token for other apps sees none.
    let (code, _) = c.send("GET", "/v1/apps", None, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let ccd = ccd_e2e::binary("ccd");
    let token = |scope: &str, apps: &[&str]| {
        let mut cmd = std::process::Command::new(&ccd);
        cmd.args(["token", "create", "--scope", scope, "--data"])
            .arg(&data);
        for a in apps {
            cmd.args(["--apps", a]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let reader = token("read", &[]);
    let (code, body) = c
        .send("PUT", "/v1/apps/shop", Some(&reader), Some(spec("1")))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");

    let (code, body) = c.call("PUT", "/v1/apps/shop", Some(spec("1"))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let ready = eventually("shop Ready", Duration::from_secs(120), || async {
        let app = c.app().await;
        (app["status"]["phase"] == "Ready").then_some(app)
    })
    .await
    .unwrap();
    let endpoint = ready["status"]["endpoints"][0].as_str().unwrap().to_owned();
    let served = |v: &'static str| {
        let endpoint = endpoint.clone();
        async move {
            let answer: Value = reqwest::get(&endpoint).await.ok()?.json().await.ok()?;
            (answer["version"] == v).then_some(())
        }
    };
    served("1").await.expect("version 1 serves");
    let others = token("read", &["api"]);
    let (_, page) = c.send("GET", "/v1/apps", Some(&others), None).await;
    assert_eq!(page["apps"], Value::Array(vec![]), "{page}");
    let (_, page) = c.call("GET", "/v1/apps?phase=Ready", None).await;
    assert_eq!(page["apps"][0]["name"], "shop", "{page}");
    assert_eq!(page["apps"][0]["instances"]["healthy"], 2, "{page}");

    // The plan of version 2: a rolling rollout from 1, nothing applied.
    let (code, plan) = c.call("POST", "/v1/apps/shop/plan", Some(spec("2"))).await;
    assert_eq!(code, StatusCode::OK, "{plan}");
    assert_eq!(plan["rollout"]["to"]["version"], "2", "{plan}");
    assert_eq!(plan["rollout"]["from"]["version"], "1", "{plan}");

    // A broken spec: 422 with located problems; version 1 keeps serving.
    let broken = spec("2").replace("port: 8080", "port: 0");
    let (code, body) = c.call("PUT", "/v1/apps/shop", Some(broken)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problem = body["problems"][0].as_str().unwrap();
    assert!(
        problem.starts_with("specs/shop.yaml:") && problem.contains("spec.port"),
        "{problem}"
    );
    assert_eq!(c.app().await["spec"]["spec"]["version"], "1");

    // The event stream sees version 2 roll out, as it happens.
    let mut stream = c
        .http
        .get(format!("{}/v1/events/stream?app=shop", c.api))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let version = c.app().await["specVersion"].as_str().unwrap().to_owned();
    let (code, body) = c
        .send("PUT", "/v1/apps/shop", Some(&c.token), Some(spec("2")))
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = {
        // The same version again, over what it replaced: a lost update.
        let stale = c
            .http
            .put(format!("{}/v1/apps/shop", c.api))
            .bearer_auth(&c.token)
            .header("if-match", format!("\"{version}\""))
            .body(spec("3"))
            .send()
            .await
            .unwrap();
        (stale.status(), ())
    };
    assert_eq!(code, StatusCode::PRECONDITION_FAILED);
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !seen.contains("\"reason\":\"RolloutSucceeded\"") || !seen.contains("version 2") {
            let chunk = stream
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no rollout of version 2 on the stream:\n{seen}"));
    assert!(seen.contains("\"reason\":\"RolloutStarted\""), "{seen}");
    served("2").await.expect("version 2 serves");
    let (_, history) = c.call("GET", "/v1/apps/shop/rollouts", None).await;
    assert_eq!(history["rollout"]["to"]["version"], "2", "{history}");
    let (code, _) = c.call("POST", "/v1/apps/shop/rollout/pause", None).await;
    assert_eq!(code, StatusCode::CONFLICT, "no rollout under way");

    // The CLI as the API's client, as from another machine.
    let token_file = data.join("api-token");
    let remote = |args: &[&str]| {
        let out = std::process::Command::new(&ccd)
            .args(args)
            .args(["--server", &c.api, "--token-file"])
            .arg(&token_file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, said) = remote(&["status", "shop"]);
    assert!(
        ok && said.contains("Ready") && said.contains(" 2 "),
        "{said}"
    );
    let (ok, said) = remote(&["events", "shop"]);
    assert!(ok && said.contains("RolloutSucceeded"), "{said}");
    let (ok, said) = remote(&["rollout", "status", "shop"]);
    assert!(ok && said.contains("version 2 (from 1)"), "{said}");
    let (ok, said) = remote(&["rollout", "pause", "shop"]);
    assert!(!ok && said.contains("no rollout under way"), "{said}");
    let v3 = data.join("shop-v3.yaml");
    std::fs::write(&v3, spec("3")).unwrap();
    let v3 = v3.display().to_string();
    let (ok, said) = remote(&["plan", &v3]);
    assert!(ok && said.contains("version 3 (from 2)"), "{said}");

    // Deleted through the API: the app goes.
    let (code, _) = c.call("DELETE", "/v1/apps/shop", None).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    eventually("shop removed", Duration::from_secs(60), || async {
        let (code, _) = c.call("GET", "/v1/apps/shop", None).await;
        (code == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .unwrap();
    up.stop();
    let _ = up.child.wait().await;
    // The terminal had the concise view; the full log is in DATA/ccd.log.
    let terminal = std::fs::read_to_string(data.join("up.log")).unwrap();
    assert!(
        !terminal.contains(" INFO "),
        "only warnings on the terminal:\n{terminal}"
    );
    let log = std::fs::read_to_string(data.join("ccd.log")).unwrap();
    assert!(log.contains("controller running"), "{log:.2000}");
    let _ = std::fs::remove_dir_all(&data);
}

/// schemathesis (PyPI), installed by `tests/scripts/schemathesis.sh` when missing.
fn schemathesis() -> std::path::PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/schemathesis.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} could not provide schemathesis: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// schemathesis generates requests from the API's own `/openapi.json`
/// (valid ones and broken ones, and sequences that follow each other's
/// answers) and checks every answer: no 5xx, and every status, content
/// type, header and body as the document says. A schema-valid spec may
/// still break a rule the JSON Schema cannot express (a region's name, a
/// version's shape), which the API refuses with 422 and every located
/// problem, as it must: so the one check that expects every schema-valid
/// request to be accepted is left out. The event stream never ends, so it
/// is left to its own tests (`crates/ccd-api/tests/api.rs` and the first
/// test here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let st = schemathesis();
    let data = temp_dir("api-schemathesis");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let mut up = Up::start(&data, &[]).await.unwrap();
    let report = data.join("schemathesis");
    let out = tokio::process::Command::new(&st)
        .arg("run")
        .arg(format!("{}/openapi.json", up.api))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", up.api_token),
        ])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        // An endless answer by design; the stream has tests of its own.
        .args(["--exclude-path", "/v1/events/stream"])
        .args(["--max-examples", "8", "--seed", "1", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems (report in {}):\n{said}{}",
        report.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("passed"), "{said}");
    up.stop();
    let _ = std::fs::remove_dir_all(&data);
}

/// `ccd controller` serves the same API, with the tokens of its
/// configuration's `apiTokens` file (`ccd token create --config`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ccd_controller_serves_the_api_with_the_tokens_of_its_configuration() {
    let dir = temp_dir("api-controller");
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("specs")).unwrap();
    std::fs::create_dir_all(dir.join("cloud")).unwrap();
    let cloud = ccd_e2e::LocalCloudProcess::start(&dir.join("cloud"))
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut controller = ccd_e2e::chaos::controller_with(
        &dir,
        &store,
        &cloud,
        serde_json::json!({
            "apiListen": format!("127.0.0.1:{port}"),
            "apiTokens": dir.join("api-tokens.json"),
        }),
    );
    // Made after the controller started: the API reads new tokens at once.
    let out = std::process::Command::new(ccd_e2e::binary("ccd"))
        .args(["token", "create", "--scope", "deploy", "--config"])
        .arg(dir.join("controller.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let c = Client {
        http: reqwest::Client::new(),
        api: format!("http://127.0.0.1:{port}"),
        token,
    };
    let spec = spec("1")
        .replace(
            "  run: {command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}\n",
            "",
        )
        .replace("8141", "8142");
    let applied = eventually("the controller's API", Duration::from_secs(30), || async {
        let answer = c
            .http
            .put(format!("{}/v1/apps/shop", c.api))
            .bearer_auth(&c.token)
            .body(spec.clone())
            .send()
            .await
            .ok()?;
        Some(answer.status())
    })
    .await
    .unwrap();
    assert_eq!(applied, StatusCode::CREATED);
    assert!(
        store.join("specs/shop.yaml").exists(),
        "written into the store"
    );
    eventually(
        "shop Ready through the controller",
        Duration::from_secs(60),
        || async { (c.app().await["status"]["phase"] == "Ready").then_some(()) },
    )
    .await
    .unwrap();
    let (code, _) = c.send("GET", "/v1/apps", None, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let _ = controller.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The dashboard in a headless Chromium, as a person uses it: logged in
/// through the URL `ccd up` printed, it shows the app and its phase; on the
/// app's page it shows a canary of version 2 start and hold without being
/// reloaded (the event stream), and its abort button rolls the canary back.
/// A screenshot of each page is kept in `target/<profile>/artifacts/dashboard/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apps_follows_a_canary_and_aborts_it() {
    const CANARY: &str = "{strategy: canary, drainTime: 1s, deadline: 30m, keepWarm: 5s, steps: [{weight: 50, pause: 20m}]}";
    let data = temp_dir("api-dashboard");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    std::fs::write(
        data.join("specs/web.yaml"),
        ccd_e2e::rollout::sample_spec("1", CANARY, "", "3s"),
    )
    .unwrap();
    let mut up = Up::start(&data, &[]).await.unwrap();
    up.ready("web").await.unwrap();
    let shots = ccd_e2e::artifacts_dir("dashboard");
    let browser = ccd_e2e::browser::Browser::start().await.unwrap();
    let until = |what: &'static str, css: &'static str, wanted: &'static str| {
        let browser = &browser;
        async move {
            eventually(what, Duration::from_secs(90), || async {
                let text = browser.text(css).await?;
                text.contains(wanted).then_some(text)
            })
            .await
            .unwrap()
        }
    };

    browser.open(&up.dashboard).await.unwrap();
    until("the apps table", "#apps", "web").await;
    let row = until("web Ready in the table", "tr[data-app=web]", "Ready").await;
    assert!(row.contains("3/3"), "{row}");
    browser.screenshot(&shots.join("apps.png")).await.unwrap();

    // The app's page, reached by its link; not reloaded from here on.
    browser.click("tr[data-app=web] a").await.unwrap();
    until("web's page", "#main", "Conditions").await;
    browser
        .run("window.stayed = true; return null;")
        .await
        .unwrap();
    let c = Client {
        http: reqwest::Client::new(),
        api: up.api.clone(),
        token: up.api_token.clone(),
    };
    let (code, body) = c
        .call(
            "PUT",
            "/v1/apps/web",
            Some(ccd_e2e::rollout::sample_spec("2", CANARY, "", "3s")),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let rollout = until(
        "the canary of version 2 holding",
        "#rollout",
        "version 2 from 1",
    )
    .await;
    assert!(rollout.contains("canary"), "{rollout}");
    until("the canary at its pause", "#rollout-state", "Progressing").await;
    browser
        .screenshot(&shots.join("app-canary.png"))
        .await
        .unwrap();

    browser.click("button[data-ask=abort]").await.unwrap();
    until("the abort asked", "#asked", "abort asked").await;
    until("the canary aborted", "#rollout-state", "Aborted").await;
    assert_eq!(
        browser.run("return window.stayed === true;").await.unwrap(),
        serde_json::Value::Bool(true),
        "the page followed without a reload"
    );
    browser
        .screenshot(&shots.join("app-aborted.png"))
        .await
        .unwrap();
    let (_, app) = c.call("GET", "/v1/apps/web", None).await;
    assert_eq!(app["status"]["rollout"]["state"], "Aborted", "{app}");
    browser.quit().await;
    up.stop();
    let _ = std::fs::remove_dir_all(&data);
}
