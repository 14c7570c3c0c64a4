//! HTTP routes. Handlers never panic on input: bad query strings are turned
//! into 400s by axum's `Query` extractor or by the range checks here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{Identity, MAX_BURN_MS, MAX_SLOW_MS};

/// How long `POST /admin/crash` waits before exiting, so the 202 gets out.
const CRASH_GRACE: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct AppState {
    identity: Identity,
    healthy: AtomicBool,
    burn_ms: u64,
    /// Percent of `GET /` answered 500, and how many requests came so far.
    error_percent: AtomicU8,
    requests: AtomicU64,
}

/// How an instance behaves from the start.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `/healthz` answers 200.
    pub healthy: bool,
    /// CPU milliseconds every `GET /` burns.
    pub burn_ms: u64,
    /// Percent of `GET /` answered 500.
    pub error_percent: u8,
    /// Serve `GET /env/NAME`.
    pub expose_env: bool,
}

/// Builds the router.
pub fn router(identity: Identity, behaviour: Behaviour) -> Router {
    let expose_env = behaviour.expose_env;
    let state = Arc::new(AppState {
        identity,
        healthy: AtomicBool::new(behaviour.healthy),
        burn_ms: behaviour.burn_ms,
        error_percent: AtomicU8::new(behaviour.error_percent),
        requests: AtomicU64::new(0),
    });
    let router = Router::new();
    // Off unless asked: even a hash tells a guessable value apart.
    let router = if expose_env {
        router.route("/env/{name}", get(env_var))
    } else {
        router
    };
    router
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/burn", get(burn))
        .route("/slow", get(slow))
        .route("/services", get(services))
        .route("/admin/health", post(set_health))
        .route("/admin/errors", post(set_errors))
        .route("/admin/crash", post(crash))
        .with_state(state)
}

async fn root(State(state): State<Arc<AppState>>) -> Response {
    if fails_now(&state) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose").into_response();
    }
    if state.burn_ms > 0
        && let Err(resp) = burn_cpu(state.burn_ms).await
    {
        return resp;
    }
    let Identity {
        app,
        version,
        instance,
    } = &state.identity;
    Json(json!({
        "app": app,
        "version": version,
        "instance": instance,
        "pid": std::process::id(),
    }))
    .into_response()
}

/// Whether this request is one of the `error_percent` in a hundred that
/// fail: spread evenly (request k fails when k·p/100 steps up), so a share
/// is exact over any hundred requests rather than only on average.
fn fails_now(state: &AppState) -> bool {
    let percent = u64::from(state.error_percent.load(Ordering::Relaxed));
    if percent == 0 {
        return false;
    }
    let k = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    k * percent / 100 != (k - 1) * percent / 100
}

async fn healthz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "failing")
    }
}

/// Uses the app's cache and SQL database with the credentials it received
/// (`crate::services`): 200 with what each answered, 502 naming the first
/// that failed.
async fn services(State(state): State<Arc<AppState>>) -> Response {
    let Identity { app, version, .. } = &state.identity;
    let mut answer = json!({ "app": app, "version": version });
    if let Ok(url) = std::env::var("REDIS_URL") {
        match crate::services::cache(&url, app).await {
            Ok(count) => answer["cache"] = json!(count),
            Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
        }
    }
    if std::env::var_os("PGHOST").is_some() {
        match crate::services::sql().await {
            Ok(user) => answer["sql"] = json!(user),
            Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
        }
    }
    Json(answer).into_response()
}

/// Whether `name` is set here and the SHA-256 of its value: enough for a
/// test to see that a secret arrived, without the value leaving the process.
async fn env_var(Path(name): Path<String>) -> Json<serde_json::Value> {
    use std::os::unix::ffi::OsStrExt;
    match std::env::var_os(&name) {
        Some(value) => {
            let digest = Sha256::digest(value.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            Json(json!({ "name": name, "set": true, "sha256": hex }))
        }
        None => Json(json!({ "name": name, "set": false })),
    }
}

#[derive(Debug, Deserialize)]
struct Millis {
    ms: u64,
}

async fn burn(Query(Millis { ms }): Query<Millis>) -> Response {
    if ms > MAX_BURN_MS {
        return too_long(ms, MAX_BURN_MS);
    }
    match burn_cpu(ms).await {
        Ok(()) => Json(json!({ "burned_ms": ms })).into_response(),
        Err(resp) => resp,
    }
}

async fn slow(Query(Millis { ms }): Query<Millis>) -> Response {
    if ms > MAX_SLOW_MS {
        return too_long(ms, MAX_SLOW_MS);
    }
    // Logged so a test (or a person) can tell the request is in flight.
    tracing::info!(ms, "slow request started");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "slept_ms": ms })).into_response()
}

#[derive(Debug, Deserialize)]
struct HealthSwitch {
    fail: bool,
}

async fn set_health(
    State(state): State<Arc<AppState>>,
    Query(HealthSwitch { fail }): Query<HealthSwitch>,
) -> Json<serde_json::Value> {
    state.healthy.store(!fail, Ordering::Relaxed);
    tracing::warn!(healthy = !fail, "health switched by request");
    Json(json!({ "healthy": !fail }))
}

#[derive(Debug, Deserialize)]
struct ErrorSwitch {
    percent: u8,
}

async fn set_errors(
    State(state): State<Arc<AppState>>,
    Query(ErrorSwitch { percent }): Query<ErrorSwitch>,
) -> Response {
    if percent > 100 {
        return (
            StatusCode::BAD_REQUEST,
            format!("percent={percent} is more than 100"),
        )
            .into_response();
    }
    state.error_percent.store(percent, Ordering::Relaxed);
    tracing::warn!(percent, "error rate switched by request");
    Json(json!({ "errorPercent": percent })).into_response()
}

async fn crash() -> (StatusCode, &'static str) {
    tracing::warn!("crash requested; exiting with code 1");
    tokio::spawn(async {
        tokio::time::sleep(CRASH_GRACE).await;
        std::process::exit(1);
    });
    (StatusCode::ACCEPTED, "crashing")
}

fn too_long(ms: u64, max: u64) -> Response {
    let msg = format!("ms={ms} is too long; the most is {max}");
    (StatusCode::BAD_REQUEST, msg).into_response()
}

/// Spins a blocking-pool thread for `ms` of wall time, which on an idle core
/// is that much CPU time: enough to drive CPU-based autoscaling.
async fn burn_cpu(ms: u64) -> Result<(), Response> {
    let spin = tokio::task::spawn_blocking(move || {
        let until = Instant::now() + Duration::from_millis(ms);
        let mut x: u64 = 0;
        while Instant::now() < until {
            // black_box keeps the optimiser from removing the busy loop.
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    });
    spin.await.map_err(|err| {
        tracing::error!(%err, "burn task failed");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    })
}
