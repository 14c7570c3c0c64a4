//! The API over a folder store, request by request as a client sends them:
//! tokens and scopes, applying (and refusing) specs, lost updates, deleting,
//! hostile paths and queries, events listed and streamed, and the document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ccd_api::{ApiState, EventFeed, Scope, Tokens};
use serde_json::Value;
use tower::ServiceExt as _;

const SPEC: &str = "apiVersion: ccd/v1
kind: App
metadata: {name: web, labels: {team: shop}}
spec:
  image: example/web:1
  version: \"1\"
  port: 8080
";

struct Fixture {
    dir: PathBuf,
    api: Arc<ApiState>,
    feed: EventFeed,
    admin: String,
}

fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("ccd-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("specs")).unwrap();
    let store = ccd_store::AnyStore::Folder(ccd_store::FolderStore::new(&dir).unwrap());
    let tokens = Tokens::open(&dir.join("api/tokens.json")).unwrap();
    let admin = tokens.create(Scope::Admin, &[]).unwrap();
    let feed = EventFeed::new(ccd_events::EventLog::in_memory());
    let api = Arc::new(
        ApiState::new(store, tokens, feed.clone()).with_heartbeat(Duration::from_millis(200)),
    );
    Fixture {
        dir,
        api,
        feed,
        admin,
    }
}

impl Fixture {
    fn token(&self, scope: Scope, apps: &[&str]) -> String {
        let apps: Vec<String> = apps.iter().map(|a| (*a).to_owned()).collect();
        self.api.tokens().create(scope, &apps).unwrap()
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = ccd_api::router(self.api.clone())
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, headers)
    }

    fn stored(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("specs/web.yaml")).ok()
    }
}

#[tokio::test]
async fn no_token_is_401_and_a_token_without_the_scope_or_the_app_is_403() {
    let f = fixture("auth");
    let (code, body, _) = f.call("GET", "/v1/apps", None, "", &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    let (code, _, _) = f.call("GET", "/v1/apps", Some("ccd_guess"), "", &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    let reader = f.token(Scope::Read, &[]);
    let (code, _, _) = f.call("GET", "/v1/apps", Some(&reader), "", &[]).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body, _) = f
        .call("PUT", "/v1/apps/web", Some(&reader), SPEC, &[])
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("deploy"), "{body}");
    assert_eq!(f.stored(), None, "nothing written");

    let (code, _, _) = f
        .call("PUT", "/v1/apps/web", Some(&f.admin), SPEC, &[])
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let api_only = f.token(Scope::Deploy, &["api"]);
    let (code, _, _) = f
        .call("DELETE", "/v1/apps/web", Some(&api_only), "", &[])
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (_, page, _) = f.call("GET", "/v1/apps", Some(&api_only), "", &[]).await;
    assert_eq!(page["apps"], Value::Array(vec![]), "web is not the token's");
    assert!(f.stored().is_some());
}

#[tokio::test]
async fn a_spec_is_applied_as_a_file_and_a_broken_one_refused_with_every_problem() {
    let f = fixture("apply");
    let t = Some(f.admin.as_str());
    let (code, body, _) = f.call("PUT", "/v1/apps/web", t, SPEC, &[]).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(f.stored().as_deref(), Some(SPEC), "stored exactly as sent");
    let (code, body, headers) = f.call("GET", "/v1/apps/web", t, "", &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["spec"]["spec"]["image"], "example/web:1");
    let version = body["specVersion"].as_str().unwrap().to_owned();
    assert_eq!(headers[header::ETAG], format!("\"{version}\"").as_str());

    let broken = SPEC.replace("port: 8080", "port: 99999\n  replicas: {min: 3, max: 1}");
    let (code, body, _) = f.call("PUT", "/v1/apps/web", t, &broken, &[]).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let problems: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(problems.len() >= 2, "{problems:?}");
    assert!(
        problems.iter().all(|p| p.starts_with("specs/web.yaml:")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("spec.port")),
        "{problems:?}"
    );
    assert_eq!(
        f.stored().as_deref(),
        Some(SPEC),
        "the running spec is untouched"
    );

    // A lost update: applied over a version that is no longer there.
    let v2 = SPEC.replace("version: \"1\"", "version: \"2\"");
    let (code, _, _) = f
        .call(
            "PUT",
            "/v1/apps/web",
            t,
            &v2,
            &[("if-match", "\"sha256:old\"")],
        )
        .await;
    assert_eq!(code, StatusCode::PRECONDITION_FAILED);
    let quoted = format!("\"{version}\"");
    let (code, body, _) = f
        .call("PUT", "/v1/apps/web", t, &v2, &[("if-match", &quoted)])
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(f.stored().as_deref(), Some(v2.as_str()));

    // JSON is stored as the YAML it means.
    let json = serde_json::json!({"apiVersion": "ccd/v1", "kind": "App",
        "metadata": {"name": "web"},
        "spec": {"image": "example/web:3", "version": "3", "port": 8080}});
    let (code, _, _) = f
        .call(
            "PUT",
            "/v1/apps/web",
            t,
            &json.to_string(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let stored = ccd_spec::parse_bytes(f.stored().unwrap().as_bytes()).unwrap();
    assert_eq!(stored.spec.version, "3");

    let (code, _, _) = f.call("DELETE", "/v1/apps/web", t, "", &[]).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(f.stored(), None);
    let (code, _, _) = f.call("GET", "/v1/apps/web", t, "", &[]).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, _) = f.call("DELETE", "/v1/apps/web", t, "", &[]).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hostile_paths_queries_and_bodies_are_4xx_and_change_nothing() {
    let f = fixture("hostile");
    let t = Some(f.admin.as_str());
    let huge = "x".repeat(2 * 1024 * 1024);
    let long_name = format!("/v1/apps/{}", "a".repeat(5000));
    let cases: Vec<(&str, &str, &str)> = vec![
        ("GET", "/v1/apps/..%2F..%2Fetc", ""),
        ("GET", "/v1/apps/Web", ""),
        ("GET", &long_name, ""),
        ("GET", "/v1/apps?limit=abc", ""),
        ("GET", "/v1/apps?limit=100000", ""),
        ("GET", "/v1/apps?phase=Sleeping", ""),
        ("GET", "/v1/apps?label=nothing", ""),
        ("GET", "/v1/events?since=-1", ""),
        ("GET", "/v1/events?app=..", ""),
        ("PUT", "/v1/apps/web", "{not json"),
        ("PUT", "/v1/apps/web", "\u{0}\u{1}"),
        ("PUT", "/v1/apps/web", &huge),
        ("PUT", "/v1/apps/api", SPEC),
        ("POST", "/v1/apps/web/rollout/explode", ""),
        ("POST", "/v1/apps/web/rollout/pause", ""),
        ("GET", "/v1/nothing", ""),
        ("PATCH", "/v1/apps/web", ""),
    ];
    for (method, uri, body) in cases {
        let (code, json, _) = f.call(method, uri, t, body, &[]).await;
        assert!(code.is_client_error(), "{method} {uri}: {code} {json}");
        assert!(json["error"].is_string(), "{method} {uri}: {code} {json}");
    }
    assert_eq!(f.stored(), None);
    assert!(
        !f.dir.join("specs/api.yaml").exists(),
        "metadata.name must match"
    );
}

#[tokio::test]
async fn events_are_listed_after_a_seq_and_streamed_with_resume() {
    let f = fixture("events");
    let t = f.admin.clone();
    let record = |app: &str, reason: &str| {
        let e = f
            .feed
            .log()
            .record(
                app,
                ccd_events::Kind::Normal,
                reason,
                &format!("{app} {reason}"),
                None,
            )
            .unwrap();
        f.feed.publish(e.clone());
        e
    };
    let first = record("web", "RolloutStarted");
    record("api", "RolloutStarted");
    let (_, listed, _) = f
        .call(
            "GET",
            &format!("/v1/events?since={}", first.seq),
            Some(&t),
            "",
            &[],
        )
        .await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    assert_eq!(listed["events"][0]["app"], "api");

    // A stream that resumes after `first` gets the missed one, then live ones.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(ccd_api::serve(listener, f.api.clone(), stop.clone()));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream
        .write_all(
            format!(
                "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\nLast-Event-ID: {}\r\n\r\n",
                first.seq
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let live = record("web", "Ready");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let wanted = format!("id: {}", live.seq);
    while !(seen.contains(&wanted) && seen.contains("\n:")) {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the stream sends within 5 s")
            .unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(
        seen.contains("\"reason\":\"RolloutStarted\""),
        "the missed one: {seen}"
    );
    assert!(
        !seen.contains(&format!("id: {}\n", first.seq)),
        "not what was seen: {seen}"
    );
    assert!(seen.contains("\"reason\":\"Ready\""), "{seen}");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops with a stream open")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_document_describes_every_path_and_resolves_every_reference() {
    let f = fixture("openapi");
    let (code, doc, _) = f.call("GET", "/openapi.json", None, "", &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/apps",
        "/v1/apps/{name}",
        "/v1/apps/{name}/plan",
        "/v1/apps/{name}/rollout/{action}",
        "/v1/apps/{name}/rollouts",
        "/v1/apps/{name}/services",
        "/v1/events",
        "/v1/events/stream",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    assert!(doc["components"]["schemas"]["App"]["properties"]["spec"].is_object());
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").expect(&r);
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} resolves"
        );
    }
    let (code, _, _) = f.call("GET", "/healthz", None, "", &[]).await;
    assert_eq!(code, StatusCode::OK);
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn only_the_documented_methods_are_in_the_document_and_a_405_names_the_others() {
    let f = fixture("methods");
    let (_, doc, _) = f.call("GET", "/openapi.json", None, "", &[]).await;
    let methods = |path: &str| -> Vec<String> {
        let mut m: Vec<String> = doc["paths"][path]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        m.sort();
        m
    };
    assert_eq!(methods("/v1/apps/{name}"), ["delete", "get", "put"]);
    assert_eq!(methods("/v1/apps/{name}/plan"), ["post"]);
    let (code, body, headers) = f
        .call("POST", "/v1/apps/web", Some(&f.admin), "", &[])
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
    let allow = headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("PUT") && !allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn the_dashboard_logs_in_once_and_a_cookie_alone_changes_nothing() {
    let f = fixture("dashboard");
    let (code, _, headers) = f.call("GET", "/", None, "", &[]).await;
    assert_eq!(code, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let (code, _, _) = f.call("GET", "/dashboard.js", None, "", &[]).await;
    assert_eq!(code, StatusCode::OK);

    let token = f.api.dashboard_login(Scope::Admin).unwrap();
    let (code, _, _) = f.call("GET", "/login?token=guess", None, "", &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, headers) = f
        .call("GET", &format!("/login?token={token}"), None, "", &[])
        .await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let (code, _, _) = f
        .call("GET", &format!("/login?token={token}"), None, "", &[])
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "a login link works once");

    let with_cookie = [("cookie", cookie.as_str())];
    let (code, _, _) = f.call("GET", "/v1/apps", None, "", &with_cookie).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body, _) = f
        .call("PUT", "/v1/apps/web", None, SPEC, &with_cookie)
        .await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a cookie alone, as a forged form sends: {body}"
    );
    assert_eq!(f.stored(), None);
    let (_, session, _) = f.call("GET", "/v1/session", None, "", &with_cookie).await;
    let csrf = session["csrf"].as_str().unwrap().to_owned();
    let (code, _, _) = f
        .call(
            "PUT",
            "/v1/apps/web",
            None,
            SPEC,
            &[("cookie", cookie.as_str()), ("x-csrf-token", "wrong")],
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, _) = f
        .call(
            "PUT",
            "/v1/apps/web",
            None,
            SPEC,
            &[("cookie", cookie.as_str()), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _, _) = f.call("GET", "/v1/session", None, "", &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}
