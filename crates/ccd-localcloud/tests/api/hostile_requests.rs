//! Hundreds of malformed requests, sent with the valid token over one
//! kept-alive connection: paths that name no method, methods no path takes,
//! query values of the wrong kind, bodies that are not JSON or not the
//! resource, many of them trying to insert an instance whose `ccd-local-run`
//! command would leave a marker file. Every answer is a 4xx (never a 5xx),
//! the connection is never dropped, and nothing runs. The inputs come from a
//! table and a generator with a fixed seed: the same requests every run.

use crate::common;

use std::path::Path;

use ccd_localcloud::{Config, LocalCloud};
use common::raw::{Conn, request};
use common::{PROJECT, ZONE};
use serde_json::{Value, json};

/// One request to send.
struct Case {
    method: String,
    target: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cut = |text: &str| text.chars().take(300).collect::<String>();
        write!(
            f,
            "{} {} ({:?}) {}",
            self.method,
            cut(&self.target),
            self.content_type,
            cut(&String::from_utf8_lossy(&self.body))
        )
    }
}

fn case(method: &str, target: &str, content_type: Option<&str>, body: &[u8]) -> Case {
    Case {
        method: method.to_owned(),
        target: target.to_owned(),
        content_type: content_type.map(str::to_owned),
        body: body.to_vec(),
    }
}

/// xorshift64*: deterministic, so a failure names a case that comes back.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const JSON: Option<&str> = Some("application/json");

fn compute(path: &str) -> String {
    format!("/compute/v1/projects/{PROJECT}/{path}")
}

/// An instance insert that, sent properly, runs `touch MARKER`.
fn evil_instance(marker: &Path) -> Value {
    let run = json!({"command": ["/bin/sh", "-c", format!("touch '{}'; exec sleep 600", marker.display())]});
    json!({
        "name": "evil",
        "machineType": "e2-small",
        "metadata": {"items": [{"key": "ccd-local-run", "value": run.to_string()}]},
    })
}

/// Paths that name no method, each under every kind of route.
fn bad_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        "/",
        "/compute",
        "/compute/v1",
        "/compute/v1/",
        "/compute/v1/projects",
        "/compute/v2/projects/p/global/firewalls",
        "/compute/v1/projects/p/global/noSuchThings",
        "/compute/v1/projects/p/global/firewalls/fw/extra",
        "/compute/v1/projects/p/zones/z/instances/i/j/k",
        "/compute/v1/projects/p/global/firewalls/..%2f..%2fadmin%2fv1%2fstatus",
        "/compute/v1/projects/p/global/firewalls/%00",
        "/compute/v1/projects/p/global/firewalls/%E2%98%83",
        "/compute/v1/projects/p/global/firewalls/%zz",
        "/compute/v1/projects/p/global/../../../admin/v1/status",
        "/compute/v1/projects/p/global/firewalls:frobnicate",
        "/admin",
        "/admin/v1/",
        "/admin/v2/status",
        "/admin/v1/status/more",
        "/v1/",
        "/v1/projects/p/nothingHere",
        "/v1/projects/p/secrets/s:frobnicate",
        "/v1/projects/p/serviceAccounts/nobody@p.iam.gserviceaccount.com",
        "/v3/projects/p",
        "/v3/projects/p:frobnicate",
        "/v3/projects/p/timeSeries",
        "/v3/projects/p/timeSeries/x",
        "/computeMetadata/v1/instance/id",
        "/computeMetadata/v2/",
        "/instances/z/nobody/computeMetadata/v1/instance/name",
    ]
    .map(str::to_owned)
    .to_vec();
    paths.push(format!(
        "/compute/v1/projects/p/global/{}",
        "x".repeat(4000)
    ));
    paths
}

/// Valid paths with one fixed segment corrupted: they name no method.
fn corrupted_paths(rng: &mut Rng, n: usize) -> Vec<String> {
    let templates = [
        "global/firewalls",
        "global/instanceTemplates",
        "global/healthChecks",
        "global/backendServices",
        "global/urlMaps",
        "zones/europe-west1-b/instances",
        "zones/europe-west1-b/instanceGroupManagers",
        "regions/europe-west1/instanceGroupManagers",
        "regions/europe-west1/forwardingRules",
        "global/operations",
    ];
    let garbage = [
        "~", "%00", "%2F", ".", "..", "%25", "!", "$", "'", "*", ";x", "=", "@",
    ];
    (0..n)
        .map(|_| {
            let mut segments: Vec<String> =
                rng.pick(&templates).split('/').map(str::to_owned).collect();
            // Fixed segments are the even ones (scope word, collection).
            let at = 2 * (rng.next() % (segments.len() as u64 / 2)) as usize;
            match rng.next() % 4 {
                0 => segments[at].push_str(rng.pick(&garbage)),
                1 => segments[at] = segments[at].to_uppercase(),
                2 => segments[at].insert_str(0, rng.pick(&garbage)),
                _ => segments.extend(["name".to_owned(), rng.pick(&garbage).to_owned()]),
            }
            compute(&segments.join("/"))
        })
        .collect()
}

/// Targets whose query values are of the wrong kind for their method.
fn bad_queries() -> Vec<(&'static str, String)> {
    let list = compute("global/firewalls");
    let resize = compute(&format!("zones/{ZONE}/instanceGroupManagers/g/resize"));
    let mut targets = Vec::new();
    let numbers = [
        "abc",
        "-1",
        "1e3",
        "0x10",
        "",
        "%20",
        "99999999999999999999",
        "5%00",
    ];
    for v in numbers {
        targets.push(("GET", format!("{list}?maxResults={v}")));
        targets.push(("POST", format!("{resize}?size={v}")));
    }
    targets.push(("POST", resize.clone()));
    targets.push(("POST", format!("{resize}?siz=3")));
    for v in [
        "nonsense",
        "a%20b",
        "(status)",
        "name%20~%20web",
        "%3D%20x",
        "a%20b%20%3D%20c",
    ] {
        targets.push(("GET", format!("{list}?filter={v}")));
    }
    for v in ["!!!", "a+b", "%2F%2F", "*"] {
        targets.push(("GET", format!("{list}?pageToken={v}")));
    }
    targets
}

/// Bodies that are not an instance, built from one that is.
fn bad_bodies(rng: &mut Rng, good: &Value) -> Vec<Vec<u8>> {
    let text = good.to_string();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    // Every strict prefix of a JSON object is malformed.
    for cut in (1..text.len()).step_by(7) {
        bodies.push(text.as_bytes()[..cut].to_vec());
    }
    let wrong: [(&str, Value); 14] = [
        ("/name", json!(5)),
        ("/name", json!(["evil"])),
        ("/name", json!("EVIL")),
        ("/name", json!("-evil")),
        ("/name", json!("a/b")),
        ("/name", json!("x".repeat(64))),
        ("/machineType", json!({"a": 1})),
        ("/metadata", json!("items")),
        ("/metadata/items", json!({"key": "ccd-local-run"})),
        ("/metadata/items/0/value", json!({"command": ["touch"]})),
        ("/metadata/items/0/key", json!(7)),
        ("/networkInterfaces", json!("nic0")),
        ("/scheduling", json!({"onHostMaintenance": "EXPLODE"})),
        ("/labels", json!(["a"])),
    ];
    for (pointer, value) in wrong {
        let mut body = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(parent).unwrap()
        };
        match parent {
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            other => other[key] = value,
        }
        bodies.push(body.to_string().into_bytes());
    }
    for unknown in ["/evil", "/metadata/evil", "/metadata/items/0/evil"] {
        let mut body = good.clone();
        let (parent, key) = unknown.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut body
        } else {
            body.pointer_mut(parent).unwrap()
        };
        target[key] = json!(true);
        bodies.push(body.to_string().into_bytes());
    }
    // Bad members go last: with a key given twice, the last one counts.
    let open = &text[..text.len() - 1];
    for raw in [
        format!("[{text}]"),
        format!("{text}{text}"),
        format!("{text}}}"),
        format!("\u{feff}{text}"),
        format!("{open}, \"name\": 5}}"),
        format!("{open}, \"name\": \"evil\\u0000\"}}"),
        format!("{open}, \"name\": \"evil\u{0}\"}}"),
        format!(
            "{open}, \"deep\": {}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
        format!("{open}, \"machineType\": 1e999999}}"),
        "null".to_owned(),
        "\"evil\"".to_owned(),
        "17".to_owned(),
        "{}".to_owned(),
    ] {
        bodies.push(raw.into_bytes());
    }
    bodies.push([open.as_bytes(), b", \"name\": \"ev\xffil\"}"].concat());
    // Generated: the good body with one byte deleted where a structural
    // character was, which leaves it unbalanced or mis-punctuated.
    let structural = structure_at(&text);
    for _ in 0..40 {
        let at = rng.pick(&structural);
        let mut bytes = text.as_bytes().to_vec();
        bytes.remove(at);
        bodies.push(bytes);
    }
    bodies
}

/// Where `text` has JSON punctuation outside strings (inside them, the
/// `ccd-local-run` value has its own, which are only characters).
fn structure_at(text: &str) -> Vec<usize> {
    let (mut in_string, mut escaped) = (false, false);
    let mut at = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' | '}' | '[' | ']' | ':' | ',' if !in_string => at.push(i),
            _ => {}
        }
    }
    at
}

fn cases(marker: &Path) -> Vec<Case> {
    let mut rng = Rng(0x00cc_d5ee_d5ee_d5ee);
    let mut cases = Vec::new();
    for path in bad_paths() {
        for method in ["GET", "POST", "DELETE", "HEAD"] {
            let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
            cases.push(case(method, &path, JSON, body));
        }
    }
    for path in corrupted_paths(&mut rng, 120) {
        let method = rng.pick(&["GET", "POST", "PUT", "PATCH", "DELETE"]);
        cases.push(case(method, &path, JSON, b"{}"));
    }
    let collections = [
        compute("global/firewalls"),
        compute(&format!("zones/{ZONE}/instances")),
        "/admin/v1/status".to_owned(),
        "/admin/v1/faults".to_owned(),
        format!("/v3/projects/{PROJECT}/timeSeries"),
        "/computeMetadata/v1/instance/id".to_owned(),
    ];
    for path in &collections {
        for method in ["FOO", "PROPFIND", "get", "TRACE", "OPTIONS", "PATCH"] {
            cases.push(case(method, path, None, b""));
        }
    }
    for (method, target) in bad_queries() {
        cases.push(case(method, &target, None, b""));
    }
    let evil = evil_instance(marker);
    let inserts = compute(&format!("zones/{ZONE}/instances"));
    for body in bad_bodies(&mut rng, &evil) {
        cases.push(case("POST", &inserts, JSON, &body));
    }
    // The real thing, in every body type a web page can send unasked, to
    // every endpoint that takes a body.
    let evil = evil.to_string();
    let with_body = [
        inserts.clone(),
        compute("global/instanceTemplates"),
        "/admin/v1/faults".to_owned(),
        format!("/v1/projects/{PROJECT}/serviceAccounts"),
        format!("/v3/projects/{PROJECT}:setIamPolicy"),
        format!("/admin/v1/projects/{PROJECT}/zones/{ZONE}/instances/evil/crash"),
    ];
    for path in &with_body {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=----x"),
            Some("text/json"),
            Some("application/json-patch+json"),
            Some("application/json, text/plain"),
        ] {
            cases.push(case("POST", path, content_type, evil.as_bytes()));
        }
    }
    cases
}

#[tokio::test]
async fn hostile_requests_get_4xx_on_one_connection_and_run_nothing() {
    // A data folder: an instance that got in would really run its command.
    let data = std::env::temp_dir().join(format!("ccd-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let cloud = LocalCloud::start(Config {
        data_dir: Some(data.clone()),
        ..Config::default()
    })
    .await
    .unwrap();
    let marker = data.join("ran");
    let auth = format!("Bearer {}", cloud.token());
    let host = cloud.addr().to_string();

    let cases = cases(&marker);
    assert!(cases.len() > 400, "{} cases", cases.len());
    let mut conn = Conn::open(cloud.addr()).await.unwrap();
    let mut server_errors = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut headers = vec![
            ("Host", host.as_str()),
            ("Authorization", auth.as_str()),
            ("Metadata-Flavor", "Google"),
        ];
        headers.extend(c.content_type.as_deref().map(|t| ("Content-Type", t)));
        let bytes = request(&c.method, &c.target, &headers, &c.body);
        let answer = conn
            .send(&bytes, c.method == "HEAD")
            .await
            .unwrap_or_else(|e| panic!("case {i} {c:?}: the connection failed: {e}"));
        assert!(
            !answer.closes(),
            "case {i} {c:?}: the server closes the connection"
        );
        if answer.status >= 500 {
            server_errors.push(format!("case {i} {c:?}: {}", answer.status));
        }
        assert!(
            (400..500).contains(&answer.status) || answer.status >= 500,
            "case {i} {c:?}: answered {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    assert!(server_errors.is_empty(), "{}", server_errors.join("\n"));

    // Nothing ran and nothing was made: no instance, no template, no file.
    let status = conn
        .send(
            &request(
                "GET",
                "/admin/v1/status",
                &[("Host", &host), ("Authorization", &auth)],
                b"",
            ),
            false,
        )
        .await
        .unwrap();
    assert_eq!(status.json()["instances"], 0, "{}", status.json());
    for collection in [
        format!("zones/{ZONE}/instances"),
        "global/instanceTemplates".to_owned(),
    ] {
        let list = conn
            .send(
                &request(
                    "GET",
                    &compute(&collection),
                    &[("Host", &host), ("Authorization", &auth)],
                    b"",
                ),
                false,
            )
            .await
            .unwrap();
        assert!(list.json().get("items").is_none(), "{}", list.json());
    }
    assert!(!marker.exists(), "a hostile request ran a command");

    // The same instance, asked for properly, does run: the marker test can fail.
    let evil = evil_instance(&marker).to_string();
    let answer = conn
        .send(
            &request(
                "POST",
                &compute(&format!("zones/{ZONE}/instances")),
                &[
                    ("Host", &host),
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                evil.as_bytes(),
            ),
            false,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.json());
    common::eventually("the properly inserted instance runs its command", || {
        let marker = marker.clone();
        async move { marker.exists().then_some(()) }
    })
    .await;
    cloud.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
}
