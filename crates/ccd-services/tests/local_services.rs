//! `ccd up`'s services adapter with a real redis-server: a cache made for an
//! app, made again when the server stops (the same password, so the app's
//! URL stays right), and a server an earlier ccd up left running (killed with
//! SIGKILL) adopted rather than replaced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ccd_services::resp::Connection;
use ccd_services::{LocalServices, ServiceState, Services};

fn redis_installed() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scripts/redis.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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

async fn shutdown(data: &Path, address: &str) {
    let password = std::fs::read_to_string(data.join("services/redis/admin-password")).unwrap();
    let mut admin = Connection::connect(address).await.unwrap();
    admin.auth("default", password.trim()).await.unwrap();
    // The connection ends with the server: no reply to read.
    let _ = admin.call(&["SHUTDOWN", "NOSAVE"]).await;
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
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);

    // The server stops: the next pass starts it again, with the app's user.
    shutdown(&dir, &address).await;
    let again = services.ensure(&app).await;
    assert_eq!(again.problem, None, "{again:?}");
    let (url_again, _) = as_the_app(&dir).await;
    assert_eq!(url_again, url, "the app's URL (and password) stay");

    // ccd up killed with SIGKILL leaves its server: the next one adopts it.
    std::mem::forget(services);
    let next = LocalServices::new(&dir, &dir.join("secrets"));
    let adopted = next.ensure(&app).await;
    assert_eq!(adopted.problem, None, "{adopted:?}");
    assert_eq!(adopted.services[0].endpoint.as_deref(), Some(address.as_str()));
    let (url_next, _) = as_the_app(&dir).await;
    assert_eq!(url_next, url);
    shutdown(&dir, &address).await;
    let _ = std::fs::remove_dir_all(&dir);
}
