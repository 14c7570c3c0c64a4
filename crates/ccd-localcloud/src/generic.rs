//! The standard methods every collection shares: get, list, insert, delete,
//! patch and update, with Compute's semantics (409 on a taken name, 412 on a
//! stale fingerprint, 400 when deleting something still in use).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::ops::OpRequest;
use crate::{clock, kinds, paths, refs};

pub async fn get(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let key = call.key()?;
    let stored = cloud
        .store
        .get(key)
        .ok_or_else(|| ApiError::not_found(key))?;
    Ok(kinds::render(cloud, &call.collection_name, key, &stored))
}

pub async fn insert(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let mut resource = call.body.clone();
    let name = resource["name"]
        .as_str()
        .ok_or_else(|| ApiError::required("resource.name"))?
        .to_owned();
    if !paths::valid_name(&name) {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'resource.name': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
        )));
    }
    let key = format!("{}{name}", call.target.collection);
    if cloud.store.get(&key).is_some() {
        return Err(ApiError::already_exists(&key));
    }
    strip_output_fields(&mut resource);
    resolve_references(cloud, call, &mut resource)?;
    kinds::admit(cloud, call, &key, None, &mut resource)?;
    let id = clock::new_id();
    resource["id"] = id.clone().into();
    resource["creationTimestamp"] = clock::now_rfc3339().into();
    resource["selfLink"] = cloud.link(&key).into();
    resource["kind"] = kinds::kind_of(call.method).into();
    if let Some((field, scope)) = paths::scope_field(&call.target.scope) {
        resource[field] = cloud.link(&scope).into();
    }
    set_fingerprint(call, &mut resource);

    let collection = call.collection_name.clone();
    let op = OpRequest {
        scope: &call.target.scope,
        operation_type: "insert",
        target: &key,
        request_id: call.request_id(),
    };
    let key2 = key.clone();
    cloud
        .operation(
            op,
            Box::new(move |cloud| {
                cloud.store.update(&key2, |old| match old {
                    Some(_) => Err(ApiError::already_exists(&key2)),
                    None => Ok(Some(resource.clone())),
                })?;
                kinds::after_insert(cloud, &collection, &key2, &resource);
                Ok(Some(id))
            }),
        )
        .await
}

pub async fn delete(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let key = call.key()?.to_owned();
    let stored = cloud
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    check_not_in_use(cloud, &key)?;
    kinds::before_delete(cloud, &call.collection_name, &key, &stored)?;
    let id = stored["id"].as_str().map(str::to_owned);
    let collection = call.collection_name.clone();
    let op = OpRequest {
        scope: &call.target.scope,
        operation_type: "delete",
        target: &key,
        request_id: call.request_id(),
    };
    let key2 = key.clone();
    cloud
        .operation(
            op,
            Box::new(move |cloud| {
                check_not_in_use(cloud, &key2)?;
                let mut removed = None;
                cloud.store.update(&key2, |old| {
                    removed = old.cloned();
                    old.map(|_| None).ok_or_else(|| ApiError::not_found(&key2))
                })?;
                if let Some(removed) = removed {
                    kinds::after_delete(cloud, &collection, &key2, &removed);
                }
                Ok(id)
            }),
        )
        .await
}

/// `patch` merges (RFC 7386, lists replaced whole); `update` replaces.
pub async fn modify(cloud: &Arc<Cloud>, call: &Call, merge: bool) -> Result<Value, ApiError> {
    let key = call.key()?.to_owned();
    let stored = cloud
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    check_fingerprint(&key, &stored, &call.body)?;
    let mut change = call.body.clone();
    strip_output_fields(&mut change);
    resolve_references(cloud, call, &mut change)?;
    let mut next = if merge {
        let mut next = (*stored).clone();
        merge_patch(&mut next, &change);
        next
    } else {
        let mut next = change;
        for field in [
            "id",
            "creationTimestamp",
            "selfLink",
            "kind",
            "zone",
            "region",
            "name",
            "status",
        ] {
            if let Some(v) = stored.get(field) {
                next[field] = v.clone();
            }
        }
        next
    };
    if next["name"] != stored["name"] {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource.name': a resource cannot be renamed.",
        ));
    }
    kinds::admit(cloud, call, &key, Some(&stored), &mut next)?;
    set_fingerprint(call, &mut next);
    let id = stored["id"].as_str().map(str::to_owned);
    let expected = stored["fingerprint"].clone();
    let op_type = if merge { "patch" } else { "update" };
    let op = OpRequest {
        scope: &call.target.scope,
        operation_type: op_type,
        target: &key,
        request_id: call.request_id(),
    };
    let key2 = key.clone();
    cloud
        .operation(
            op,
            Box::new(move |cloud| {
                cloud.store.update(&key2, |old| match old {
                    None => Err(ApiError::not_found(&key2)),
                    Some(old) if old["fingerprint"] != expected => {
                        Err(ApiError::stale_fingerprint(&key2))
                    }
                    Some(_) => Ok(Some(next)),
                })?;
                Ok(id)
            }),
        )
        .await
}

/// Output-only fields a client may echo back; the server owns them.
fn strip_output_fields(resource: &mut Value) {
    if let Some(obj) = resource.as_object_mut() {
        for field in [
            "id",
            "creationTimestamp",
            "selfLink",
            "kind",
            "status",
            "selfLinkWithId",
        ] {
            obj.remove(field);
        }
    }
}

/// A fingerprint sent with a change must match the stored one.
pub fn check_fingerprint(key: &str, stored: &Value, body: &Value) -> Result<(), ApiError> {
    match body.get("fingerprint").and_then(Value::as_str) {
        Some(sent) if Some(sent) != stored["fingerprint"].as_str() => {
            Err(ApiError::stale_fingerprint(key))
        }
        _ => Ok(()),
    }
}

/// Resources with a `fingerprint` field get a new one on every change.
fn set_fingerprint(call: &Call, resource: &mut Value) {
    let has = ccd_discovery::Api::compute()
        .schema(kinds::schema_of(call.method).unwrap_or_default())
        .is_some_and(|s| matches!(s, ccd_discovery::Schema::Object { properties, .. } if properties.contains_key("fingerprint")));
    if has {
        if let Some(obj) = resource.as_object_mut() {
            obj.remove("fingerprint");
        }
        let digest = Sha256::digest(serde_json::to_vec(resource).unwrap_or_default());
        let stamp = clock::new_id();
        let mut h = Sha256::new();
        h.update(digest);
        h.update(stamp.as_bytes());
        resource["fingerprint"] = fingerprint_text(&h.finalize()[..8]).into();
    }
}

/// Fingerprints are `format: byte`: URL-safe base64 with padding, as the
/// discovery document defines it (the official SDK decodes them only so).
pub fn fingerprint_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// Checks that every reference names an existing resource and stores it as a full link.
fn resolve_references(cloud: &Cloud, call: &Call, resource: &mut Value) -> Result<(), ApiError> {
    let mut missing = None;
    for path in refs::reference_fields(&call.collection_name) {
        refs::for_each_at(resource, path, &mut |s| {
            if s.is_empty() {
                return;
            }
            let key = paths::normalize(s, &call.project);
            if cloud.store.get(&key).is_none() && missing.is_none() {
                missing = Some(key.clone());
            }
            *s = cloud.link(&key);
        });
    }
    match missing {
        Some(key) => Err(ApiError::not_found(&key)),
        None => Ok(()),
    }
}

/// Refuses to delete what another resource still names.
fn check_not_in_use(cloud: &Cloud, key: &str) -> Result<(), ApiError> {
    let link = cloud.link(key);
    let project = paths::project_of(key).unwrap_or_default();
    let collection_of = |k: &str| k.rsplit('/').nth(1).unwrap_or_default().to_owned();
    let mut referrers = cloud.store.scan(&format!("projects/{project}/"), |k| {
        k != key && !refs::reference_fields(&collection_of(k)).is_empty()
    });
    referrers.retain(|(k, v)| refs::references(&collection_of(k), v).contains(&link));
    match referrers.first() {
        Some((by, _)) => Err(ApiError::in_use(key, by)),
        None => Ok(()),
    }
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// An empty list response body.
pub fn list_body(kind: String, self_link: String) -> Value {
    json!({"kind": kind, "id": self_link.clone(), "selfLink": self_link})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_replaces_lists_and_removes_nulls() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"b": {"c": null, "e": 4}, "l": [9]}));
        assert_eq!(v, json!({"a": 1, "b": {"d": 3, "e": 4}, "l": [9]}));
    }
}
