//! The front door: the API runs commands as its user, so only callers with
//! the data folder's token, on this server's own name, with JSON bodies get
//! through; a web page (cross-site form or text/plain POST, DNS rebinding)
//! never does. The metadata server keeps Google's rules instead of a token.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ccd_localcloud::{Config, LocalCloud};
use common::raw::{Answer, Conn, request};
use common::{PROJECT, ZONE};
use serde_json::json;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccd-guard-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start_in(data: &Path) -> LocalCloud {
    LocalCloud::start(Config {
        data_dir: Some(data.to_owned()),
        ..Config::default()
    })
    .await
    .unwrap()
}

/// One request on a fresh connection, with `Host` set to the server's address
/// unless `headers` names one.
async fn call(
    cloud: &LocalCloud,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let host = cloud.addr().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        all.push(("Host", &host));
    }
    let mut conn = Conn::open(cloud.addr()).await.unwrap();
    conn.send(&request(method, path, &all, body), method == "HEAD")
        .await
        .unwrap()
}

fn bearer(cloud: &LocalCloud) -> String {
    format!("Bearer {}", cloud.token())
}

fn instances() -> String {
    format!("/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances")
}

fn assert_refused(answer: &Answer, code: u16, status: &str) -> String {
    let body = answer.json();
    assert_eq!(answer.status, code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["status"], status, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn calls_without_the_token_are_refused_naming_the_token_file() {
    let data = temp_dir("token");
    let cloud = start_in(&data).await;
    let file = data.join("token").display().to_string();
    for path in [
        instances(),
        "/admin/v1/status".to_owned(),
        format!("/v1/projects/{PROJECT}/serviceAccounts"),
        format!("/v3/projects/{PROJECT}/timeSeries"),
        "/no/such/path".to_owned(),
    ] {
        let missing = call(&cloud, "GET", &path, &[], b"").await;
        let message = assert_refused(&missing, 401, "UNAUTHENTICATED");
        assert!(message.contains(&file), "{path}: {message}");
        assert!(missing.header("www-authenticate").is_some(), "{path}");

        let wrong = format!("Bearer {}", "0".repeat(64));
        let answer = call(&cloud, "GET", &path, &[("Authorization", &wrong)], b"").await;
        assert_refused(&answer, 401, "UNAUTHENTICATED");
        // A Basic or bare token is not a bearer token either.
        let bare = cloud.token().to_owned();
        let answer = call(&cloud, "GET", &path, &[("Authorization", &bare)], b"").await;
        assert_refused(&answer, 401, "UNAUTHENTICATED");
    }
    let ok = call(
        &cloud,
        "GET",
        &instances(),
        &[("Authorization", &bearer(&cloud))],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.json());
    let ok = call(
        &cloud,
        "GET",
        "/admin/v1/status",
        &[("authorization", &bearer(&cloud).replace("Bearer", "bearer"))],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200, "the scheme is case-insensitive");
    cloud.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_and_nothing_is_stored() {
    // With a data folder, so an instance that got in would run its command.
    let data = temp_dir("body");
    let cloud = start_in(&data).await;
    let auth = bearer(&cloud);
    let marker = data.join("ran");
    let body = json!({"name": "evil", "machineType": "e2-small",
        "metadata": {"items": [{"key": "ccd-local-run",
            "value": json!({"command": ["touch", marker]}).to_string()}]}})
    .to_string();
    // What a web page can send without asking first (a "simple" request).
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
    ] {
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(content_type.map(|c| ("Content-Type", c)));
        let answer = call(&cloud, "POST", &instances(), &headers, body.as_bytes()).await;
        let message = assert_refused(&answer, 415, "INVALID_ARGUMENT");
        assert!(message.contains("application/json"), "{message}");
    }
    let admin = call(
        &cloud,
        "PUT",
        "/admin/v1/faults",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        br#"{"errorRate": 1.0}"#,
    )
    .await;
    assert_refused(&admin, 415, "INVALID_ARGUMENT");

    let list = call(
        &cloud,
        "GET",
        &instances(),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(list.status, 200);
    assert!(list.json().get("items").is_none(), "{}", list.json());
    let faults = call(
        &cloud,
        "GET",
        "/admin/v1/faults",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(faults.json()["errorRate"], 0.0, "{}", faults.json());

    // JSON, with parameters, goes through.
    let firewall = json!({"name": "fw", "sourceRanges": ["10.0.0.0/8"],
        "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}]})
    .to_string();
    let answer = call(
        &cloud,
        "POST",
        &format!("/compute/v1/projects/{PROJECT}/global/firewalls"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        firewall.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    assert!(!marker.exists());
    cloud.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn another_host_or_origin_is_refused() {
    let cloud = common::start().await;
    let auth = bearer(&cloud);
    let port = cloud.addr().port();
    let rebound = format!("attacker.example:{port}");
    let other_port = format!("127.0.0.1:{}", port.wrapping_add(1));
    let metadata_name = format!("metadata.google.internal:{port}");
    // A page whose name was rebound to 127.0.0.1 sends its own name.
    for host in [
        rebound.as_str(),
        &other_port,
        "attacker.example",
        &metadata_name,
    ] {
        let answer = call(
            &cloud,
            "GET",
            &instances(),
            &[("Host", host), ("Authorization", &auth)],
            b"",
        )
        .await;
        assert_refused(&answer, 403, "PERMISSION_DENIED");
    }
    let own = format!("http://{}", cloud.addr());
    let evil = format!("http://attacker.example:{port}");
    let portless = "http://127.0.0.1";
    for origin in [
        evil.as_str(),
        "null",
        &own.replace("http:", "https:"),
        portless,
    ] {
        let answer = call(
            &cloud,
            "GET",
            &instances(),
            &[("Origin", origin), ("Authorization", &auth)],
            b"",
        )
        .await;
        let message = assert_refused(&answer, 403, "PERMISSION_DENIED");
        assert!(message.contains("cross-origin"), "{message}");
    }
    // Google's SDK names the host without its port.
    for host in [
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        "127.0.0.1".to_owned(),
    ] {
        let answer = call(
            &cloud,
            "GET",
            &instances(),
            &[("Host", &host), ("Origin", &own), ("Authorization", &auth)],
            b"",
        )
        .await;
        assert_eq!(answer.status, 200, "{host}: {}", answer.json());
    }
    common::finish(cloud).await;
}

#[tokio::test]
async fn the_metadata_server_takes_no_token_and_keeps_googles_rules() {
    let cloud = common::start().await;
    let auth = bearer(&cloud);
    let insert = json!({"name": "vm-1", "machineType": "e2-small"}).to_string();
    let answer = call(
        &cloud,
        "POST",
        &instances(),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        insert.as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json());
    let name = format!("/instances/{ZONE}/vm-1/computeMetadata/v1/instance/name");
    let flavor = ("Metadata-Flavor", "Google");
    let answer = common::eventually("the instance's metadata answers", || {
        let cloud = &cloud;
        let name = &name;
        async move {
            let a = call(cloud, "GET", name, &[flavor], b"").await;
            (a.status == 200).then_some(a)
        }
    })
    .await;
    assert_eq!(answer.body, b"vm-1");
    assert_eq!(answer.header("metadata-flavor"), Some("Google"));
    let answer = call(
        &cloud,
        "GET",
        &name,
        &[("Host", "metadata.google.internal"), flavor],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "the metadata server's own name");

    let refused = [
        vec![],
        vec![("Metadata-Flavor", "google")],
        vec![flavor, ("X-Forwarded-For", "203.0.113.9")],
        vec![flavor, ("Host", "attacker.example")],
        vec![flavor, ("Origin", "http://attacker.example")],
    ];
    for headers in refused {
        let answer = call(&cloud, "GET", &name, &headers, b"").await;
        assert_eq!(answer.status, 403, "{headers:?}");
    }
    // The same rules on a path no instance answers.
    let answer = call(&cloud, "GET", "/computeMetadata/v1/", &[], b"").await;
    assert_eq!(answer.status, 403);
    common::finish(cloud).await;
}

#[tokio::test]
async fn the_token_file_is_private_and_kept_across_restarts() {
    let data = temp_dir("restart");
    let cloud = start_in(&data).await;
    let file = data.join("token");
    assert_eq!(cloud.token_file(), Some(file.as_path()));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let token = cloud.token().to_owned();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    assert_eq!(token.len(), 64);
    cloud.shutdown().await;

    let again = start_in(&data).await;
    assert_eq!(again.token(), token);
    let answer = call(
        &again,
        "GET",
        "/admin/v1/status",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200);
    again.shutdown().await;

    // Without a data folder, each start has a token of its own.
    let (a, b) = (common::start().await, common::start().await);
    assert_ne!(a.token(), b.token());
    assert_eq!(a.token_file(), None);
    a.shutdown().await;
    b.shutdown().await;

    // A token others can read is refused, naming the file and the fix.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = LocalCloud::start(Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(&file.display().to_string()) && e.contains("chmod 600"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&data);
}
