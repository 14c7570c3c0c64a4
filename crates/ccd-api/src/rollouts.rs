//! An app's rollouts (the one under way, and the history), the operator's
//! asks of it (pause, resume, promote, abort, as `ccd rollout` writes
//! them), its services, and the plan of a spec.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use ccd_controller::control::{Ask, AskError};
use ccd_controller::status::Status;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::apps::read_status;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, Authorized, RolloutPath, app_name};
use crate::tokens::Scope;

async fn status_of(api: &ApiState, name: &str) -> Result<Status, ApiError> {
    read_status(api, name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "{name} has no status: is there a spec specs/{name}.yaml, and has the controller seen it?"
        ))
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rollouts {
    /// The rollout under way, or the last one (`ccd rollout status -o json`).
    #[schema(value_type = Option<Object>)]
    rollout: Option<serde_json::Value>,
    /// Earlier rollouts, newest first.
    #[schema(value_type = Vec<Object>)]
    history: Vec<serde_json::Value>,
}

/// The rollout under way (or the last one) and the earlier ones.
#[utoipa::path(get, path = "/v1/apps/{name}/rollouts", params(AppPath),
    security(("bearer" = [])),
    responses((status = 200, body = Rollouts), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn history(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(AppPath { name }): Path<AppPath>,
) -> Result<Json<Rollouts>, ApiError> {
    let name = app_name(&name)?;
    auth.may(Scope::Read, Some(name))?;
    let status = status_of(&api, name).await?;
    Ok(Json(Rollouts {
        rollout: status
            .rollout
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok()),
        history: (status.history.iter())
            .filter_map(|h| serde_json::to_value(h).ok())
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Asked {
    /// The rollout the ask is for.
    rollout: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// Asks the rollout under way to pause, resume, promote or abort; the
/// controller acts on its next pass. 409 when no rollout is under way (or
/// an abort has nothing to go back to).
#[utoipa::path(post, path = "/v1/apps/{name}/rollout/{action}",
    params(RolloutPath),
    security(("bearer" = [])),
    responses((status = 202, body = Asked), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn control(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(RolloutPath { name, action }): Path<RolloutPath>,
) -> Result<(StatusCode, Json<Asked>), ApiError> {
    let name = app_name(&name)?;
    let Some(ask) = Ask::parse(&action) else {
        return Err(ApiError::not_found(format!(
            "{action:?} is not a rollout action: pause, resume, promote or abort"
        )));
    };
    auth.may(Scope::Deploy, Some(name))?;
    let status = status_of(&api, name).await?;
    let by = Some(format!("api:{}", auth.0.id));
    match ccd_controller::control::ask(&api.store, name, &status, ask, by).await {
        Ok(a) => Ok((
            StatusCode::ACCEPTED,
            Json(Asked {
                rollout: a.rollout,
                version: a.version,
                note: a.note,
            }),
        )),
        Err(AskError::NotNow(why)) => Err(ApiError::conflict(why)),
        Err(e @ AskError::Store { .. }) => Err(ApiError::unavailable(e)),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Services {
    /// Each service: state, endpoint, user, scope, variable names; never a value.
    #[schema(value_type = Vec<Object>)]
    services: Vec<serde_json::Value>,
}

/// The app's services (`spec.services`) as its status shows them.
#[utoipa::path(get, path = "/v1/apps/{name}/services", params(AppPath),
    security(("bearer" = [])),
    responses((status = 200, body = Services), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn services(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(AppPath { name }): Path<AppPath>,
) -> Result<Json<Services>, ApiError> {
    let name = app_name(&name)?;
    auth.may(Scope::Read, Some(name))?;
    let status = status_of(&api, name).await?;
    Ok(Json(Services {
        services: (status.services.iter())
            .filter_map(|s| serde_json::to_value(s).ok())
            .collect(),
    }))
}

/// What applying the spec in the body would change, resource by resource,
/// and the rollout it would start (`ccd plan -o json`); nothing changes.
#[utoipa::path(post, path = "/v1/apps/{name}/plan", params(AppPath),
    request_body(content = String, content_type = "application/yaml",
        description = "the spec, YAML or JSON"),
    security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn plan(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(AppPath { name }): Path<AppPath>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = app_name(&name)?;
    auth.may(Scope::Deploy, Some(name))?;
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let path = format!("specs/{name}.yaml");
    let bytes = crate::apps::as_yaml(&headers, &body, name)?;
    let app = ccd_spec::parse_file(name, &path, &bytes).map_err(|problems| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{path} is not a valid spec"),
        )
        .with_problems(problems)
    })?;
    let Some(planner) = &api.planner else {
        return Err(ApiError::unavailable(
            "this API has no cloud to plan against",
        ));
    };
    let recorded = read_status(&api, name).await?.unwrap_or_default();
    planner
        .plan(&app, &ccd_store::spec_version(&bytes), &recorded)
        .await
        .map(Json)
        .map_err(ApiError::unavailable)
}
