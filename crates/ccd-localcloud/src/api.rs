//! The Compute REST front door: every call under `/compute/v1/` is matched
//! against Google's discovery document, its query and body checked there,
//! then handed to the handler for its method.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ccd_discovery::{Api, Method, ParamType};
use serde_json::Value;

use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::paths::{self, Target};

/// One API call, parsed and checked.
#[derive(Debug)]
pub struct Call {
    pub method: &'static Method,
    pub target: Target,
    /// The path segment naming the collection, e.g. `instanceGroupManagers`
    /// (the same for zonal, regional and global variants).
    pub collection_name: String,
    pub project: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
}

impl Call {
    pub fn key(&self) -> Result<&str, ApiError> {
        self.target
            .key
            .as_deref()
            .ok_or_else(|| ApiError::invalid("this method needs a resource name in its path"))
    }

    pub fn request_id(&self) -> Option<&str> {
        self.query.get("requestId").map(String::as_str)
    }
}

pub async fn handle(
    State(cloud): State<Arc<Cloud>>,
    verb: HttpMethod,
    uri: Uri,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/compute/v1/").unwrap_or("");
    let result = async {
        cloud.faults.maybe_fail().inspect_err(|_| {
            cloud
                .calls
                .injected_faults
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })?;
        let call = parse(verb.as_str(), path, query.as_deref(), &body)?;
        let method = call.method;
        // A mutation is what answers with an Operation; POST reads such as
        // listManagedInstances and getHealth count as reads.
        let mutation = method.response.as_deref() == Some("Operation")
            && method.name != "wait"
            && !method.resource.ends_with("perations");
        let counter = if mutation {
            &cloud.calls.mutations
        } else {
            &cloud.calls.reads
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let value = crate::handlers::dispatch(&cloud, call).await?;
        cloud.check_response(method, &value);
        Ok::<_, ApiError>(value)
    }
    .await;
    match result {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => {
            if e.status.is_server_error() || e.status == StatusCode::TOO_MANY_REQUESTS {
                tracing::debug!(%verb, path, error = %e, "compute call failed");
            }
            e.into_response()
        }
    }
}

fn parse(verb: &str, path: &str, query: Option<&str>, body: &[u8]) -> Result<Call, ApiError> {
    let api = Api::compute();
    let (method, _params) = api
        .resolve(verb, path)
        .ok_or_else(|| ApiError::method_not_found(verb, path))?;
    let target = paths::target(path).ok_or_else(|| ApiError::method_not_found(verb, path))?;
    let collection_name = target
        .collection
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let project = paths::project_of(path).unwrap_or_default().to_owned();

    let mut params = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        // `$alt`, `$apiVersion`, `alt`, `prettyPrint`, `fields`... are accepted and ignored,
        // as Google's front end does for system parameters.
        if let Some(p) = method.query_parameter(&k) {
            check_param(&k, &v, p.kind, &p.enum_values)?;
        }
        params.insert(k.into_owned(), v.into_owned());
    }
    for p in method
        .parameters
        .iter()
        .filter(|p| p.required && p.location == ccd_discovery::Location::Query)
    {
        if !params.contains_key(&p.name) {
            return Err(ApiError::required(&p.name));
        }
    }

    let body = match &method.request {
        None => Value::Null,
        Some(schema) => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(ApiError::required("resource"));
            }
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))?;
            if !value.is_object() {
                return Err(ApiError::invalid(
                    "Invalid JSON payload received. The request body must be a JSON object.",
                ));
            }
            api.check_request(schema, &value).map_err(|errors| {
                let text: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
                ApiError::invalid(text.join("; "))
            })?;
            value
        }
    };
    Ok(Call {
        method,
        target,
        collection_name,
        project,
        query: params,
        body,
    })
}

fn check_param(
    name: &str,
    value: &str,
    kind: ParamType,
    allowed: &[String],
) -> Result<(), ApiError> {
    let ok = match kind {
        ParamType::Integer => value.parse::<i64>().is_ok(),
        ParamType::Boolean => value == "true" || value == "false",
        _ => true,
    };
    if !ok {
        return Err(ApiError::invalid(format!(
            "Invalid value for field '{name}': '{value}'. Must be {kind:?}."
        )));
    }
    if !allowed.is_empty() && !allowed.iter().any(|a| a == value) {
        return Err(ApiError::invalid(format!(
            "Invalid value for field '{name}': '{value}'. Must be one of {}.",
            allowed.join(", ")
        )));
    }
    Ok(())
}
