//! `ccd sync --listen`'s webhook over real HTTP on 127.0.0.1: what a forge's delivery gets back,
//! and what reaches the watch loop (a push on the channel, or nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ccd_sync::WebhookError;
use ccd_sync::webhook::{self, Forge, MAX_BODY, PATH, Push, Secret};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use sha2::Sha256;
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const GITHUB_SECRET: &str = "correct horse battery staple";
/// A GitLab signing token: `whsec_` and the base64 of 32 bytes.
const SIGNING_TOKEN: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";
const COMMIT: &str = "9f3c2a1b7e6d5c4b3a29180716f5e4d3c2b1a098";

struct Server {
    url: String,
    root: String,
    pushes: mpsc::Receiver<Push>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), WebhookError>>,
    _dir: TempDir,
}

/// The server as `ccd sync --listen 127.0.0.1:0 --secret-file F` runs it, F holding `secret`.
async fn start(secret: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook-secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secret = Secret::read(&file).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, pushes) = webhook::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(webhook::serve(listener, secret, tx, async move {
        let _ = stopped.await;
    }));
    Server {
        url: format!("http://{addr}{PATH}"),
        root: format!("http://{addr}"),
        pushes,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

impl Server {
    /// Nothing waits on the channel: every answer is given after the push was offered.
    fn nothing_pending(&mut self) -> bool {
        matches!(
            self.pushes.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        )
    }
}

fn github_push(reference: &str) -> String {
    format!(
        r#"{{"ref":"{reference}","before":"{}","after":"{COMMIT}","repository":{{"full_name":"acme/ops"}},"commits":[]}}"#,
        "0".repeat(40)
    )
}

fn gitlab_push(reference: &str) -> String {
    format!(
        r#"{{"object_kind":"push","event_name":"push","ref":"{reference}","before":"{}","after":"{COMMIT}","checkout_sha":"{COMMIT}","project":{{"path_with_namespace":"acme/ops"}}}}"#,
        "0".repeat(40)
    )
}

fn github_signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn gitlab_signature(token: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = BASE64
        .decode(token.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn unix_now() -> u64 {
    ccd_clock::wall()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn send_github(
    server: &Server,
    event: &str,
    signature: Option<&str>,
    body: String,
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    let response = request.body(body).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn send_gitlab(server: &Server, timestamp: u64, body: String) -> (StatusCode, String) {
    let id = "b6a2f6d4-57e1-4b54-9a7c-2b4f1f0c9e11";
    let timestamp = timestamp.to_string();
    let signature = gitlab_signature(SIGNING_TOKEN, id, &timestamp, &body);
    let response = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Push Hook")
        .header("idempotency-key", id)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_signed_github_push_syncs_at_once() {
    let mut server = start(GITHUB_SECRET).await;
    let body = github_push("refs/heads/main");
    let signature = github_signature(GITHUB_SECRET, &body);
    let (status, _) = send_github(&server, "push", Some(&signature), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let push = server.pushes.try_recv().expect("a push for the watch loop");
    assert_eq!(
        push,
        Push {
            forge: Forge::GitHub,
            reference: "refs/heads/main".into(),
            commit: COMMIT.into(),
        }
    );
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn a_wrong_signature_is_401_and_runs_nothing() {
    let mut server = start(GITHUB_SECRET).await;
    let body = github_push("refs/heads/main");
    let signature = github_signature("not the secret", &body);
    let (status, answer) = send_github(&server, "push", Some(&signature), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer.contains("does not match"), "{answer}");
    assert!(!answer.contains(GITHUB_SECRET), "{answer}");
    assert!(server.nothing_pending());

    // The right secret over other bytes than those sent.
    let signature = github_signature(GITHUB_SECRET, &github_push("refs/heads/other"));
    let (status, _) = send_github(&server, "push", Some(&signature), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn a_missing_signature_is_401_and_runs_nothing() {
    let mut server = start(GITHUB_SECRET).await;
    let (status, answer) = send_github(&server, "push", None, github_push("refs/heads/main")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer.contains("no signature"), "{answer}");
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn a_signed_gitlab_push_syncs_at_once() {
    let mut server = start(SIGNING_TOKEN).await;
    let (status, _) = send_gitlab(&server, unix_now(), gitlab_push("refs/heads/main")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let push = server.pushes.try_recv().expect("a push for the watch loop");
    assert_eq!(push.forge, Forge::GitLab);
    assert_eq!(push.reference, "refs/heads/main");
    assert_eq!(push.commit, COMMIT);
}

#[tokio::test]
async fn a_replayed_gitlab_push_is_401() {
    let mut server = start(SIGNING_TOKEN).await;
    let an_hour_ago = unix_now() - 3600;
    let (status, answer) = send_gitlab(&server, an_hour_ago, gitlab_push("refs/heads/main")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer.contains("replayed"), "{answer}");
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn gitlabs_plain_token_is_not_enough() {
    let mut server = start(GITHUB_SECRET).await;
    // The secret itself in X-Gitlab-Token: no HMAC of the body, refused with the fix.
    let response = reqwest::Client::new()
        .post(&server.url)
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", GITHUB_SECRET)
        .body(gitlab_push("refs/heads/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let answer = response.text().await.unwrap();
    assert!(answer.contains("signing token"), "{answer}");
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn githubs_ping_is_answered_without_a_sync() {
    let mut server = start(GITHUB_SECRET).await;
    let body = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_owned();
    let signature = github_signature(GITHUB_SECRET, &body);
    let (status, _) = send_github(&server, "ping", Some(&signature), body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_push_is_400() {
    let mut server = start(GITHUB_SECRET).await;
    let body = r#"{"ref":"refs/heads/main"}"#.to_owned();
    let signature = github_signature(GITHUB_SECRET, &body);
    let (status, _) = send_github(&server, "push", Some(&signature), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let mut server = start(GITHUB_SECRET).await;
    let body = "x".repeat(MAX_BODY + 1);
    let signature = github_signature(GITHUB_SECRET, &body);
    let (status, _) = send_github(&server, "push", Some(&signature), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn only_post_on_the_one_path() {
    let mut server = start(GITHUB_SECRET).await;
    let client = reqwest::Client::new();
    let get = client.get(&server.url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body = github_push("refs/heads/main");
    let signature = github_signature(GITHUB_SECRET, &body);
    let elsewhere = client
        .post(format!("{}/hooks/github", server.root))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    assert!(server.nothing_pending());
}

#[tokio::test]
async fn a_push_while_one_is_pending_joins_it() {
    let mut server = start(GITHUB_SECRET).await;
    for reference in ["refs/heads/main", "refs/heads/main", "refs/tags/v2"] {
        let body = github_push(reference);
        let signature = github_signature(GITHUB_SECRET, &body);
        let (status, _) = send_github(&server, "push", Some(&signature), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{reference}");
    }
    // One sync pending, not three: it reads the newest commit when it runs.
    assert!(server.pushes.try_recv().is_ok());
    assert!(server.nothing_pending());
    // Once the loop took it, the next push queues a sync again.
    let body = github_push("refs/heads/main");
    let signature = github_signature(GITHUB_SECRET, &body);
    let (status, _) = send_github(&server, "push", Some(&signature), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(server.pushes.try_recv().is_ok());
}

#[tokio::test]
async fn the_server_stops_when_told() {
    let mut server = start(GITHUB_SECRET).await;
    server.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .expect("the server stops within 5 s")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        reqwest::Client::new()
            .get(&server.url)
            .send()
            .await
            .is_err()
    );
}

#[test]
fn an_unreadable_or_empty_secret_file_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let message = Secret::read(&missing).unwrap_err().to_string();
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("chmod 600"),
        "{message}"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let message = Secret::read(&empty).unwrap_err().to_string();
    assert!(
        message.contains(&empty.display().to_string()) && message.contains("empty"),
        "{message}"
    );
}
