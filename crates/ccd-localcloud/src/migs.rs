//! Managed instance groups at the API: admission and defaults, the group's
//! instance-group twin, status computed on read, and the imperative verbs.
//! The group's instances are made and replaced by `runtime::groups`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::managed::{self, Action, Managed};
use crate::ops::OpRequest;
use crate::{clock, paths};

pub fn admit(
    cloud: &Cloud,
    call: &Call,
    key: &str,
    old: Option<&Value>,
    res: &mut Value,
) -> Result<(), ApiError> {
    let creating = old.is_none();
    if creating && res.get("baseInstanceName").is_none() {
        res["baseInstanceName"] = paths::name_of(key).into();
    }
    let base = res["baseInstanceName"].as_str().unwrap_or_default();
    if base.len() > 58 || !paths::valid_name(base) {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'resource.baseInstanceName': '{base}'. Must be a lowercase name of at most 58 characters."
        )));
    }
    let size = res.get("targetSize").map(|s| {
        s.as_i64()
            .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
    });
    match size {
        None if creating => return Err(ApiError::required("resource.targetSize")),
        Some(Some(n)) if !(0..=1000).contains(&n) => {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.targetSize': '{n}'. Must be 0 to 1000."
            )));
        }
        Some(None) => {
            return Err(ApiError::invalid(
                "Invalid value for field 'resource.targetSize'.",
            ));
        }
        _ => {}
    }
    if let Some(Some(n)) = size {
        res["targetSize"] = n.into();
    }
    // One of instanceTemplate and versions; versions win, and exactly one of
    // them leaves targetSize unset to take the remaining instances.
    let versions = res
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        let template = res["instanceTemplate"]
            .as_str()
            .ok_or_else(|| ApiError::required("resource.instanceTemplate"))?;
        res["versions"] = json!([{"instanceTemplate": template}]);
    } else {
        let open = versions
            .iter()
            .filter(|v| v.get("targetSize").is_none())
            .count();
        if open != 1 {
            return Err(ApiError::invalid(
                "Invalid value for field 'resource.versions': exactly one version must leave targetSize unset.",
            ));
        }
        for (i, v) in versions.iter().enumerate() {
            if v["instanceTemplate"].as_str().is_none() {
                return Err(ApiError::required(&format!(
                    "resource.versions[{i}].instanceTemplate"
                )));
            }
        }
        if versions.len() == 1 {
            res["instanceTemplate"] = versions[0]["instanceTemplate"].clone();
        }
    }
    let policy = res
        .get("updatePolicy")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let zones = zone_count(res);
    let mut policy = policy;
    for (field, value) in [
        ("type", json!("PROACTIVE")),
        ("minimalAction", json!("REPLACE")),
        ("replacementMethod", json!("SUBSTITUTE")),
        ("maxSurge", json!({"fixed": zones})),
        ("maxUnavailable", json!({"fixed": zones})),
    ] {
        if policy.get(field).is_none() {
            policy[field] = value;
        }
    }
    let (surge, unavailable) = (
        fixed_or_percent(&policy["maxSurge"], 100),
        fixed_or_percent(&policy["maxUnavailable"], 100),
    );
    if surge == 0 && unavailable == 0 && policy["type"] == "PROACTIVE" {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource.updatePolicy': maxSurge and maxUnavailable cannot both be 0.",
        ));
    }
    if policy["replacementMethod"] == "RECREATE" && surge > 0 {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource.updatePolicy.maxSurge': must be 0 with replacementMethod RECREATE.",
        ));
    }
    res["updatePolicy"] = policy;
    if let Some(policies) = res.get("autoHealingPolicies").and_then(Value::as_array) {
        if policies.len() > 1 {
            return Err(ApiError::invalid(
                "Invalid value for field 'resource.autoHealingPolicies': only one policy is supported.",
            ));
        }
        if let Some(delay) = policies.first().and_then(|p| p["initialDelaySec"].as_i64())
            && !(0..=3600).contains(&delay)
        {
            return Err(ApiError::invalid(
                "Invalid value for field 'resource.autoHealingPolicies[0].initialDelaySec': must be 0 to 3600.",
            ));
        }
    }
    let group_scope = &call.target.scope;
    res["instanceGroup"] = cloud
        .link(&format!(
            "{group_scope}/instanceGroups/{}",
            paths::name_of(key)
        ))
        .into();
    Ok(())
}

fn zone_count(res: &Value) -> i64 {
    res.pointer("/distributionPolicy/zones")
        .and_then(Value::as_array)
        .map_or(1, |z| z.len().max(1) as i64)
}

/// The count a FixedOrPercent stands for in a group of `size` (percent rounds up).
pub fn fixed_or_percent(v: &Value, size: i64) -> i64 {
    if let Some(n) = v["fixed"].as_i64() {
        n
    } else if let Some(p) = v["percent"].as_i64() {
        (size * p + 99) / 100
    } else {
        0
    }
}

/// The instance group that shadows the managed group, made with it.
pub fn after_insert(cloud: &Cloud, key: &str, res: &Value) {
    let group_link = res["instanceGroup"].as_str().unwrap_or_default();
    let group_key = cloud.key_of(group_link);
    let scope_field = if res.get("zone").is_some() {
        "zone"
    } else {
        "region"
    };
    let mut group = json!({
        "kind": "compute#instanceGroup",
        "id": clock::new_id(),
        "name": paths::name_of(key),
        "creationTimestamp": clock::now_rfc3339(),
        "selfLink": group_link,
        "network": cloud.link(&format!("projects/{}/global/networks/default", paths::project_of(key).unwrap_or_default())),
        "fingerprint": "42WmSpB8rSM=",
        "size": 0,
    });
    group[scope_field] = res[scope_field].clone();
    cloud.store.put(&group_key, group);
}

/// Compute refuses to delete a group a backend service still serves.
pub fn before_delete(cloud: &Cloud, key: &str, res: &Value) -> Result<(), ApiError> {
    let group = res["instanceGroup"].as_str().unwrap_or_default();
    let project = paths::project_of(key).unwrap_or_default();
    let mut users = cloud.store.scan(&format!("projects/{project}/"), |k| {
        k.contains("/backendServices/")
    });
    users.retain(|(_, v)| {
        crate::refs::references("backendServices", v)
            .iter()
            .any(|r| r == group)
    });
    match users.first() {
        Some((by, _)) => Err(ApiError::in_use(&cloud.key_of(group), by)),
        None => Ok(()),
    }
}

/// Deleting a group deletes its instances and its instance group.
pub fn after_delete(cloud: &Cloud, key: &str, res: &Value) {
    for m in managed::of_group(&cloud.store, key) {
        managed::set_action(&cloud.store, key, &m.instance, Action::Deleting);
    }
    if let Some(group) = res["instanceGroup"].as_str() {
        cloud.store.delete(&cloud.key_of(group));
    }
}

/// Status and current actions, as they are right now.
pub fn render(cloud: &Arc<Cloud>, key: &str, out: &mut Value) {
    let members = managed::of_group(&cloud.store, key);
    let target = out["targetSize"].as_i64().unwrap_or(0);
    let mut counts = std::collections::BTreeMap::<&str, i64>::new();
    for m in &members {
        *counts.entry(m.action.as_str()).or_default() += 1;
    }
    let live = members
        .iter()
        .filter(|m| m.action != Action::Deleting && m.action != Action::Abandoning)
        .count() as i64;
    let all_none = members.iter().all(|m| m.action == Action::None);
    let targets = crate::runtime::groups::version_targets(out, target);
    let reached = members
        .iter()
        .filter(|m| m.action != Action::Deleting)
        .all(|m| {
            targets
                .iter()
                .any(|(v, _)| v["instanceTemplate"].as_str() == Some(m.template.as_str()))
        })
        && version_counts_match(&members, &targets);
    let mut actions = serde_json::Map::new();
    for name in [
        "abandoning",
        "creating",
        "creatingWithoutRetries",
        "deleting",
        "none",
        "recreating",
        "refreshing",
        "restarting",
        "resuming",
        "starting",
        "stopping",
        "suspending",
        "verifying",
    ] {
        let action = Action::from_camel(name);
        let n = action.map_or(0, |a| counts.get(a.as_str()).copied().unwrap_or(0));
        actions.insert(name.to_owned(), n.into());
    }
    out["currentActions"] = Value::Object(actions);
    // Output only: the named ports set on the group's instance group.
    let group = out["instanceGroup"]
        .as_str()
        .and_then(|l| cloud.store.get(&cloud.key_of(l)));
    if let Some(ports) = group.and_then(|g| g.get("namedPorts").cloned()) {
        out["namedPorts"] = ports;
    }
    out["status"] = json!({
        "isStable": all_none && live == target,
        "versionTarget": {"isReached": reached && live == target},
        "stateful": {"hasStatefulConfig": false, "perInstanceConfigs": {"allEffective": true}},
    });
    if let Some(versions) = out["versions"].as_array_mut() {
        for v in versions.iter_mut() {
            if let Some(ts) = v.get_mut("targetSize") {
                let calculated = fixed_or_percent(ts, target);
                ts["calculated"] = calculated.into();
            }
        }
    }
    for field in ["maxSurge", "maxUnavailable"] {
        if let Some(v) = out["updatePolicy"].get_mut(field) {
            let calculated = fixed_or_percent(v, target);
            v["calculated"] = calculated.into();
        }
    }
}

fn version_counts_match(members: &[Managed], targets: &[(Value, i64)]) -> bool {
    targets.iter().all(|(v, want)| {
        let have = members
            .iter()
            .filter(|m| {
                m.action != Action::Deleting
                    && v["instanceTemplate"].as_str() == Some(m.template.as_str())
            })
            .count() as i64;
        have == *want
    })
}

/// The instance group's size is its live instances.
pub fn render_group(cloud: &Arc<Cloud>, key: &str, out: &mut Value) {
    let scope = key.rsplit_once("/instanceGroups/").map_or("", |(s, _)| s);
    let mig = format!("{scope}/instanceGroupManagers/{}", paths::name_of(key));
    let size = managed::of_group(&cloud.store, &mig)
        .iter()
        .filter(|m| m.action != Action::Deleting)
        .count();
    out["size"] = size.into();
}

/// A change to a group, applied when its operation runs.
type GroupChange = Box<dyn FnOnce(&mut Value) -> Result<(), ApiError> + Send>;

/// What a verb does to the group's instance records, given the group: done
/// before the group changes, outside the store's lock (it is not reentrant).
type MemberChange = Box<dyn FnOnce(&Cloud, &Value) + Send>;

/// The imperative verbs of managed groups.
pub async fn verb(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let key = call.key()?.to_owned();
    if cloud.store.get(&key).is_none() {
        return Err(ApiError::not_found(&key));
    }
    let name = call.method.name.as_str();
    match name {
        "listManagedInstances" => {
            return Ok(crate::runtime::groups::list_managed(cloud, &key, call));
        }
        "listErrors" => return Ok(crate::runtime::groups::list_errors(cloud, &key)),
        _ => {}
    }
    let instances = listed_instances(cloud, call, &key)?;
    let op_type = format!("compute.instanceGroupManagers.{name}");
    let mut members: Option<MemberChange> = None;
    let change: GroupChange = match name {
        "resize" => {
            let size: i64 = call
                .query
                .get("size")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ApiError::required("size"))?;
            if !(0..=1000).contains(&size) {
                return Err(ApiError::invalid(format!(
                    "Invalid value for field 'size': '{size}'. Must be 0 to 1000."
                )));
            }
            Box::new(move |mig| {
                mig["targetSize"] = size.into();
                Ok(())
            })
        }
        "setInstanceTemplate" => {
            let template = call.body["instanceTemplate"]
                .as_str()
                .ok_or_else(|| ApiError::required("instanceTemplate"))?;
            let template_key = paths::normalize(template, &call.project);
            if cloud.store.get(&template_key).is_none() {
                return Err(ApiError::not_found(&template_key));
            }
            let link = cloud.link(&template_key);
            Box::new(move |mig| {
                mig["instanceTemplate"] = link.clone().into();
                mig["versions"] = json!([{"instanceTemplate": link}]);
                Ok(())
            })
        }
        "deleteInstances" | "abandonInstances" => {
            let action = if name == "deleteInstances" {
                Action::Deleting
            } else {
                Action::Abandoning
            };
            let count = instances.len() as i64;
            let key2 = key.clone();
            members = Some(Box::new(move |cloud, _| {
                for i in &instances {
                    managed::set_action(&cloud.store, &key2, i, action);
                }
            }));
            Box::new(move |mig| {
                let size = mig["targetSize"].as_i64().unwrap_or(0);
                mig["targetSize"] = (size - count).max(0).into();
                Ok(())
            })
        }
        "recreateInstances" => {
            let key2 = key.clone();
            members = Some(Box::new(move |cloud, mig| {
                // Recreated from the group's current configuration: an
                // outdated instance comes back on its target version.
                crate::runtime::groups::apply_updates(cloud, &key2, mig, &instances);
                for i in &instances {
                    managed::set_action(&cloud.store, &key2, i, Action::Recreating);
                }
            }));
            Box::new(|_| Ok(()))
        }
        "applyUpdatesToInstances" => {
            let all = call.body["allInstances"] == true;
            let chosen = if all {
                managed::of_group(&cloud.store, &key)
                    .into_iter()
                    .map(|m| m.instance)
                    .collect()
            } else {
                instances
            };
            let key2 = key.clone();
            members = Some(Box::new(move |cloud, mig| {
                crate::runtime::groups::apply_updates(cloud, &key2, mig, &chosen);
            }));
            Box::new(|_| Ok(()))
        }
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                "notImplemented",
                format!("The local cloud does not implement instanceGroupManagers.{other}"),
            ));
        }
    };
    let op = OpRequest {
        scope: &call.target.scope,
        operation_type: &op_type,
        target: &key,
        request_id: call.request_id(),
    };
    let key2 = key.clone();
    cloud
        .operation(
            op,
            Box::new(move |cloud| {
                if let Some(members) = members {
                    let mig = cloud
                        .store
                        .get(&key2)
                        .ok_or_else(|| ApiError::not_found(&key2))?;
                    members(cloud, &mig);
                }
                let mut id = None;
                cloud.store.update(&key2, |old| {
                    let mut mig = old.cloned().ok_or_else(|| ApiError::not_found(&key2))?;
                    id = mig["id"].as_str().map(str::to_owned);
                    change(&mut mig)?;
                    Ok(Some(mig))
                })?;
                Ok(id)
            }),
        )
        .await
}

/// The instances a verb's body lists, each checked to belong to the group.
fn listed_instances(cloud: &Cloud, call: &Call, mig: &str) -> Result<Vec<String>, ApiError> {
    let listed = call.body["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let skip_invalid = call.body["skipInstancesOnValidationError"] == true;
    let members: Vec<String> = managed::of_group(&cloud.store, mig)
        .into_iter()
        .map(|m| m.instance)
        .collect();
    let mut out = Vec::new();
    for (i, item) in listed.iter().enumerate() {
        let key = paths::normalize(item.as_str().unwrap_or_default(), &call.project);
        if members.contains(&key) {
            out.push(key);
        } else if !skip_invalid {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'instances[{i}]': '{}'. The instance is not a member of the managed instance group.",
                item.as_str().unwrap_or_default()
            )));
        }
    }
    Ok(out)
}
