//! `ccd up`'s services adapter with a real redis-server: a cache made for an
//! app, made again when the server stops (the same password, so the app's
//! URL stays right), and a server an earlier ccd up left running (killed with
//! SIGKILL) adopted rather than replaced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ccd_services::resp::Connection;
use ccd_services::{LocalServices, ServiceState, Services};

fn redis_installed() {
    ccd_services::testing::redis_server();
}

fn app() -> ccd_spec::App {
    ccd_spec::parse_bytes(
        b"apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: example/web:1\n  version: \"1\"\n  port: 8080\n  services: {cache: {}}\n",
    )
    .unwrap()
}

/// The URL the app receives, and a connection as its user.
async fn as_the_app(data: &Path) -> (String, Connection) {
    let url = std::fs::read_to_string(data.join("secrets/ccd-web-cache")).unwrap();
    let rest = url.strip_prefix("redis://ccd-web:").unwrap();
    let (password, address) = rest.split_once('@').unwrap();
    let address = address.trim_end_matches("/0");
    let mut c = Connection::connect(address).await.unwrap();
    c.auth("ccd-web", password).await.unwrap();
    (url.clone(), c)
}

/// Whether the app's credentials open a connection now.
async fn reachable(data: &Path) -> bool {
    let url = std::fs::read_to_string(data.join("secrets/ccd-web-cache")).unwrap();
    let rest = url.strip_prefix("redis://ccd-web:").unwrap();
    let (password, address) = rest.split_once('@').unwrap();
    match Connection::connect(address.trim_end_matches("/0")).await {
        Ok(mut c) => c.auth("ccd-web", password).await.is_ok(),
        Err(_) => false,
    }
}

async fn shutdown(data: &Path, address: &str) {
    let password = std::fs::read_to_string(data.join("services/redis/admin-password")).unwrap();
    let mut admin = Connection::connect(address).await.unwrap();
    admin.auth("default", password.trim()).await.unwrap();
    // The connection ends with the server: no reply to read.
    let _ = admin.call(&["SHUTDOWN", "NOSAVE"]).await;
    // Gone, as a crash would leave it.
    for _ in 0..100 {
        if Connection::connect(address).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("redis-server at {address} did not stop");
}

#[tokio::test]
async fn a_stopped_server_is_started_again_and_a_left_one_adopted() {
    redis_installed();
    let dir = std::env::temp_dir().join(format!("ccd-local-services-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let app = app();
    let services = LocalServices::new(&dir, &dir.join("secrets"));
    let first = services.ensure(&app).await;
    assert_eq!(first.problem, None);
    assert_eq!(first.services[0].state, ServiceState::Ready);
    let address = first.services[0].endpoint.clone().unwrap();
    let (url, mut c) = as_the_app(&dir).await;
    assert!(c.call(&["SET", "web:k", "1"]).await.unwrap().is_ok());
    let mode = std::fs::metadata(dir.join("secrets/ccd-web-cache")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // The server stops: a pass after it has gone starts it again, with the
    // app's user (passes repeat, as the reconciler's do).
    shutdown(&dir, &address).await;
    let mut passes = 0;
    loop {
        let again = services.ensure(&app).await;
        assert_eq!(again.problem, None, "{again:?}");
        if reachable(&dir).await {
            break;
        }
        passes += 1;
        assert!(passes < 50, "the cache did not come back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (url_again, _) = as_the_app(&dir).await;
    assert_eq!(url_again, url, "the app's URL (and password) stay");

    // ccd up killed with SIGKILL leaves its server: the next one adopts it.
    std::mem::forget(services);
    let next = LocalServices::new(&dir, &dir.join("secrets"));
    let adopted = next.ensure(&app).await;
    assert_eq!(adopted.problem, None, "{adopted:?}");
    assert_eq!(
        adopted.services[0].endpoint.as_deref(),
        Some(address.as_str())
    );
    let (url_next, _) = as_the_app(&dir).await;
    assert_eq!(url_next, url);
    shutdown(&dir, &address).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn sql_app(name: &str) -> ccd_spec::App {
    ccd_spec::parse_bytes(
        format!(
            "apiVersion: ccd/v1\nkind: App\nmetadata: {{name: {name}}}\nspec:\n  image: example/{name}:1\n  version: \"1\"\n  port: 8080\n  services: {{sql: {{engine: postgres}}}}\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

/// The credentials `app` received, as libpq's variables, from its secrets'
/// `version` (`""` the latest, `"@1"` the first rotation's).
fn login(dir: &Path, app: &str, version: &str) -> Vec<(&'static str, String)> {
    ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD"]
        .into_iter()
        .map(|var| {
            let file = format!("secrets/ccd-{app}-sql-{}{version}", var.to_lowercase());
            (var, std::fs::read_to_string(dir.join(file)).unwrap())
        })
        .collect()
}

/// `psql` as `app`'s role, with the credentials it received, on `database`:
/// stdout, or stderr on failure.
fn psql(dir: &Path, app: &str, database: &str, sql: &str) -> Result<String, String> {
    psql_as(&login(dir, app, ""), database, sql)
}

fn psql_as(login: &[(&str, String)], database: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .envs(login.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PGDATABASE", database)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[tokio::test]
async fn a_rotated_password_logs_in_beside_the_old_until_every_instance_has_it() {
    let dir = std::env::temp_dir().join(format!("ccd-local-rotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let services = LocalServices::new(&dir, &dir.join("secrets"));
    let app = sql_app("web");
    let first = services.ensure(&app).await;
    assert_eq!(first.problem, None, "{first:?}");
    let old = login(&dir, "web", "");
    assert_eq!(
        psql_as(
            &old,
            "web",
            "CREATE TABLE notes (n int); INSERT INTO notes VALUES (1)"
        ),
        Ok(String::new())
    );

    let said = services.rotate(&app, "sql").await.unwrap();
    assert!(said.contains("password 1 rolls out"), "{said}");
    let again = services.rotate(&app, "sql").await.unwrap_err();
    assert!(
        again.contains("under way"),
        "one rotation at a time: {again}"
    );
    let rotating = services.ensure(&app).await;
    assert!(rotating.credentials.values().all(|c| c.version == "1"));
    let status = &rotating.services[0];
    assert_eq!(status.user.as_deref(), Some("ccd-web_alt"));
    assert!(status.message.contains("rotating"), "{status:?}");
    let new = login(&dir, "web", "@1");
    assert_ne!(new, old);
    // Both log in, as the same owner: what the new one makes is the app's.
    assert_eq!(
        psql_as(
            &old,
            "web",
            "INSERT INTO notes VALUES (2); SELECT count(*) FROM notes"
        ),
        Ok("2".to_owned())
    );
    assert_eq!(
        psql_as(
            &new,
            "web",
            "CREATE TABLE more (m int); INSERT INTO notes VALUES (3); \
             SELECT current_user || ' ' || tableowner FROM pg_tables WHERE tablename = 'more'"
        ),
        Ok("ccd-web ccd-web".to_owned())
    );
    assert_eq!(
        psql_as(
            &new,
            "web",
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = session_user"
        ),
        Ok("f|f|f".to_owned())
    );
    assert!(psql_as(&new, "postgres", "SELECT 1").is_err());

    // Instances still on the old template: nothing is retired.
    let mut on_old = rotating.credentials.clone();
    for c in on_old.values_mut() {
        c.version = "latest".to_owned();
    }
    assert!(services.settle("web", &on_old).await.is_empty());
    assert!(psql_as(&old, "web", "SELECT 1").is_ok());
    // Every instance on the new one: the old password logs in no more.
    let retired = services.settle("web", &rotating.credentials).await;
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert!(
        retired[0].contains("password 0 no longer logs in"),
        "{retired:?}"
    );
    let refused = psql_as(&old, "web", "SELECT 1").unwrap_err();
    assert!(
        refused.contains("authentication failed") || refused.contains("not permitted to log in"),
        "{refused}"
    );
    assert_eq!(
        psql_as(&new, "web", "SELECT count(*) FROM notes"),
        Ok("3".to_owned())
    );
    assert!(services.ensure(&app).await.services[0].message.is_empty());

    // And back to the owner's own login; the second role retires.
    services.rotate(&app, "sql").await.unwrap();
    let back = services.ensure(&app).await;
    assert!(back.credentials.values().all(|c| c.version == "2"));
    assert_eq!(back.services[0].user.as_deref(), Some("ccd-web"));
    let newer = login(&dir, "web", "@2");
    assert!(psql_as(&new, "web", "SELECT 1").is_ok());
    assert_eq!(services.settle("web", &back.credentials).await.len(), 1);
    assert!(psql_as(&new, "web", "SELECT 1").is_err());
    assert_eq!(
        psql_as(&newer, "web", "SELECT count(*) FROM notes"),
        Ok("3".to_owned())
    );
    assert!(
        !dir.join("secrets/ccd-web-sql-pgpassword@1").exists(),
        "a retired version's secrets go"
    );
    drop(services);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn each_app_owns_one_database_and_can_open_no_other() {
    let dir = std::env::temp_dir().join(format!("ccd-local-sql-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let services = LocalServices::new(&dir, &dir.join("secrets"));
    for app in ["web", "api"] {
        let done = services.ensure(&sql_app(app)).await;
        assert_eq!(done.problem, None, "{done:?}");
        assert_eq!(done.services[0].state, ServiceState::Ready);
        let url = &done.credentials["DATABASE_URL"];
        assert_eq!(url.secret, format!("ccd-{app}-sql-databaseurl"));
        assert_eq!(url.version, "latest");
    }
    let url = std::fs::read_to_string(dir.join("secrets/ccd-web-sql-databaseurl")).unwrap();
    assert!(
        url.starts_with("postgresql://ccd-web:") && url.ends_with("/web"),
        "{url}"
    );
    assert_eq!(
        psql(
            &dir,
            "web",
            "web",
            "CREATE TABLE notes (n int); INSERT INTO notes VALUES (7); SELECT n FROM notes"
        ),
        Ok("7".to_owned())
    );
    assert_eq!(
        psql(
            &dir,
            "web",
            "web",
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ),
        Ok("f|f|f".to_owned())
    );
    let denied = psql(&dir, "web", "web", "CREATE ROLE intruder").unwrap_err();
    assert!(denied.contains("permission denied"), "{denied}");
    for other in ["api", "postgres"] {
        let denied = psql(&dir, "web", other, "SELECT 1").unwrap_err();
        assert!(
            denied.contains("permission denied for database"),
            "{other}: {denied}"
        );
    }
    // Applied again (a restart of ccd up): the same password, the data kept.
    drop(services);
    let again = LocalServices::new(&dir, &dir.join("secrets"));
    assert_eq!(again.ensure(&sql_app("web")).await.problem, None);
    assert_eq!(
        psql(&dir, "web", "web", "SELECT n FROM notes"),
        Ok("7".to_owned())
    );
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}
