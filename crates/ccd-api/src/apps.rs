//! `/v1/apps`: the apps (slim rows, a page at a time), one app's spec and
//! status, applying a spec (exactly as dropping the file into the store
//! does) and deleting one.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ccd_controller::status::Status;
use ccd_store::SpecStore as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, Authorized, Query, app_name};
use crate::tokens::Scope;

/// Most rows a page holds.
pub const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows per page, 1 to 500 (default 100).
    limit: Option<usize>,
    /// The last name of the previous page: this page starts after it.
    after: Option<String>,
    /// Only apps in this phase (`Progressing`, `Ready`, `Degraded`, `Stalled`).
    phase: Option<String>,
    /// Only apps with this label, `KEY=VALUE`.
    label: Option<String>,
}

/// One app, as a table shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRow {
    name: String,
    /// `Progressing`, `Ready`, `Degraded`, `Stalled`; absent before the
    /// controller's first pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
    /// The version the spec asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    instances: Instances,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_rollout: Option<RolloutRow>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Instances {
    healthy: usize,
    total: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRow {
    id: String,
    state: String,
    version: String,
    /// Probe requests that failed during the rollout, of `probes`.
    failed_probes: u64,
    probes: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppPage {
    apps: Vec<AppRow>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The apps the caller's token reaches, a page at a time, sorted by name.
#[utoipa::path(get, path = "/v1/apps", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = AppPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Query(params): Query<ListParams>,
) -> Result<Json<AppPage>, ApiError> {
    auth.may(Scope::Read, None)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: a page holds 1 to {MAX_PAGE} apps"
        )));
    }
    let label = match params.label.as_deref() {
        None => None,
        Some(l) => Some(l.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!(
                "label={l:?}: write KEY=VALUE, e.g. label=team=shop"
            ))
        })?),
    };
    if let Some(p) = params.phase.as_deref()
        && !["Progressing", "Ready", "Degraded", "Stalled"].contains(&p)
    {
        return Err(ApiError::bad_request(format!(
            "phase={p:?}: one of Progressing, Ready, Degraded, Stalled"
        )));
    }
    let listing = api
        .store
        .list_specs()
        .await
        .map_err(ApiError::unavailable)?;
    let mut names: Vec<String> = listing.specs.iter().map(|s| s.name.clone()).collect();
    names.extend(
        api.store
            .list_statuses()
            .await
            .map_err(ApiError::unavailable)?,
    );
    names.sort();
    names.dedup();
    let after = params.after.unwrap_or_default();
    let mut rows = Vec::new();
    let mut next = None;
    for name in names
        .into_iter()
        .filter(|n| *n > after && auth.0.reaches(n))
    {
        if let Some((key, value)) = label {
            let spec = listing.specs.iter().find(|s| s.name == name);
            let labelled = spec
                .and_then(|s| ccd_spec::parse_bytes(&s.bytes).ok())
                .is_some_and(|app| app.metadata.labels.get(key).map(String::as_str) == Some(value));
            if !labelled {
                continue;
            }
        }
        let status = read_status(&api, &name).await?;
        let row = row(&name, status.as_ref());
        if params
            .phase
            .as_deref()
            .is_some_and(|p| row.phase.as_deref() != Some(p))
        {
            continue;
        }
        if rows.len() == limit {
            next = rows.last().map(|r: &AppRow| r.name.clone());
            break;
        }
        rows.push(row);
    }
    Ok(Json(AppPage { apps: rows, next }))
}

fn row(name: &str, status: Option<&Status>) -> AppRow {
    AppRow {
        name: name.to_owned(),
        phase: status.map(|s| s.phase.as_str().to_owned()),
        version: status.and_then(|s| s.revision.as_ref().map(|r| r.version.clone())),
        instances: Instances {
            healthy: status.map_or(0, |s| {
                s.instances.iter().filter(|i| i.health == "Healthy").count()
            }),
            total: status.map_or(0, |s| s.instances.len()),
        },
        endpoint: status.and_then(|s| s.endpoints.first().cloned()),
        last_rollout: status.and_then(|s| s.rollout.as_ref()).map(|r| RolloutRow {
            id: r.id.clone(),
            state: format!("{:?}", r.state),
            version: r.to.version.clone(),
            failed_probes: r.probes.failed,
            probes: r.probes.sent,
        }),
    }
}

/// An app's status, `None` before the controller's first pass.
pub(crate) async fn read_status(api: &ApiState, app: &str) -> Result<Option<Status>, ApiError> {
    let Some(bytes) = api
        .store
        .read_status(app)
        .await
        .map_err(ApiError::unavailable)?
    else {
        return Ok(None);
    };
    Status::read(&bytes)
        .map(Some)
        .map_err(|e| ApiError::unavailable(format!("status/{app}.yaml: {e}")))
}

/// An app's spec (as stored, and as data) and status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDetail {
    name: String,
    /// The spec file's content hash: send it as `If-Match` to apply only
    /// over this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    spec_version: Option<String>,
    /// The spec file as stored (YAML).
    #[serde(skip_serializing_if = "Option::is_none")]
    spec_yaml: Option<String>,
    /// The spec as data; absent when the stored file does not parse.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    spec: Option<serde_json::Value>,
    /// The controller's status of the app (its shape: `ccd status -o json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    status: Option<serde_json::Value>,
}

/// One app: its spec and status; 404 when it has neither.
#[utoipa::path(get, path = "/v1/apps/{name}", params(AppPath),
    security(("bearer" = [])),
    responses((status = 200, body = AppDetail), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(AppPath { name }): Path<AppPath>,
) -> Result<Response, ApiError> {
    let name = app_name(&name)?;
    auth.may(Scope::Read, Some(name))?;
    let spec = api
        .store
        .get_spec(name)
        .await
        .map_err(ApiError::unavailable)?;
    let status = read_status(&api, name).await?;
    if spec.is_none() && status.is_none() {
        return Err(ApiError::not_found(format!(
            "no app {name}: no spec specs/{name}.yaml"
        )));
    }
    let version = spec.as_ref().map(|s| ccd_store::spec_version(&s.bytes));
    let detail = AppDetail {
        name: name.to_owned(),
        spec_version: version.clone(),
        spec_yaml: spec
            .as_ref()
            .map(|s| String::from_utf8_lossy(&s.bytes).into_owned()),
        spec: spec
            .as_ref()
            .and_then(|s| ccd_spec::document::from_yaml(&s.bytes).ok()),
        status: status.and_then(|s| serde_json::to_value(s).ok()),
    };
    let mut response = Json(detail).into_response();
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    name: String,
    spec_version: String,
    /// The app did not exist before.
    created: bool,
    /// The stored spec already was this one: nothing changed.
    unchanged: bool,
}

/// Applies a spec (YAML, or JSON as `ccd schema` describes it): written to
/// `specs/NAME.yaml` exactly as a file dropped there, after the checks
/// `ccd validate` makes (422 with every located problem, nothing written).
/// `If-Match` with the spec version read refuses a lost update (412).
#[utoipa::path(put, path = "/v1/apps/{name}", params(AppPath),
    request_body(content = String, content_type = "application/yaml",
        description = "the spec, YAML or JSON"),
    security(("bearer" = [])),
    responses((status = 200, body = Applied), (status = 201, body = Applied),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(AppPath { name }): Path<AppPath>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let name = app_name(&name)?;
    auth.may(Scope::Deploy, Some(name))?;
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let path = format!("specs/{name}.yaml");
    let bytes = as_yaml(&headers, &body, name)?;
    if let Err(problems) = ccd_spec::parse_file(name, &path, &bytes) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{path} is not a valid spec: nothing was written, the running revision is untouched"
            ),
        )
        .with_problems(problems));
    }
    // One writer at a time here, so that If-Match compares with what is
    // replaced (writers elsewhere, git or a person, are the store's to order).
    let _one = api.writes.lock().await;
    let current = api
        .store
        .get_spec(name)
        .await
        .map_err(ApiError::unavailable)?;
    let current_version = current.as_ref().map(|s| ccd_store::spec_version(&s.bytes));
    if let Some(expected) = headers.get(header::IF_MATCH) {
        let expected = expected
            .to_str()
            .unwrap_or_default()
            .trim()
            .trim_matches('"');
        let matches = match &current_version {
            Some(v) => expected == "*" || expected == v,
            None => false,
        };
        if !matches {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "If-Match {expected:?}: {path} is now {}; read it again (GET /v1/apps/{name}) and apply over that",
                    current_version.as_deref().unwrap_or("absent")
                ),
            ));
        }
    }
    refuse_if_git_managed(&api, name).await?;
    let wrote = api
        .store
        .write_spec(name, &bytes)
        .await
        .map_err(ApiError::unavailable)?;
    let applied = Applied {
        name: name.to_owned(),
        spec_version: ccd_store::spec_version(&bytes),
        created: current.is_none(),
        unchanged: !wrote,
    };
    tracing::info!(app = name, token = %auth.0.id, version = %applied.spec_version, "spec applied through the API");
    let code = if applied.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(applied)).into_response())
}

/// The body as YAML: JSON (by its content type, or its first character) is
/// written as the YAML it means, so the store holds one format.
pub(crate) fn as_yaml(headers: &HeaderMap, body: &[u8], name: &str) -> Result<Vec<u8>, ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let starts_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !(json_type || starts_json) {
        return Ok(body.to_vec());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the body is not JSON ({e}); send the spec as YAML or JSON"),
        )
        .with_problems(vec![format!(
            "specs/{name}.yaml:{}:{}: {e}",
            e.line(),
            e.column()
        )])
    })?;
    Ok(
        ccd_spec::document::to_yaml(&format!("{name}, applied through ccd's API."), &value)
            .into_bytes(),
    )
}

/// An app whose spec `ccd sync` wrote from git is changed in git: an API
/// write would be undone by the next sync.
async fn refuse_if_git_managed(api: &ApiState, name: &str) -> Result<(), ApiError> {
    if let Some(status) = read_status(api, name).await?
        && let Some(origin) = &status.source
    {
        return Err(ApiError::conflict(format!(
            "{name} is managed by git ({} in commit {}): change it there, or remove it from the repository first",
            origin.path, origin.commit
        )));
    }
    Ok(())
}

/// Deletes an app's spec: the controller removes what it runs, as when the
/// file is deleted.
#[utoipa::path(delete, path = "/v1/apps/{name}", params(AppPath),
    security(("bearer" = [])),
    responses((status = 202, description = "the spec is gone; the controller removes the app"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Path(AppPath { name }): Path<AppPath>,
) -> Result<StatusCode, ApiError> {
    let name = app_name(&name)?;
    auth.may(Scope::Deploy, Some(name))?;
    let _one = api.writes.lock().await;
    if api
        .store
        .get_spec(name)
        .await
        .map_err(ApiError::unavailable)?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "no app {name}: no spec specs/{name}.yaml"
        )));
    }
    refuse_if_git_managed(&api, name).await?;
    api.store
        .delete_spec(name)
        .await
        .map_err(ApiError::unavailable)?;
    tracing::info!(app = name, token = %auth.0.id, "spec deleted through the API");
    Ok(StatusCode::ACCEPTED)
}
