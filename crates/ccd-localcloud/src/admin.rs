//! The admin endpoint, outside `/compute/v1`: fault injection, crashes on
//! demand, and what the local cloud knows about itself.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::cloud::Cloud;
use crate::faults::FaultConfig;
use crate::runtime::instances::Instances;

#[derive(Clone, Debug)]
pub struct AdminState {
    pub cloud: Arc<Cloud>,
    pub instances: Instances,
}

pub fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/faults", get(get_faults).put(put_faults))
        .route(
            "/admin/v1/projects/{project}/zones/{zone}/instances/{name}/crash",
            post(crash),
        )
        .route("/admin/v1/status", get(status))
        .route("/admin/v1/listeners", get(listeners))
        .with_state(state)
}

async fn get_faults(State(s): State<AdminState>) -> Json<FaultConfig> {
    Json(s.cloud.faults.get())
}

async fn put_faults(State(s): State<AdminState>, body: axum::body::Bytes) -> Response {
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response();
        }
    };
    if let Err(e) = config.check() {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    }
    tracing::info!(?config, "fault injection changed");
    s.cloud.faults.set(config.clone());
    Json(config).into_response()
}

async fn crash(
    State(s): State<AdminState>,
    Path((project, zone, name)): Path<(String, String, String)>,
) -> Response {
    let key = format!("projects/{project}/zones/{zone}/instances/{name}");
    if s.cloud.store.get(&key).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no instance {key}")})),
        )
            .into_response();
    }
    match s.instances.crash(&key).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"crashed": key}))).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e}))).into_response(),
    }
}

/// Where each forwarding rule listens (privileged ports may be moved up).
async fn listeners(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(json!({"listeners": s.cloud.balancers.listeners()}))
}

async fn status(State(s): State<AdminState>) -> Json<serde_json::Value> {
    let instances = s
        .cloud
        .store
        .keys("projects/", |k| k.contains("/instances/"))
        .len();
    let calls = &s.cloud.calls;
    let reads = calls.reads.load(std::sync::atomic::Ordering::Relaxed);
    let mutations = calls.mutations.load(std::sync::atomic::Ordering::Relaxed);
    let injected = calls
        .injected_faults
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(
        json!({"resources": s.cloud.store.len(), "instances": instances, "faults": s.cloud.faults.get(),
        "calls": {"reads": reads, "mutations": mutations, "injectedFaults": injected}}),
    )
}
