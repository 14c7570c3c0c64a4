//! The webhook of `ccd sync --watch --listen ADDR --secret-file F`: a forge's push event makes the
//! watch loop sync at once instead of at its next tick; polling stays the backstop, so a lost or
//! refused delivery only delays a sync.
//!
//! One path, [`PATH`], takes `POST` only (another method is 405, another path 404). A request is
//! believed only with a valid HMAC-SHA256 of its exact body:
//! - **GitHub**: `X-Hub-Signature-256: sha256=<hex>`, keyed by the secret's bytes.
//! - **GitLab's signing token** (the Standard Webhooks scheme): `webhook-signature: v1,<base64>`
//!   over `<webhook-id>.<webhook-timestamp>.<body>`, keyed by the base64 after `whsec_`; a
//!   timestamp more than [`TOLERANCE`] from this machine's clock is refused (a replay).
//!
//! GitLab's older `X-Gitlab-Token` is **not** accepted: it is the secret itself in a header, so it
//! proves nothing about the body and can be replayed for ever. Such a request is refused with a
//! message saying to give the hook a signing token. GitHub's signature carries no time, so a
//! captured GitHub delivery can be replayed; all it can do is ask for one more sync of the
//! configured ref, which changes nothing when the commit did not.
//!
//! The push itself is read only for its ref and commit, for the log: the sync always reads the
//! ref `ccd sync` was given, whatever branch was pushed, since a sync of an unchanged commit writes
//! nothing. Answers: 202 on a push (the sync runs after the answer; a push while one is pending
//! joins it, as that sync will read the newest commit anyway), 200 on GitHub's `ping` and on
//! events that are not pushes, 401 without a valid signature, 400 on a body that is not a push's
//! JSON, 413 over [`MAX_BODY`]. Neither the secret nor a body is ever logged.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, info, warn};

use crate::WebhookError;

/// The one path the webhook answers on: give the forge `http://HOST:PORT/hooks/git`.
pub const PATH: &str = "/hooks/git";
/// The largest body read (a push of many commits stays far below): 413 beyond.
pub const MAX_BODY: usize = 1024 * 1024;
/// How far a signed timestamp may stand from this machine's clock, either way (Standard Webhooks
/// recommends five minutes).
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// How long a sender may take to send its body: a connection trickling bytes is cut (408).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

const GITHUB_EVENT: &str = "x-github-event";
const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITLAB_TOKEN: &str = "x-gitlab-token";
const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";
const SIGNING_TOKEN_PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

/// The webhook's shared secret, read from `--secret-file`. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret {
    /// The file's bytes, trimmed: GitHub's HMAC key.
    text: Vec<u8>,
    /// The key of a `whsec_<base64>` signing token (GitLab), decoded.
    signing_key: Option<Vec<u8>>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads the secret from `file`: its content without surrounding white space. An unreadable
    /// or empty file is an error naming it; one readable by group or others is only a warning
    /// (the secret works, but anyone on the machine may sign pushes).
    pub fn read(file: &Path) -> Result<Self, WebhookError> {
        let shown = file.display().to_string();
        let bytes = std::fs::read(file).map_err(|e| WebhookError::SecretUnreadable {
            file: shown.clone(),
            reason: e.to_string(),
        })?;
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(file) {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode();
            if readable_by_others(mode) {
                warn!(
                    "the webhook secret file {shown} is readable by group or others (mode {:o}): \
                     chmod 600 {shown}",
                    mode & 0o777
                );
            }
        }
        Self::from_bytes(&bytes, &shown)
    }

    fn from_bytes(bytes: &[u8], file: &str) -> Result<Self, WebhookError> {
        let text = bytes.trim_ascii();
        if text.is_empty() {
            return Err(WebhookError::SecretEmpty {
                file: file.to_owned(),
            });
        }
        let signing_key = match text.strip_prefix(SIGNING_TOKEN_PREFIX.as_bytes()) {
            // The decoder's message would quote a character of the secret: not passed on.
            Some(encoded) => {
                Some(
                    BASE64
                        .decode(encoded)
                        .map_err(|_| WebhookError::SecretNotBase64 {
                            file: file.to_owned(),
                        })?,
                )
            }
            None => None,
        };
        Ok(Self {
            text: text.to_vec(),
            signing_key,
        })
    }
}

/// Whether a file's mode lets its group or others read it.
fn readable_by_others(mode: u32) -> bool {
    mode & 0o044 != 0
}

/// Who sent a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    GitHub,
    GitLab,
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GitHub => "GitHub",
            Self::GitLab => "GitLab",
        })
    }
}

/// A verified push: what was pushed where, for the log (the sync reads its own ref).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub forge: Forge,
    /// The pushed ref, `refs/heads/main` or `refs/tags/v1`.
    pub reference: String,
    /// The ref's commit after the push (all zeros when the ref was deleted).
    pub commit: String,
}

/// What a verified request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push(Push),
    /// GitHub's `ping`, sent when a hook is created.
    Ping,
    /// Another event (an issue, a merge request...): nothing to sync.
    Ignored {
        event: String,
    },
}

/// Why a request is refused: nothing runs. The message is the answer's body and the log line;
/// it never quotes the secret or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No signature header at all.
    #[error(
        "no signature: sign the hook (GitHub: a Secret, sent as X-Hub-Signature-256; GitLab: a \
         signing token, sent as webhook-signature) with the secret in --secret-file"
    )]
    Unsigned,
    /// GitLab's plain secret token, without an HMAC.
    #[error(
        "GitLab sent only X-Gitlab-Token, a plain token that does not sign the body, which ccd \
         does not accept: give the hook a signing token (whsec_...) and put it in --secret-file"
    )]
    PlainToken,
    /// A signature header that cannot be one.
    #[error("{header} is not {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    /// A Standard Webhooks signature without its id or timestamp.
    #[error("webhook-signature without {0}")]
    Missing(&'static str),
    /// A GitLab signing-token signature, but the secret is not a signing token.
    #[error(
        "the request is signed with a signing token, but --secret-file holds no whsec_ token: put \
         the hook's signing token in it"
    )]
    NotSigningToken,
    /// The signature is not the body's under this secret.
    #[error(
        "the signature does not match the body: check that --secret-file holds the hook's secret"
    )]
    Mismatch,
    /// A valid signature from too long ago (or too far ahead).
    #[error(
        "webhook-timestamp {timestamp} is {skew} s from this machine's clock, more than {} s: a \
         replayed request, or a clock to set right (NTP)",
        TOLERANCE.as_secs()
    )]
    Stale { timestamp: i64, skew: u64 },
    /// A signed GitHub request without its event.
    #[error("no X-GitHub-Event header")]
    NoEvent,
    /// GitHub's form encoding instead of JSON.
    #[error(
        "the body is a form (application/x-www-form-urlencoded): set the webhook's Content type to \
         application/json"
    )]
    Form,
    /// A push whose body is not what the forge sends.
    #[error("not a push event's JSON: {0}")]
    BadPush(&'static str),
}

impl Refusal {
    /// The answer's status: 401 for anything about the signature, 400 for a signed request whose
    /// body is not a push.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoEvent | Self::Form | Self::BadPush(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Checks GitHub's `X-Hub-Signature-256` value against `body`, in constant time.
pub fn verify_github(secret: &Secret, signature: &str, body: &[u8]) -> Result<(), Refusal> {
    let malformed = Refusal::Malformed {
        header: "X-Hub-Signature-256",
        expected: "sha256=<64 hex digits>",
    };
    let digits = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(malformed.clone())?;
    let tag = hex::decode(digits).map_err(|_| malformed)?;
    let mut mac = hmac_with(&secret.text)?;
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| Refusal::Mismatch)
}

/// Checks a Standard Webhooks signature (GitLab's signing token): `signatures` is the
/// `webhook-signature` value, one or more space-separated `v1,<base64>`, any one of which may
/// match, in constant time; then that `timestamp` is within [`TOLERANCE`] of `now`.
pub fn verify_standard(
    secret: &Secret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<(), Refusal> {
    let key = secret
        .signing_key
        .as_deref()
        .ok_or(Refusal::NotSigningToken)?;
    let mut mac = hmac_with(key)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // The body is hashed once; each candidate costs one finalisation of a copy.
    let signed = signatures
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if !signed {
        return Err(Refusal::Mismatch);
    }
    let seconds: i64 = timestamp.trim().parse().map_err(|_| Refusal::Malformed {
        header: "webhook-timestamp",
        expected: "a time in Unix seconds",
    })?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let skew = now.abs_diff(seconds);
    if skew > TOLERANCE.as_secs() {
        return Err(Refusal::Stale {
            timestamp: seconds,
            skew,
        });
    }
    Ok(())
}

/// HMAC-SHA256 keyed by `key`. HMAC takes a key of any length (a long one is hashed first), so
/// the error is never seen; were it, nothing would verify.
fn hmac_with(key: &[u8]) -> Result<HmacSha256, Refusal> {
    <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|_| Refusal::Mismatch)
}

/// Verifies a request (`headers` and its exact `body`) and reads what it asks for. The signature
/// is checked before anything of the body is read.
pub fn check(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Event, Refusal> {
    let text = |name: &'static str| -> Result<Option<&str>, Refusal> {
        match headers.get(name) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| Refusal::Malformed {
                header: name,
                expected: "visible ASCII",
            }),
        }
    };
    let forge = if let Some(signature) = text(GITHUB_SIGNATURE)? {
        verify_github(secret, signature, body)?;
        Forge::GitHub
    } else if let Some(signatures) = text(WEBHOOK_SIGNATURE)? {
        let id = text(WEBHOOK_ID)?.ok_or(Refusal::Missing(WEBHOOK_ID))?;
        let timestamp = text(WEBHOOK_TIMESTAMP)?.ok_or(Refusal::Missing(WEBHOOK_TIMESTAMP))?;
        verify_standard(secret, id, timestamp, signatures, body, now)?;
        Forge::GitLab
    } else if headers.contains_key(GITLAB_TOKEN) {
        return Err(Refusal::PlainToken);
    } else {
        return Err(Refusal::Unsigned);
    };

    let form =
        text("content-type")?.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Err(Refusal::Form);
    }
    match forge {
        Forge::GitHub => match text(GITHUB_EVENT)?.ok_or(Refusal::NoEvent)? {
            "push" => parse_push(forge, body).map(Event::Push),
            "ping" => Ok(Event::Ping),
            other => Ok(Event::Ignored {
                event: printable(other),
            }),
        },
        // GitLab's event header is not signed; the body's `object_kind` is.
        Forge::GitLab => {
            let kind: Kind = serde_json::from_slice(body)
                .map_err(|_| Refusal::BadPush("the body is not a JSON object"))?;
            match kind.object_kind.as_deref() {
                Some("push" | "tag_push") => parse_push(forge, body).map(Event::Push),
                Some(other) => Ok(Event::Ignored {
                    event: printable(other),
                }),
                None => Err(Refusal::BadPush("no object_kind")),
            }
        }
    }
}

#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
}

/// The fields of a push both forges send alike.
#[derive(Deserialize)]
struct PushBody {
    #[serde(rename = "ref")]
    reference: Option<String>,
    after: Option<String>,
}

/// Reads a push's ref and new commit. Both are checked for shape: they go to the log.
fn parse_push(forge: Forge, body: &[u8]) -> Result<Push, Refusal> {
    // serde_json's message could quote the body: each failure gets its own words instead.
    let push: PushBody = serde_json::from_slice(body)
        .map_err(|_| Refusal::BadPush("the body is not a JSON object with a ref and an after"))?;
    let reference = push.reference.ok_or(Refusal::BadPush("no ref"))?;
    let commit = push.after.ok_or(Refusal::BadPush("no after"))?;
    let ref_ok = reference.starts_with("refs/")
        && reference.len() <= 1024
        && !reference
            .chars()
            .any(|c| c.is_control() || c.is_whitespace());
    if !ref_ok {
        return Err(Refusal::BadPush("ref is not refs/..."));
    }
    let commit_ok =
        matches!(commit.len(), 40 | 64) && commit.chars().all(|c| c.is_ascii_hexdigit());
    if !commit_ok {
        return Err(Refusal::BadPush("after is not a commit id"));
    }
    Ok(Push {
        forge,
        reference,
        commit,
    })
}

/// An event name fit for a log line.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

/// A channel for [`serve`]'s pushes with room for one: a push while a sync is pending joins it.
pub fn channel() -> (mpsc::Sender<Push>, mpsc::Receiver<Push>) {
    mpsc::channel(1)
}

#[derive(Debug)]
struct Hook {
    secret: Secret,
    pushes: mpsc::Sender<Push>,
}

/// Serves the webhook on `listener` until `stop` resolves: each verified push is offered to
/// `pushes` without waiting (make it with [`channel`]; when it is full, a sync is already
/// pending and the push joins it).
pub async fn serve(
    listener: TcpListener,
    secret: Secret,
    pushes: mpsc::Sender<Push>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebhookError> {
    axum::serve(listener, router(secret, pushes))
        .with_graceful_shutdown(stop)
        .await
        .map_err(WebhookError::Serve)
}

fn router(secret: Secret, pushes: mpsc::Sender<Push>) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(Hook { secret, pushes }))
}

async fn receive(State(hook): State<Arc<Hook>>, request: Request) -> Response {
    let headers = request.headers().clone();
    let body = match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => body,
        // Over MAX_BODY: 413, from the limit above.
        Ok(Err(rejection)) => {
            debug!(status = %rejection.status(), "webhook: the body was not read");
            return rejection.into_response();
        }
        Err(_) => {
            debug!("webhook: the body took too long");
            return (StatusCode::REQUEST_TIMEOUT, "the body took too long\n").into_response();
        }
    };
    match check(&hook.secret, &headers, &body, ccd_clock::wall()) {
        Err(refusal) => {
            warn!(
                "webhook: refused ({}): {refusal}",
                refusal.status().as_u16()
            );
            (refusal.status(), format!("{refusal}\n")).into_response()
        }
        Ok(Event::Ping) => {
            info!("webhook: ping from GitHub; pushes will sync at once");
            (StatusCode::OK, "pong\n").into_response()
        }
        Ok(Event::Ignored { event }) => {
            debug!(%event, "webhook: not a push, ignored");
            (
                StatusCode::OK,
                format!("ignored: {event} is not a push; ccd syncs on pushes\n"),
            )
                .into_response()
        }
        Ok(Event::Push(push)) => offer(&hook.pushes, push),
    }
}

/// Hands a push to the watch loop without waiting for it.
fn offer(pushes: &mpsc::Sender<Push>, push: Push) -> Response {
    let (forge, reference, commit) = (push.forge, push.reference.clone(), push.commit.clone());
    match pushes.try_send(push) {
        Ok(()) => {
            info!(%forge, %reference, %commit, "webhook: push, syncing now");
            (StatusCode::ACCEPTED, "accepted: a sync starts now\n").into_response()
        }
        Err(TrySendError::Full(_)) => {
            info!(%forge, %reference, %commit, "webhook: push while a sync is pending, which will read it");
            (
                StatusCode::ACCEPTED,
                "accepted: a sync is already pending\n",
            )
                .into_response()
        }
        Err(TrySendError::Closed(_)) => {
            warn!(%forge, %reference, "webhook: push while ccd sync is stopping");
            (StatusCode::SERVICE_UNAVAILABLE, "ccd sync is stopping\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // GitHub's own example (docs.github.com, "Validating webhook deliveries"), checked with
    // `printf '%s' 'Hello, World!' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"`.
    const GH_SECRET: &str = "It's a Secret to Everybody";
    const GH_BODY: &str = "Hello, World!";
    const GH_TAG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    // The Standard Webhooks specification's example, checked with openssl:
    // printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -mac HMAC \
    //   -macopt hexkey:$(printf '%s' MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p) -binary | base64
    const SIGNING_TOKEN: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const STANDARD_BODY: &str = r#"{"test": 2432232314}"#;
    const STANDARD_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret(text: &str) -> Secret {
        Secret::from_bytes(text.as_bytes(), "test").unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn github_signature_known_vector() {
        let s = secret(GH_SECRET);
        assert_eq!(verify_github(&s, GH_TAG, GH_BODY.as_bytes()), Ok(()));
        // Upper-case hex is the same digest.
        let upper = format!("sha256={}", GH_TAG[7..].to_uppercase());
        assert_eq!(verify_github(&s, &upper, GH_BODY.as_bytes()), Ok(()));
    }

    #[test]
    fn github_signature_refuses_any_change() {
        let s = secret(GH_SECRET);
        assert_eq!(
            verify_github(&s, GH_TAG, b"Hello, World?"),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_github(&secret("another"), GH_TAG, GH_BODY.as_bytes()),
            Err(Refusal::Mismatch)
        );
        // One digit off, a truncated tag, the old SHA-1 header's format, not hex.
        let mut flipped = GH_TAG.to_owned();
        flipped.replace_range(7..8, "8");
        let truncated = &GH_TAG[..GH_TAG.len() - 2];
        for bad in [flipped.as_str(), truncated, "sha256="] {
            assert_eq!(
                verify_github(&s, bad, GH_BODY.as_bytes()),
                Err(Refusal::Mismatch),
                "{bad}"
            );
        }
        for bad in [
            "sha1=0123",
            "757107ea0eb2509fc211221cce984b8a",
            "sha256=xyz",
        ] {
            assert!(
                matches!(
                    verify_github(&s, bad, GH_BODY.as_bytes()),
                    Err(Refusal::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn standard_signature_known_vector() {
        let s = secret(SIGNING_TOKEN);
        let now = at(1_614_265_330 + 10);
        assert_eq!(
            verify_standard(
                &s,
                ID,
                TS,
                STANDARD_SIGNATURE,
                STANDARD_BODY.as_bytes(),
                now
            ),
            Ok(())
        );
        // Several signatures (a key being rotated): one match is enough.
        let several = format!("v1,bm90IHRoaXM= v2,abc {STANDARD_SIGNATURE}");
        assert_eq!(
            verify_standard(&s, ID, TS, &several, STANDARD_BODY.as_bytes(), now),
            Ok(())
        );
    }

    #[test]
    fn standard_signature_covers_id_timestamp_and_body() {
        let s = secret(SIGNING_TOKEN);
        let now = at(1_614_265_330);
        let body = STANDARD_BODY.as_bytes();
        let refused = |id: &str, ts: &str, sig: &str, body: &[u8]| {
            verify_standard(&s, id, ts, sig, body, now)
        };
        assert_eq!(
            refused("msg_other", TS, STANDARD_SIGNATURE, body),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            refused(ID, "1614265331", STANDARD_SIGNATURE, body),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            refused(ID, TS, STANDARD_SIGNATURE, br#"{"test": 2432232315}"#),
            Err(Refusal::Mismatch)
        );
        // The same tag under another version, or none.
        let v2 = STANDARD_SIGNATURE.replace("v1,", "v2,");
        let bare = STANDARD_SIGNATURE.trim_start_matches("v1,");
        for bad in [v2.as_str(), bare, "", "v1,not base64!"] {
            assert_eq!(refused(ID, TS, bad, body), Err(Refusal::Mismatch), "{bad}");
        }
        // Keyed by the decoded token, not its text: GitHub's rule does not pass here.
        assert_eq!(
            verify_standard(&secret("plain"), ID, TS, STANDARD_SIGNATURE, body, now),
            Err(Refusal::NotSigningToken)
        );
    }

    #[test]
    fn standard_signature_too_old_or_too_new_is_a_replay() {
        let s = secret(SIGNING_TOKEN);
        let signed = 1_614_265_330;
        let body = STANDARD_BODY.as_bytes();
        let check_at = |now: u64| verify_standard(&s, ID, TS, STANDARD_SIGNATURE, body, at(now));
        assert_eq!(check_at(signed + 300), Ok(()));
        assert_eq!(check_at(signed - 300), Ok(()));
        assert_eq!(
            check_at(signed + 301),
            Err(Refusal::Stale {
                timestamp: 1_614_265_330,
                skew: 301
            })
        );
        assert!(matches!(
            check_at(signed - 3600),
            Err(Refusal::Stale { .. })
        ));
        let message = check_at(signed + 86_400).unwrap_err().to_string();
        assert!(
            message.contains("replayed") && message.contains("86400 s"),
            "{message}"
        );
    }

    #[test]
    fn the_secret_file_is_trimmed_and_never_shown() {
        let s = Secret::from_bytes(b"  It's a Secret to Everybody\n", "f").unwrap();
        assert_eq!(verify_github(&s, GH_TAG, GH_BODY.as_bytes()), Ok(()));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        let token = Secret::from_bytes(format!("{SIGNING_TOKEN}\n").as_bytes(), "f").unwrap();
        assert!(token.signing_key.is_some());
        assert!(!format!("{token:?}").contains("MfKQ"));
    }

    #[test]
    fn an_empty_or_broken_secret_names_the_file_and_the_fix() {
        let empty = Secret::from_bytes(b" \n\t", "/etc/ccd/hook").unwrap_err();
        let message = empty.to_string();
        assert!(
            message.contains("/etc/ccd/hook") && message.contains("empty"),
            "{message}"
        );
        let broken = Secret::from_bytes(b"whsec_s3cr3t!!", "/etc/ccd/hook").unwrap_err();
        let message = broken.to_string();
        assert!(message.contains("not base64"), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[test]
    fn loose_modes_are_noticed() {
        assert!(!readable_by_others(0o100600));
        assert!(!readable_by_others(0o100400));
        assert!(readable_by_others(0o100640));
        assert!(readable_by_others(0o100604));
        assert!(readable_by_others(0o100644));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn github_push_body() -> String {
        format!(
            r#"{{"ref":"refs/heads/main","before":"{}","after":"{COMMIT}","repository":{{"name":"ops"}}}}"#,
            "0".repeat(40)
        )
    }

    fn github_signed(secret_text: &str, body: &str) -> String {
        let mut mac = hmac_with(secret_text.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_signed_github_push_is_read() {
        let s = secret("hush");
        let body = github_push_body();
        let sig = github_signed("hush", &body);
        let h = headers(&[(GITHUB_EVENT, "push"), (GITHUB_SIGNATURE, &sig)]);
        assert_eq!(
            check(&s, &h, body.as_bytes(), ccd_clock::wall()),
            Ok(Event::Push(Push {
                forge: Forge::GitHub,
                reference: "refs/heads/main".into(),
                commit: COMMIT.into()
            }))
        );
        let ping = headers(&[(GITHUB_EVENT, "ping"), (GITHUB_SIGNATURE, &sig)]);
        assert_eq!(
            check(&s, &ping, body.as_bytes(), ccd_clock::wall()),
            Ok(Event::Ping)
        );
        let issues = headers(&[(GITHUB_EVENT, "issues"), (GITHUB_SIGNATURE, &sig)]);
        assert_eq!(
            check(&s, &issues, body.as_bytes(), ccd_clock::wall()),
            Ok(Event::Ignored {
                event: "issues".into()
            })
        );
    }

    #[test]
    fn nothing_of_the_body_is_read_before_the_signature() {
        let s = secret("hush");
        let now = ccd_clock::wall();
        // Not even JSON, but unsigned: 401, not 400.
        let junk = b"not json";
        assert_eq!(
            check(&s, &headers(&[(GITHUB_EVENT, "push")]), junk, now),
            Err(Refusal::Unsigned)
        );
        assert_eq!(
            check(
                &s,
                &headers(&[("x-gitlab-event", "Push Hook"), (GITLAB_TOKEN, "hush")]),
                junk,
                now
            ),
            Err(Refusal::PlainToken)
        );
        assert_eq!(Refusal::PlainToken.status(), StatusCode::UNAUTHORIZED);
        // Signed junk: 400.
        let sig = github_signed("hush", "not json");
        let refused = check(
            &s,
            &headers(&[(GITHUB_EVENT, "push"), (GITHUB_SIGNATURE, &sig)]),
            junk,
            now,
        )
        .unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_push_must_look_like_one() {
        let bad = [
            r#"{"ref":"refs/heads/main"}"#.to_owned(),
            format!(r#"{{"after":"{COMMIT}"}}"#),
            format!(r#"{{"ref":"main","after":"{COMMIT}"}}"#),
            format!(r#"{{"ref":"refs/heads/a\nb","after":"{COMMIT}"}}"#),
            r#"{"ref":"refs/heads/main","after":"HEAD"}"#.to_owned(),
            format!(r#"{{"ref":1,"after":"{COMMIT}"}}"#),
            "[]".to_owned(),
        ];
        for body in &bad {
            assert!(
                matches!(
                    parse_push(Forge::GitHub, body.as_bytes()),
                    Err(Refusal::BadPush(_))
                ),
                "{body}"
            );
        }
        let deleted = format!(r#"{{"ref":"refs/tags/v1","after":"{}"}}"#, "0".repeat(40));
        assert!(parse_push(Forge::GitHub, deleted.as_bytes()).is_ok());
        let sha256_repo = format!(
            r#"{{"ref":"refs/heads/main","after":"{}"}}"#,
            "a".repeat(64)
        );
        assert!(parse_push(Forge::GitHub, sha256_repo.as_bytes()).is_ok());
    }

    #[test]
    fn gitlab_reads_the_signed_object_kind() {
        let s = secret(SIGNING_TOKEN);
        let now = ccd_clock::wall();
        let ts = now
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let sign = |body: &str| {
            let mut mac = hmac_with(s.signing_key.as_deref().unwrap()).unwrap();
            mac.update(format!("{ID}.{ts}.{body}").as_bytes());
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        };
        let send = |body: &str, event: &str| {
            let sig = sign(body);
            let h = headers(&[
                ("x-gitlab-event", event),
                (WEBHOOK_ID, ID),
                (WEBHOOK_TIMESTAMP, &ts),
                (WEBHOOK_SIGNATURE, &sig),
            ]);
            check(&s, &h, body.as_bytes(), now)
        };
        let push =
            format!(r#"{{"object_kind":"push","ref":"refs/heads/main","after":"{COMMIT}"}}"#);
        assert!(matches!(send(&push, "Push Hook"), Ok(Event::Push(p)) if p.forge == Forge::GitLab));
        // The unsigned event header says push, the signed body says otherwise.
        let issue = r#"{"object_kind":"issue"}"#;
        assert_eq!(
            send(issue, "Push Hook"),
            Ok(Event::Ignored {
                event: "issue".into()
            })
        );
        // Without its id or timestamp, the signature cannot be checked.
        let sig = sign(&push);
        let h = headers(&[(WEBHOOK_SIGNATURE, &sig), (WEBHOOK_ID, ID)]);
        assert_eq!(
            check(&s, &h, push.as_bytes(), now),
            Err(Refusal::Missing(WEBHOOK_TIMESTAMP))
        );
    }
}
