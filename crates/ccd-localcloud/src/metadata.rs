//! The metadata server instances read their configuration from, with the
//! paths of Compute's (`/computeMetadata/v1/...`, header `Metadata-Flavor:
//! Google`). On a VM the server knows the caller by its address; here each
//! instance is told `GCE_METADATA_HOST=ADDR/instances/ZONE/NAME`, which
//! clients (the official auth library included) prefix to every path, so the
//! server knows which instance asks. Calls without that prefix are answered
//! for the instance whose address they come from, if any.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::paths;

const FLAVOR: &str = "Metadata-Flavor";

pub fn router(cloud: Arc<Cloud>) -> axum::Router {
    axum::Router::new()
        .route(
            "/instances/{zone}/{name}/computeMetadata/v1/{*path}",
            get(for_named),
        )
        .route("/computeMetadata/v1/{*path}", get(for_caller))
        .with_state(cloud)
}

#[derive(Debug, serde::Deserialize)]
struct Params {
    #[serde(default)]
    recursive: Option<String>,
    #[serde(default)]
    alt: Option<String>,
}

async fn for_named(
    State(cloud): State<Arc<Cloud>>,
    Path((zone, name, path)): Path<(String, String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let found = cloud.store.scan("projects/", |k| {
        k.ends_with(&format!("/zones/{zone}/instances/{name}"))
    });
    answer(
        &cloud,
        found.first().map(|(_, v)| v.clone()),
        &path,
        &params,
        &headers,
    )
}

async fn for_caller(
    State(cloud): State<Arc<Cloud>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let ip = peer.ip().to_string();
    let mut found = cloud.store.scan("projects/", |k| k.contains("/instances/"));
    found.retain(|(_, v)| v["networkInterfaces"][0]["networkIP"].as_str() == Some(ip.as_str()));
    answer(
        &cloud,
        found.first().map(|(_, v)| v.clone()),
        &path,
        &params,
        &headers,
    )
}

fn answer(
    cloud: &Cloud,
    instance: Option<Arc<Value>>,
    path: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    if headers.get(FLAVOR).and_then(|v| v.to_str().ok()) != Some("Google") {
        return (
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"\n",
        )
            .into_response();
    }
    let Some(instance) = instance else {
        return (
            StatusCode::NOT_FOUND,
            "not found: the caller is not a known instance\n",
        )
            .into_response();
    };
    let key = instance["selfLink"]
        .as_str()
        .map(|l| cloud.key_of(l))
        .unwrap_or_default();
    let project = paths::project_of(&key).unwrap_or_default().to_owned();
    let attributes: serde_json::Map<String, Value> = instance["metadata"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i["key"].as_str()?.to_owned(), i["value"].clone())))
        .collect();
    let zone = instance["zone"].as_str().map_or("", paths::name_of);
    // The account the instance runs as, when its template names one.
    let email = instance
        .pointer("/serviceAccounts/0/email")
        .and_then(Value::as_str)
        .filter(|e| e.contains('@'))
        .map_or_else(
            || format!("local@{project}.iam.gserviceaccount.com"),
            str::to_owned,
        );
    let tree = json!({
        "instance": {
            "id": instance["id"],
            "name": instance["name"],
            "hostname": format!("{}.{zone}.c.{project}.internal", instance["name"].as_str().unwrap_or_default()),
            "zone": format!("projects/{project}/zones/{zone}"),
            "machine-type": instance["machineType"],
            "attributes": attributes,
            "network-interfaces": [{"ip": instance["networkInterfaces"][0]["networkIP"]}],
            "tags": instance["tags"]["items"].clone(),
            "service-accounts": {"default": {
                "email": email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                // No Google account here: the token is a placeholder the local
                // cloud and emulators accept, shaped as Google's.
                "token": {"access_token": format!("local-token-{}", instance["id"].as_str().unwrap_or_default()), "expires_in": 3599, "token_type": "Bearer"},
            }},
        },
        "project": {"project-id": project, "numeric-project-id": "0"},
        "universe": {"universe-domain": "googleapis.com"},
    });
    let mut node = &tree;
    for seg in path
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
    {
        let next = match node {
            Value::Object(map) => map.get(seg),
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
        }
    }
    let json_wanted = params.alt.as_deref() == Some("json") || path.ends_with("/token");
    let recursive = params.recursive.as_deref() == Some("true");
    let body = match node {
        Value::String(s) if !json_wanted => s.clone(),
        Value::Object(map) if !recursive && !json_wanted => map
            .iter()
            .map(|(k, v)| {
                if v.is_object() || v.is_array() {
                    format!("{k}/\n")
                } else {
                    format!("{k}\n")
                }
            })
            .collect(),
        Value::Array(items) if !recursive && !json_wanted => {
            (0..items.len()).map(|i| format!("{i}/\n")).collect()
        }
        other => other.to_string(),
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(FLAVOR, HeaderValue::from_static("Google"));
    if json_wanted || recursive {
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
    }
    response
}
