//! What differs between collections: defaults and checks on admission,
//! resources made or removed alongside, and fields computed on read.

use std::sync::Arc;

use ccd_discovery::{Api, Method};
use serde_json::Value;

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::{defaults, migs};

/// The resource schema of a method's collection (`InstanceGroupManager`).
pub fn schema_of(method: &Method) -> Option<&'static str> {
    let get = Api::compute().method(&format!("compute.{}.get", method.resource))?;
    get.response.as_deref()
}

fn compute_kind(schema: &str) -> String {
    let mut chars = schema.chars();
    let first = chars
        .next()
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    format!("compute#{first}{}", chars.as_str())
}

/// The kind of what `method` answers (`compute#healthChecksAggregatedList`).
pub fn response_kind_of(method: &Method) -> String {
    compute_kind(method.response.as_deref().unwrap_or("ResourceList"))
}

/// `compute#instanceGroupManager` for any method of that collection.
pub fn kind_of(method: &Method) -> String {
    compute_kind(schema_of(method).unwrap_or("Resource"))
}

/// `compute#instanceGroupManagerList`.
pub fn list_kind_of(method: &Method) -> String {
    let list = Api::compute()
        .method(&format!("compute.{}.list", method.resource))
        .and_then(|m| m.response.as_deref())
        .unwrap_or("ResourceList");
    compute_kind(list)
}

/// Fills defaults and checks a resource about to be stored. `old` is the
/// stored version on patch and update.
pub fn admit(
    cloud: &Cloud,
    call: &Call,
    key: &str,
    old: Option<&Value>,
    res: &mut Value,
) -> Result<(), ApiError> {
    match call.collection_name.as_str() {
        "instanceTemplates" => defaults::instance_template(res),
        "instanceGroupManagers" => migs::admit(cloud, call, key, old, res),
        "healthChecks" => defaults::health_check(res),
        "backendServices" => defaults::backend_service(res),
        "urlMaps" => defaults::url_map(res),
        "firewalls" => defaults::firewall(cloud, &call.project, res),
        "forwardingRules" => defaults::forwarding_rule(cloud, &call.project, res),
        "sslCertificates" => defaults::ssl_certificate(res),
        "instances" if old.is_none() => defaults::instance(cloud, call, key, res),
        "addresses" if old.is_none() => defaults::address(cloud, res),
        _ => Ok(()),
    }
}

pub fn after_insert(cloud: &Cloud, collection: &str, key: &str, res: &Value) {
    if collection == "instanceGroupManagers" {
        migs::after_insert(cloud, key, res);
    }
}

pub fn before_delete(
    cloud: &Cloud,
    collection: &str,
    key: &str,
    res: &Value,
) -> Result<(), ApiError> {
    if collection == "instanceGroupManagers" {
        migs::before_delete(cloud, key, res)?;
    }
    Ok(())
}

pub fn after_delete(cloud: &Cloud, collection: &str, key: &str, res: &Value) {
    if collection == "instanceGroupManagers" {
        migs::after_delete(cloud, key, res);
    }
}

/// The resource as a client sees it.
pub fn render(cloud: &Arc<Cloud>, collection: &str, key: &str, stored: &Value) -> Value {
    let mut out = stored.clone();
    match collection {
        "instanceGroupManagers" => migs::render(cloud, key, &mut out),
        "instanceGroups" => migs::render_group(cloud, key, &mut out),
        "sslCertificates" => {
            // Input only: a private key is never sent back.
            if let Some(obj) = out.as_object_mut() {
                obj.remove("privateKey");
            }
        }
        _ => {}
    }
    out
}
