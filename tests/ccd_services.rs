//! App services under `ccd up`. Two apps ask for every service; each
//! receives its variables as secrets (the sample app reports their
//! digests), reaches its own keys and gets NOPERM on the other's and on
//! FLUSHALL, opens its own database only, writes documents and files of its
//! own, and `ccd logs` shows what it wrote; its status says where and as
//! whom, and no password appears in status, events or the log. A third app
//! whose namespace overlaps another's is Stalled naming the field, and
//! nothing else moves. A backup is checked by a restore. Deleting an app
//! keeps its data by default (api's cache), removes it with `onDelete:
//! delete` (api's files) and backs it up first with `snapshot` (api's
//! database); `ccd services prune` removes what was kept. Rotating an app's
//! SQL and cache passwords under load fails no request: the app, which uses
//! both on every request, rolls out with the new ones, and only then do the
//! old ones stop working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ccd_controller::status::{Phase, Status};
use ccd_e2e::up::Up;
use ccd_e2e::{eventually, temp_dir};
use ccd_services::password::sha256_hex;
use ccd_services::resp::{Connection, Reply};

fn spec(app: &str, port: u16, cache: &str) -> String {
    spec_with(app, port, cache, "{}", "{engine: postgres}")
}

fn spec_with(app: &str, port: u16, cache: &str, storage: &str, sql: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: {app}}}
spec:
  image: example/{app}:1
  version: \"1\"
  run: {{command: [ccd-sample-app], args: [--port, \"$(PORT)\"], env: {{SAMPLE_EXPOSE_ENV: \"1\"}}}}
  port: 8080
  replicas: {{min: 1, max: 1}}
  health: {{http: {{path: /healthz}}, interval: 1s, timeout: 1s, unhealthyThreshold: 2, initialDelay: 5s}}
  expose: {{internal: {{port: {port}, allowFrom: [10.0.0.0/8]}}}}
  services: {{cache: {cache}, sql: {sql}, nosql: {{}}, storage: {storage}, logs: {{retention: 1h}}}}
"
    )
}

fn status(data: &Path, app: &str) -> Option<Status> {
    Status::parse(&std::fs::read(data.join(format!("status/{app}.yaml"))).ok()?)
}

fn servers_installed() {
    ccd_services::testing::redis_server();
    ccd_services::testing::fake_gcs_server();
}

/// One variable of the app, as its secret holds it.
fn secret(data: &Path, app: &str, kind: &str, env: &str) -> String {
    let name = ccd_services::names::secret_of(app, kind, env);
    std::fs::read_to_string(data.join(format!("cloud/secrets/{name}"))).unwrap()
}

/// A connection to the apps' redis-server as its administrator.
async fn redis_admin(data: &Path, address: &str) -> Connection {
    let password = std::fs::read_to_string(data.join("services/redis/admin-password")).unwrap();
    let mut c = Connection::connect(address).await.unwrap();
    c.auth("default", password.trim()).await.unwrap();
    c
}

/// The password in the app's `REDIS_URL`, as its secret holds it.
fn url_of(data: &Path, app: &str) -> String {
    std::fs::read_to_string(data.join(format!("cloud/secrets/ccd-{app}-cache"))).unwrap()
}

/// The app's `DATABASE_URL`, as its secret holds it.
fn database_url_of(data: &Path, app: &str) -> String {
    std::fs::read_to_string(data.join(format!("cloud/secrets/ccd-{app}-sql-databaseurl"))).unwrap()
}

fn password_of(url: &str) -> String {
    let (_, rest) = url.split_once("://").unwrap();
    let (userinfo, _) = rest.split_once('@').unwrap();
    userinfo.split_once(':').unwrap().1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_gets_a_cache_and_a_database_of_its_own() {
    servers_installed();
    let data = temp_dir("services");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    std::fs::write(data.join("specs/web.yaml"), spec("web", 8121, "{}")).unwrap();
    std::fs::write(
        data.join("specs/api.yaml"),
        spec_with(
            "api",
            8122,
            "{namespace: \"api-v2:\"}",
            "{onDelete: delete}",
            "{engine: postgres, onDelete: snapshot}",
        ),
    )
    .unwrap();
    let mut up = Up::start(&data, &["--deletion-grace", "1s"]).await.unwrap();
    let mut urls = std::collections::HashMap::new();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                for app in ["web", "api"] {
                    if let Some(s) = status(&data, app)
                        && s.phase == Phase::Ready
                        && !urls.contains_key(app)
                    {
                        return (app, s.endpoints[0].clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "web and api Ready:\n{}",
                std::fs::read_to_string(data.join("ccd.log")).unwrap_or_default()
            )
        });
        urls.insert(line.0, line.1);
    }

    let web = status(&data, "web").unwrap();
    let service = |kind: &str| web.services.iter().find(|s| s.kind == kind).unwrap();
    assert_eq!(
        web.services
            .iter()
            .map(|s| s.kind.as_str())
            .collect::<Vec<_>>(),
        ["sql", "nosql", "cache", "storage", "logs"]
    );
    let cache = service("cache");
    assert_eq!(
        (cache.kind.as_str(), cache.user.as_deref()),
        ("cache", Some("ccd-web"))
    );
    assert_eq!(cache.scope.as_deref(), Some("keys and channels web:*"));
    assert_eq!(cache.env, ["REDIS_URL"]);
    let address = cache.endpoint.clone().unwrap();
    let sql = service("sql");
    assert_eq!(
        (sql.kind.as_str(), sql.user.as_deref(), sql.scope.as_deref()),
        ("sql", Some("ccd-web"), Some("database web"))
    );

    // The credentials reached each app, as secrets.
    let http = reqwest::Client::new();
    for app in ["web", "api"] {
        let url = url_of(&data, app);
        assert!(url.starts_with(&format!("redis://ccd-{app}:")), "{app}");
        for (name, value) in [
            ("REDIS_URL", url),
            ("DATABASE_URL", database_url_of(&data, app)),
            (
                "FIRESTORE_PROJECT_ID",
                secret(&data, app, "nosql", "FIRESTORE_PROJECT_ID"),
            ),
            (
                "FIRESTORE_EMULATOR_HOST",
                secret(&data, app, "nosql", "FIRESTORE_EMULATOR_HOST"),
            ),
            (
                "STORAGE_PREFIX",
                secret(&data, app, "storage", "STORAGE_PREFIX"),
            ),
            (
                "STORAGE_BUCKET",
                secret(&data, app, "storage", "STORAGE_BUCKET"),
            ),
        ] {
            // What the sample app reports of the variable: its SHA-256.
            let got: serde_json::Value = http
                .get(format!("{}/env/{name}", urls[app]))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(got["sha256"], sha256_hex(&value), "{app} {name}: {got}");
        }
    }
    // Documents and files: each app writes its own, in its own place.
    for app in ["web", "api"] {
        let host = secret(&data, app, "nosql", "FIRESTORE_EMULATOR_HOST");
        let project = secret(&data, app, "nosql", "FIRESTORE_PROJECT_ID");
        let database = secret(&data, app, "nosql", "FIRESTORE_DATABASE_ID");
        assert_eq!(
            (project.as_str(), database.as_str()),
            (format!("ccd-{app}").as_str(), format!("ccd-{app}").as_str())
        );
        let wrote = http
            .post(format!(
                "http://{host}/v1/projects/{project}/databases/{database}/documents/notes?documentId=n1"
            ))
            .json(&serde_json::json!({"fields": {"by": {"stringValue": app}}}))
            .send()
            .await
            .unwrap();
        assert!(
            wrote.status().is_success(),
            "{app}: {}",
            wrote.text().await.unwrap()
        );
        let storage = secret(&data, app, "storage", "STORAGE_EMULATOR_HOST");
        let bucket = secret(&data, app, "storage", "STORAGE_BUCKET");
        let prefix = secret(&data, app, "storage", "STORAGE_PREFIX");
        assert_eq!(prefix, format!("{app}/"));
        let put = http
            .post(format!(
                "{storage}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={prefix}hello.txt"
            ))
            .body(format!("from {app}"))
            .send()
            .await
            .unwrap();
        assert!(
            put.status().is_success(),
            "{app}: {}",
            put.text().await.unwrap()
        );
    }
    let web_host = secret(&data, "web", "nosql", "FIRESTORE_EMULATOR_HOST");
    let in_api = http
        .get(format!(
            "http://{web_host}/v1/projects/ccd-api/databases/ccd-api/documents/notes/n1"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        in_api.contains("\"api\""),
        "api's document is in api's project: {in_api}"
    );

    // What the instances wrote, shipped and read back by `ccd logs`.
    let logs = eventually("web's logs shipped", Duration::from_secs(30), || async {
        let out = std::process::Command::new(ccd_e2e::binary("ccd"))
            .args(["logs", "web", "--since", "1h", "--data"])
            .arg(&data)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("listening on").then_some(text)
    })
    .await
    .unwrap();
    assert!(
        logs.lines().all(|l| l.contains("web-")),
        "only web's instances: {logs}"
    );

    // Its database is its own: create, insert, select; no other opens.
    let sql_as = |app: &str, database: &str, sql: &str| {
        let out = std::process::Command::new("psql")
            .args(["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(database_url_of(&data, app).replace(&format!("/{app}"), &format!("/{database}")))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    assert_eq!(
        sql_as(
            "web",
            "web",
            "CREATE TABLE t (n int); INSERT INTO t VALUES (3); SELECT n FROM t"
        ),
        (true, "3".to_owned())
    );
    let (ok, said) = sql_as("api", "web", "SELECT 1");
    assert!(
        !ok && said.contains("permission denied for database"),
        "{said}"
    );

    // Each user reaches its own keys, and nothing of the other's.
    let mut w = Connection::connect(&address).await.unwrap();
    w.auth("ccd-web", &password_of(&url_of(&data, "web")))
        .await
        .unwrap();
    let mut a = Connection::connect(&address).await.unwrap();
    a.auth("ccd-api", &password_of(&url_of(&data, "api")))
        .await
        .unwrap();
    assert!(w.call(&["SET", "web:k", "1"]).await.unwrap().is_ok());
    assert!(a.call(&["SET", "api-v2:k", "2"]).await.unwrap().is_ok());
    for reply in [
        w.call(&["GET", "api-v2:k"]).await.unwrap(),
        a.call(&["GET", "web:k"]).await.unwrap(),
        w.call(&["FLUSHALL"]).await.unwrap(),
    ] {
        assert_eq!(reply.error_code(), Some("NOPERM"), "{reply:?}");
    }
    assert_eq!(
        w.call(&["GET", "web:k"]).await.unwrap(),
        Reply::Bulk(Some(b"1".to_vec()))
    );

    // What a person sees: the services, and on asking, the values.
    let ccd = |args: &[&str]| {
        let out = std::process::Command::new(ccd_e2e::binary("ccd"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = ccd(&["services"]);
    for app in ["web", "api"] {
        let line = listed
            .lines()
            .find(|l| l.starts_with(app) && l.contains(" cache "))
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(
            line.contains("Ready") && line.contains(&format!("ccd-{app}")),
            "{line}"
        );
        let kinds = listed
            .lines()
            .filter(|l| l.starts_with(app) && l.contains("Ready"));
        assert_eq!(kinds.count(), 5, "every service of {app} Ready: {listed}");
        assert!(!listed.contains(&password_of(&url_of(&data, app))));
    }
    let env = ccd(&["services", "env", "web"]);
    assert!(
        env.lines()
            .any(|l| l == format!("REDIS_URL={}", url_of(&data, "web")))
            && env
                .lines()
                .any(|l| l == format!("DATABASE_URL={}", database_url_of(&data, "web"))),
        "{env}"
    );

    // A backup, checked by a restore into a scratch database; one that
    // would restore nothing (api's database has no table) is a failure.
    let backed_up = ccd(&["services", "backup", "web"]);
    assert!(
        backed_up.contains("(1 tables, 1 rows, restored and checked)"),
        "{backed_up}"
    );
    let dumps = std::fs::read_dir(data.join("services/backups/web"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dump")
        })
        .count();
    assert_eq!(dumps, 1);
    let failed = std::process::Command::new(ccd_e2e::binary("ccd"))
        .args(["services", "backup", "api", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && said.contains("restores no table"),
        "{said}"
    );
    assert!(
        !data
            .join("services/backups/api")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().path().extension().is_some_and(|x| x == "dump") })
    );
    assert_eq!(
        sql_as(
            "web",
            "web",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'ccd-restore-%'"
        ),
        (true, "0".to_owned()),
        "no scratch database is left"
    );

    // A namespace inside another app's: Stalled, naming the field; web serves on.
    std::fs::write(
        data.join("specs/clash.yaml"),
        spec("clash", 8123, "{namespace: \"web:clash:\"}"),
    )
    .unwrap();
    let clash = eventually("clash Stalled", Duration::from_secs(60), || async {
        let s = status(&data, "clash")?;
        (s.phase == Phase::Stalled).then_some(s)
    })
    .await
    .unwrap();
    let stalled = clash
        .conditions
        .iter()
        .find(|c| c.kind == "Stalled")
        .unwrap();
    assert_eq!(stalled.reason, "ServiceUnavailable");
    assert!(
        stalled.message.contains("services.cache.namespace")
            && stalled.message.contains("overlaps app web"),
        "{}",
        stalled.message
    );
    assert!(!data.join("cloud/secrets/ccd-clash-cache").exists());
    assert_eq!(status(&data, "web").unwrap().phase, Phase::Ready);

    // Deleting an app: its keys outlive it (onDelete's default, retain),
    // its files do not (delete), its database is backed up, then dropped
    // (snapshot).
    let passwords: Vec<(&str, String, String)> = ["web", "api"]
        .into_iter()
        .map(|app| {
            (
                app,
                password_of(&url_of(&data, app)),
                password_of(&database_url_of(&data, app)),
            )
        })
        .collect();
    // api's data, which its deletion snapshots (onDelete: snapshot).
    assert_eq!(
        sql_as(
            "api",
            "api",
            "CREATE TABLE n (x int); INSERT INTO n VALUES (7), (8)"
        ),
        (true, String::new())
    );
    std::fs::remove_file(data.join("specs/api.yaml")).unwrap();
    eventually("api removed", Duration::from_secs(60), || async {
        status(&data, "api").is_none().then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        sql_as("web", "web", "SELECT n FROM t"),
        (true, "3".to_owned()),
        "the others' data is untouched"
    );
    let api_database = "SELECT count(*) FROM pg_database WHERE datname = 'api'";
    assert_eq!(
        sql_as("web", "web", api_database),
        (true, "0".to_owned()),
        "api's database went, after its snapshot (onDelete: snapshot)"
    );
    let snapshot: Vec<_> = std::fs::read_dir(data.join("services/backups/api"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dump"))
        .collect();
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    let listed = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&snapshot[0])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("TABLE DATA public n"),
        "the snapshot holds api's table"
    );
    let mut admin = redis_admin(&data, &address).await;
    assert_eq!(
        admin.call(&["GET", "api-v2:k"]).await.unwrap(),
        Reply::Bulk(Some(b"2".to_vec())),
        "api's keys are kept"
    );
    let storage = secret(&data, "web", "storage", "STORAGE_EMULATOR_HOST");
    let listed = |prefix: &'static str| {
        let http = http.clone();
        let storage = storage.clone();
        async move {
            http.get(format!("{storage}/storage/v1/b/ccd-apps/o?prefix={prefix}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(
        !listed("api/").await.contains("hello.txt"),
        "api's files went with it (onDelete: delete)"
    );
    assert!(listed("web/").await.contains("web/hello.txt"));
    // What was kept is listed, and pruned on asking.
    let kept = ccd(&["services", "prune"]);
    let api_kept: Vec<&str> = kept
        .lines()
        .find_map(|l| l.strip_prefix("api"))
        .unwrap_or_else(|| panic!("{kept}"))
        .split(", ")
        .filter_map(|entry| entry.split_whitespace().next())
        .collect();
    assert_eq!(
        api_kept,
        ["nosql", "cache", "logs"],
        "kept by default; storage deleted, sql snapshotted: {kept}"
    );
    ccd(&["services", "prune", "api", "--yes"]);
    assert_eq!(
        admin.call(&["GET", "api-v2:k"]).await.unwrap(),
        Reply::Bulk(None),
        "pruned: api's keys are gone"
    );
    assert_eq!(
        sql_as("web", "web", "SELECT n FROM t"),
        (true, "3".to_owned()),
        "web's data is untouched"
    );
    assert!(ccd(&["services", "prune"]).contains("nothing is kept"));

    // No password anywhere a person or a log collector looks.
    up.stop();
    let _ = up.child.wait().await;
    let log = std::fs::read_to_string(data.join("ccd.log")).unwrap();
    assert!(log.contains("controller running"), "the full log is there");
    for (app, password, sql_password) in passwords {
        let events = ccd_e2e::agents::events(&ccd_e2e::binary("ccd"), &data, app).await;
        assert!(
            events.contains("Ready"),
            "{app}'s events are read: {events}"
        );
        for (what, text) in [
            (
                "status",
                // api's went with it.
                std::fs::read_to_string(data.join(format!("status/{app}.yaml")))
                    .unwrap_or_default(),
            ),
            ("events", events.clone()),
            ("log", log.clone()),
        ] {
            assert!(!text.contains(&password), "{app}'s password in the {what}");
            assert!(
                !text.contains(&sql_password),
                "{app}'s SQL password in the {what}"
            );
        }
    }
}

/// The app's `PG*` variables of its latest secrets.
fn pg_login(data: &Path, app: &str) -> Vec<(&'static str, String)> {
    ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"]
        .into_iter()
        .map(|var| (var, secret(data, app, "sql", var)))
        .collect()
}

fn psql_as(login: &[(&str, String)], sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-qAt", "-c", sql])
        .envs(login.iter().map(|(k, v)| (*k, v.trim())))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn ccd_services(data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(ccd_e2e::binary("ccd"))
        .arg("services")
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_passwords_under_load_fails_no_request() {
    servers_installed();
    let data = temp_dir("services-rotate");
    std::fs::create_dir_all(data.join("specs")).unwrap();
    let spec = "apiVersion: ccd/v1
kind: App
metadata: {name: pay}
spec:
  image: example/pay:1
  version: \"1\"
  run: {command: [ccd-sample-app], args: [--port, \"$(PORT)\"]}
  port: 8080
  replicas: {min: 2, max: 2}
  rollout: {maxSurge: 1, maxUnavailable: 0, drainTime: 2s}
  health: {http: {path: /healthz}, interval: 1s, timeout: 1s, unhealthyThreshold: 2}
  expose: {internal: {port: 8125, allowFrom: [10.0.0.0/8]}}
  services: {cache: {}, sql: {engine: postgres}}
";
    std::fs::write(data.join("specs/pay.yaml"), spec).unwrap();
    let mut up = Up::start(&data, &[]).await.unwrap();
    let url = up.ready("pay").await.unwrap();
    let first = status(&data, "pay").unwrap().revision.unwrap().template;
    let old_redis = url_of(&data, "pay");
    let old_pg = pg_login(&data, "pay");
    let answer: serde_json::Value = reqwest::get(format!("{url}/services"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["sql"], "ccd-pay", "{answer}");
    assert!(answer["cache"].as_i64().is_some(), "{answer}");

    let load = ccd_e2e::load::Load::start(&format!("{url}/services"), 4, Duration::from_millis(20));
    tokio::time::sleep(Duration::from_secs(2)).await;
    for service in ["sql", "cache"] {
        let out = ccd_services(&data, &["rotate", "pay", service]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("password 1 rolls out"), "{said}");
    }
    let again = ccd_services(&data, &["rotate", "pay", "sql"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("under way"));

    // Rolled out, and only then retired: both services say so no more.
    let done = eventually("the rotation to end", Duration::from_secs(180), || async {
        let s = status(&data, "pay")?;
        let rotated = s.revision.as_ref()?.template != first;
        let quiet = s.services.iter().all(|s| s.message.is_empty());
        (s.phase == Phase::Ready && rotated && quiet).then_some(s)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = load.stop().await;
    assert_eq!(stats.failed, 0, "failed requests: {:?}", stats.failures);
    assert!(stats.sent > 100, "{stats:?}");

    let sql = done.services.iter().find(|s| s.kind == "sql").unwrap();
    assert_eq!(sql.user.as_deref(), Some("ccd-pay_alt"));
    let events = ccd_e2e::agents::events(&ccd_e2e::binary("ccd"), &data, "pay").await;
    assert_eq!(events.matches("CredentialRetired").count(), 2, "{events}");
    // The old passwords log in no more; the new ones do, as the app's owner.
    let refused = psql_as(&old_pg, "SELECT 1").unwrap_err();
    assert!(refused.contains("pay"), "{refused}");
    assert_eq!(
        psql_as(&pg_login(&data, "pay"), "SELECT current_user"),
        Ok("ccd-pay".to_owned())
    );
    let address = old_redis
        .rsplit_once('@')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut c = Connection::connect(&address).await.unwrap();
    assert!(c.auth("ccd-pay", &password_of(&old_redis)).await.is_err());
    let new_redis = url_of(&data, "pay");
    assert_ne!(new_redis, old_redis);
    c.auth("ccd-pay", &password_of(&new_redis)).await.unwrap();
    up.stop();
    let _ = std::fs::remove_dir_all(&data);
}
