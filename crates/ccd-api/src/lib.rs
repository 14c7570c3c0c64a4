//! ccd's REST API, served by `ccd up` and `ccd controller`: the apps (a
//! page at a time), one app's spec and status, applying and deleting specs
//! (written into the store exactly as a dropped file is, so git-ops, the
//! CLI and the API never disagree), plans, rollout asks and history, the
//! events (listed, and streamed as server-sent events) and services.
//!
//! Every `/v1` route takes a bearer token ([`tokens`]): none is 401, one
//! without the scope (or the app) is 403. Every refusal is JSON
//! ([`error::ErrorBody`]) and a 4xx; a store that fails is a 503.
//!
//! The OpenAPI 3.1 document is generated from the handlers' annotations by
//! `utoipa` (see docs/decisions.md) and served at `/openapi.json`, with the
//! spec's JSON Schema (`ccd schema`, one definition) as the `App` schema.

mod apps;
mod dashboard;
pub mod error;
mod events;
mod extract;
mod openapi;
mod rollouts;
mod session;
pub mod tokens;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use ccd_controller::status::Status;
use tokio_util::sync::CancellationToken;

pub use events::EventFeed;
pub use session::COOKIE as SESSION_COOKIE;
pub use tokens::{Caller, Scope, TokenError, Tokens};

/// What `POST /v1/apps/{name}/plan` asks of the cloud: the plan of a spec
/// against what exists (`ccd plan -o json`), read-only. The process that
/// serves the API has the cloud; the API does not.
pub trait Planner: Send + Sync + 'static {
    fn plan<'a>(
        &'a self,
        app: &'a ccd_spec::App,
        spec_version: &'a str,
        recorded: &'a Status,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send + 'a>>;
}

/// What the handlers share.
pub struct ApiState {
    store: ccd_store::AnyStore,
    tokens: Tokens,
    events: EventFeed,
    planner: Option<Arc<dyn Planner>>,
    heartbeat: Duration,
    /// Ends the event streams when the server stops.
    stop: CancellationToken,
    /// One spec write at a time from here, so If-Match compares with what
    /// the write replaces.
    writes: tokio::sync::Mutex<()>,
    /// The dashboard's login tokens and sessions.
    sessions: session::Sessions,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &ccd_store::SpecStore::location(&self.store))
            .finish_non_exhaustive()
    }
}

impl ApiState {
    pub fn new(store: ccd_store::AnyStore, tokens: Tokens, events: EventFeed) -> Self {
        ApiState {
            store,
            tokens,
            events,
            planner: None,
            heartbeat: Duration::from_secs(15),
            stop: CancellationToken::new(),
            writes: tokio::sync::Mutex::new(()),
            sessions: session::Sessions::default(),
        }
    }

    /// A one-time login token for the dashboard (`/login?token=...`), for
    /// a session of `scope`; printed by the process that serves the API.
    pub fn dashboard_login(&self, scope: Scope) -> Option<String> {
        self.sessions.login_token(scope)
    }

    pub fn with_planner(mut self, planner: Arc<dyn Planner>) -> Self {
        self.planner = Some(planner);
        self
    }

    /// How often a quiet event stream sends a comment line (15 s).
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

/// The API's routes, and its OpenAPI document at `/openapi.json`.
pub fn router(state: Arc<ApiState>) -> Router {
    let (routes, document) = openapi::routes();
    let document = Arc::new(document);
    routes
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/login", get(dashboard::login))
        .route("/v1/session", get(dashboard::current))
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json((*document).clone()) }
            }),
        )
        .fallback(|| async {
            error::ApiError::not_found("no such path: see /openapi.json for the API's paths")
        })
        .layer(axum::middleware::map_response(explain_405))
        .layer(DefaultBodyLimit::max(
            usize::try_from(ccd_store::MAX_SPEC_BYTES).unwrap_or(usize::MAX),
        ))
        .with_state(state)
}

/// axum's 405 names the allowed methods in `Allow` and says nothing else:
/// the body says it in words too, as every other refusal does (the header
/// is axum's, added after this).
async fn explain_405(response: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let mut explained = error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method: `Allow` names those it takes; see /openapi.json",
    )
    .into_response();
    for (name, value) in response.headers() {
        if !explained.headers().contains_key(name) {
            explained.headers_mut().insert(name.clone(), value.clone());
        }
    }
    explained
}

/// Serves the API on `listener` until `stop`; open event streams end then.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let ends = state.stop.clone();
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            ends.cancel();
        })
        .await
}
