//! Which handler serves which method.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::{generic, list, migs, runtime};

pub async fn dispatch(cloud: &Arc<Cloud>, call: Call) -> Result<Value, ApiError> {
    let resource = call.method.resource.as_str();
    let name = call.method.name.as_str();
    let is_operations = resource.ends_with("perations");
    // The default network (and the region's default subnetwork) exist from
    // the start, as in a new Compute Engine project.
    let region = call
        .target
        .scope
        .split_once("/regions/")
        .map(|(_, r)| r.split('/').next().unwrap_or(r));
    crate::defaults::seed_default_network(cloud, &call.project, region);
    if resource == "zones" || resource == "regions" {
        return crate::geo::answer(cloud, &call);
    }
    // A retried mutation gets its first operation back (Compute's requestId).
    if let Some(id) = call
        .request_id()
        .filter(|_| call.method.query_parameter("requestId").is_some())
        && let Some(op) = cloud.replayed(&call.project, id)?
    {
        return Ok(op);
    }
    match name {
        "get" => generic::get(cloud, &call).await,
        "list" => list::list(cloud, &call).await,
        "aggregatedList" => list::aggregated(cloud, &call).await,
        "wait" if is_operations => {
            let key = call.key()?;
            cloud.wait_operation(key, Duration::from_secs(120)).await
        }
        "delete" if is_operations => {
            let key = call.key()?;
            cloud
                .store
                .get(key)
                .ok_or_else(|| ApiError::not_found(key))?;
            cloud.store.delete(key);
            Ok(Value::Object(Default::default()))
        }
        "insert" if !is_operations => generic::insert(cloud, &call).await,
        "delete" => generic::delete(cloud, &call).await,
        "patch" => generic::modify(cloud, &call, true).await,
        "update" => generic::modify(cloud, &call, false).await,
        _ => match call.collection_name.as_str() {
            "instanceGroupManagers" => migs::verb(cloud, &call).await,
            "instanceGroups" => runtime::groups::group_verb(cloud, &call).await,
            "instances" => runtime::instances::verb(cloud, &call).await,
            "backendServices" if name == "getHealth" => runtime::lb::get_health(cloud, &call),
            "targetHttpsProxies" | "targetHttpProxies" | "forwardingRules" => {
                runtime::lb::set_verb(cloud, &call).await
            }
            _ => Err(not_implemented(resource, name)),
        },
    }
}

pub fn not_implemented(resource: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "notImplemented",
        format!("The local cloud does not implement {resource}.{name}"),
    )
}
