//! The managed instance group controller: makes each group's instances match
//! its target size and versions, replacing outdated instances within the
//! update policy's surge and unavailability limits, and recreating those that
//! fail the autohealing check after the initial delay. Level-triggered: each
//! pass looks at what is and acts on the difference, so it can stop anywhere
//! and run again.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::managed::{self, Action, Managed};
use crate::{clock, migs, paths};

/// Each version with the number of instances it should have.
pub fn version_targets(mig: &Value, target: i64) -> Vec<(Value, i64)> {
    let versions = mig["versions"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(Value, i64)> = Vec::new();
    let mut assigned = 0;
    for v in &versions {
        if let Some(ts) = v.get("targetSize") {
            let n = migs::fixed_or_percent(ts, target)
                .min(target - assigned)
                .max(0);
            assigned += n;
            out.push((v.clone(), n));
        }
    }
    if let Some(open) = versions.iter().find(|v| v.get("targetSize").is_none()) {
        out.push((open.clone(), (target - assigned).max(0)));
    }
    out
}

pub fn now_ms() -> u64 {
    ccd_clock::since_epoch().as_millis() as u64
}

/// One pass over one group. Returns true when it changed something.
pub fn reconcile(cloud: &Cloud, health: &super::health::Health, mig_key: &str) -> bool {
    let mig = cloud.store.get(mig_key);
    let members = managed::of_group(&cloud.store, mig_key);
    let mut changed = false;

    // Finish what is under way: deletions, abandonments, creations.
    for m in &members {
        match m.action {
            Action::Deleting => {
                cloud.store.delete(&m.instance);
                managed::forget(&cloud.store, mig_key, &m.instance);
                changed = true;
            }
            Action::Abandoning => {
                managed::forget(&cloud.store, mig_key, &m.instance);
                changed = true;
            }
            _ => {}
        }
    }
    let Some(mig) = mig else {
        // The group is gone: its remaining instances go with it.
        for m in members
            .iter()
            .filter(|m| !matches!(m.action, Action::Deleting | Action::Abandoning))
        {
            cloud.store.delete(&m.instance);
            managed::forget(&cloud.store, mig_key, &m.instance);
            changed = true;
        }
        return changed;
    };
    let autoheal = mig["autoHealingPolicies"]
        .as_array()
        .and_then(|p| p.first())
        .cloned();
    let hc_key = autoheal
        .as_ref()
        .and_then(|p| p["healthCheck"].as_str())
        .map(|l| cloud.key_of(l));
    let initial_delay_ms = autoheal
        .as_ref()
        .and_then(|p| p["initialDelaySec"].as_u64())
        .unwrap_or(0)
        * 1000;
    let now = now_ms();

    let mut live: Vec<Managed> = Vec::new();
    for mut m in members
        .into_iter()
        .filter(|m| !matches!(m.action, Action::Deleting | Action::Abandoning))
    {
        let running = cloud
            .store
            .get(&m.instance)
            .is_some_and(|i| i["status"] == "RUNNING");
        let healthy = match &hc_key {
            None => running,
            Some(hc) => running && health.is_healthy(hc, &m.instance),
        };
        if healthy && !m.healthy_once {
            m.healthy_once = true;
            managed::put(&cloud.store, mig_key, &m);
            changed = true;
        }
        match m.action {
            Action::Creating | Action::Verifying if m.healthy_once => {
                m.action = Action::None;
                managed::put(&cloud.store, mig_key, &m);
                changed = true;
            }
            Action::Recreating => {
                recreate(cloud, mig_key, &mut m);
                changed = true;
            }
            _ => {}
        }
        live.push(m);
    }

    let target = mig["targetSize"].as_i64().unwrap_or(0);
    let policy = &mig["updatePolicy"];
    let surge = migs::fixed_or_percent(&policy["maxSurge"], target);
    let unavailable = migs::fixed_or_percent(&policy["maxUnavailable"], target);
    let proactive = policy["type"] != "OPPORTUNISTIC";
    let targets = version_targets(&mig, target);
    let is_available = |m: &Managed| m.action == Action::None && m.healthy_once;

    // Autohealing: an instance failing its check after the initial delay is recreated.
    if let Some(hc) = &hc_key {
        let mut budget = unavailable.max(1)
            - (target - live.iter().filter(|m| is_available(m)).count() as i64).max(0);
        for m in live.iter_mut() {
            let past_delay = now.saturating_sub(m.created_ms) >= initial_delay_ms;
            if m.action == Action::None
                && past_delay
                && health.is_unhealthy(hc, &m.instance)
                && budget > 0
            {
                tracing::info!(group = mig_key, instance = %m.instance, "autohealing: recreating an unhealthy instance");
                m.action = Action::Recreating;
                recreate(cloud, mig_key, m);
                budget -= 1;
                changed = true;
            }
        }
    }

    // Which live instances fit which version; the rest are outdated.
    let mut need: Vec<i64> = targets.iter().map(|(_, n)| *n).collect();
    let mut outdated: Vec<usize> = Vec::new();
    for (i, m) in live.iter().enumerate() {
        let slot = targets
            .iter()
            .position(|(v, _)| v["instanceTemplate"].as_str() == Some(m.template.as_str()));
        match slot {
            Some(s) if need[s] > 0 => need[s] -= 1,
            _ => outdated.push(i),
        }
    }

    // Create what is missing, surging above the target while replacing.
    let count = live.len() as i64;
    let ceiling = if proactive && !outdated.is_empty() {
        target + surge
    } else {
        target
    };
    let mut room = (ceiling - count).max(0);
    let mut created = 0;
    for (slot, (version, _)) in targets.iter().enumerate() {
        while need[slot] > 0 && room > 0 {
            create(cloud, &mig, mig_key, version);
            need[slot] -= 1;
            room -= 1;
            created += 1;
            changed = true;
        }
    }

    // Remove outdated or surplus instances, unavailable and newest first,
    // never taking availability below target - maxUnavailable (a resize
    // below the surge ceiling removes regardless, as Compute does).
    let mut available = live.iter().filter(|m| is_available(m)).count() as i64;
    let mut remaining = count + created;
    let mut victims: Vec<&Managed> = outdated.iter().map(|i| &live[*i]).collect();
    victims.sort_by_key(|m| (is_available(m), std::cmp::Reverse(m.created_ms)));
    for m in victims {
        let after = available - i64::from(is_available(m));
        let remove = if remaining > target + surge {
            true
        } else if !proactive {
            remaining > target
        } else {
            after >= target - unavailable
        };
        if remove {
            managed::set_action(&cloud.store, mig_key, &m.instance, Action::Deleting);
            available = after;
            remaining -= 1;
            changed = true;
        }
    }
    changed
}

/// Makes a new instance of `version` for the group.
fn create(cloud: &Cloud, mig: &Value, mig_key: &str, version: &Value) {
    let base = mig["baseInstanceName"].as_str().unwrap_or("instance");
    let zone = pick_zone(cloud, mig, mig_key);
    let name = format!("{base}-{}", clock::suffix(4));
    let key = format!("{zone}/instances/{name}");
    let template = version["instanceTemplate"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let m = Managed {
        instance: key.clone(),
        template: template.clone(),
        version: version["name"].as_str().map(str::to_owned),
        action: Action::Creating,
        created_ms: now_ms(),
        healthy_once: false,
        last_error: None,
    };
    managed::put(&cloud.store, mig_key, &m);
    let instance = instance_resource(cloud, mig_key, &key, &template);
    cloud.store.put(&key, instance);
    tracing::info!(group = mig_key, instance = %key, %template, "instance created");
}

/// RECREATE-style replacement: same name, new instance from the record's template.
fn recreate(cloud: &Cloud, mig_key: &str, m: &mut Managed) {
    let instance = instance_resource(cloud, mig_key, &m.instance, &m.template);
    cloud.store.put(&m.instance, instance);
    m.action = Action::Creating;
    m.created_ms = now_ms();
    m.healthy_once = false;
    managed::put(&cloud.store, mig_key, m);
    tracing::info!(group = mig_key, instance = %m.instance, template = %m.template, "instance created");
}

/// Zonal groups use their zone; regional groups spread over their zones.
fn pick_zone(cloud: &Cloud, mig: &Value, mig_key: &str) -> String {
    let scope = mig_key
        .rsplit_once("/instanceGroupManagers/")
        .map_or("", |(s, _)| s)
        .to_owned();
    let Some(region) = scope.split("/regions/").nth(1) else {
        return scope;
    };
    let project = paths::project_of(mig_key).unwrap_or_default();
    let zones: Vec<String> = mig
        .pointer("/distributionPolicy/zones")
        .and_then(Value::as_array)
        .map(|z| {
            z.iter()
                .filter_map(|z| z["zone"].as_str())
                .map(|z| paths::name_of(z).to_owned())
                .collect()
        })
        .filter(|z: &Vec<String>| !z.is_empty())
        .unwrap_or_else(|| {
            ["b", "c", "d"]
                .iter()
                .map(|s| format!("{region}-{s}"))
                .collect()
        });
    let members = managed::of_group(&cloud.store, mig_key);
    let least = zones
        .iter()
        .min_by_key(|z| {
            members
                .iter()
                .filter(|m| m.instance.contains(&format!("/zones/{z}/")))
                .count()
        })
        .cloned()
        .unwrap_or_else(|| format!("{region}-b"));
    format!("projects/{project}/zones/{least}")
}

/// The Instance resource a template makes, as Compute would show it.
fn instance_resource(cloud: &Cloud, mig_key: &str, key: &str, template_link: &str) -> Value {
    let template = cloud
        .store
        .get(&cloud.key_of(template_link))
        .map(|t| (*t).clone())
        .unwrap_or(Value::Null);
    let props = &template["properties"];
    let zone_key = key.rsplit_once("/instances/").map_or("", |(z, _)| z);
    let mut items = props
        .pointer("/metadata/items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    items.push(json!({"key": "instance-template", "value": template_link}));
    items.push(json!({"key": "created-by", "value": cloud.link(mig_key)}));
    let network = props
        .pointer("/networkInterfaces/0/network")
        .cloned()
        .unwrap_or_else(|| {
            cloud
                .link(&format!(
                    "projects/{}/global/networks/default",
                    paths::project_of(key).unwrap_or_default()
                ))
                .into()
        });
    let mut instance = json!({
        "kind": "compute#instance",
        "id": clock::new_id(),
        "name": paths::name_of(key),
        "zone": cloud.link(zone_key),
        "machineType": cloud.link(&format!("{zone_key}/machineTypes/{}", props["machineType"].as_str().map_or("e2-small", paths::name_of))),
        "status": "PROVISIONING",
        "creationTimestamp": clock::now_rfc3339(),
        "selfLink": cloud.link(key),
        "metadata": {"kind": "compute#metadata", "fingerprint": crate::generic::fingerprint_text(b"local"), "items": items},
        "labels": props["labels"].clone(),
        "tags": props["tags"].clone(),
        "serviceAccounts": props["serviceAccounts"].clone(),
        "networkInterfaces": [{"kind": "compute#networkInterface", "name": "nic0", "network": network, "networkIP": super::instances::allocate_ip(&cloud.store)}],
        "canIpForward": false,
        "deletionProtection": false,
    });
    // Google omits unset fields rather than sending null.
    if let Some(obj) = instance.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    instance
}

/// `listManagedInstances`.
pub fn list_managed(cloud: &Arc<Cloud>, mig_key: &str, _call: &Call) -> Value {
    let mig = cloud.store.get(mig_key);
    let hc = mig.as_ref().and_then(|m| {
        m["autoHealingPolicies"][0]["healthCheck"]
            .as_str()
            .map(str::to_owned)
    });
    let items: Vec<Value> = managed::of_group(&cloud.store, mig_key)
        .into_iter()
        .map(|m| {
            let instance = cloud.store.get(&m.instance);
            let status = instance
                .as_ref()
                .and_then(|i| i["status"].as_str().map(str::to_owned));
            let mut item = json!({
                "instance": cloud.link(&m.instance),
                "name": paths::name_of(&m.instance),
                "currentAction": m.action.as_str(),
                "version": {"instanceTemplate": m.template},
            });
            if let Some(v) = m.version {
                item["version"]["name"] = v.into();
            }
            if let Some(i) = &instance {
                item["id"] = i["id"].clone();
            }
            if let Some(s) = status {
                item["instanceStatus"] = s.into();
            }
            if let Some(hc) = &hc {
                let state = cloud.health.state(&cloud.key_of(hc), &m.instance);
                item["instanceHealth"] = json!([{"healthCheck": hc, "detailedHealthState": state}]);
            }
            if let Some(e) = m.last_error {
                item["lastAttempt"] =
                    json!({"errors": {"errors": [{"code": "CONDITION_NOT_MET", "message": e}]}});
            }
            item
        })
        .collect();
    let mut body = json!({});
    if !items.is_empty() {
        body["managedInstances"] = Value::Array(items);
    }
    body
}

/// `listErrors`: the instances' last failed attempts.
pub fn list_errors(cloud: &Arc<Cloud>, mig_key: &str) -> Value {
    let items: Vec<Value> = managed::of_group(&cloud.store, mig_key)
        .into_iter()
        .filter_map(|m| {
            let e = m.last_error?;
            Some(json!({
                "instanceActionDetails": {"action": m.action.as_str(), "instance": cloud.link(&m.instance)},
                "error": {"code": "CONDITION_NOT_MET", "message": e},
            }))
        })
        .collect();
    let mut body = json!({});
    if !items.is_empty() {
        body["items"] = Value::Array(items);
    }
    body
}

/// `applyUpdatesToInstances`: chosen outdated instances take their version now.
pub fn apply_updates(cloud: &Cloud, mig_key: &str, mig: &Value, chosen: &[String]) {
    let target = mig["targetSize"].as_i64().unwrap_or(0);
    let targets = version_targets(mig, target);
    let members = managed::of_group(&cloud.store, mig_key);
    let mut need: Vec<i64> = targets.iter().map(|(_, n)| *n).collect();
    for m in &members {
        if let Some(s) = targets
            .iter()
            .position(|(v, _)| v["instanceTemplate"].as_str() == Some(m.template.as_str()))
        {
            need[s] -= 1;
        }
    }
    for instance in chosen {
        let Some(mut m) = members.iter().find(|m| &m.instance == instance).cloned() else {
            continue;
        };
        let fits = targets
            .iter()
            .any(|(v, _)| v["instanceTemplate"].as_str() == Some(m.template.as_str()));
        if fits {
            continue;
        }
        if let Some(slot) = need.iter().position(|n| *n > 0) {
            need[slot] -= 1;
            m.template = targets[slot].0["instanceTemplate"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            m.version = targets[slot].0["name"].as_str().map(str::to_owned);
            m.action = Action::Recreating;
            managed::put(&cloud.store, mig_key, &m);
        }
    }
}

/// Instance groups' verbs: named ports and listing members.
pub async fn group_verb(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let key = call.key()?.to_owned();
    let stored = cloud
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&key))?;
    match call.method.name.as_str() {
        "listInstances" => {
            let scope = key.rsplit_once("/instanceGroups/").map_or("", |(s, _)| s);
            let mig = format!("{scope}/instanceGroupManagers/{}", paths::name_of(&key));
            let ports = stored["namedPorts"].clone();
            let running_only = call.body["instanceState"] == "RUNNING";
            let items: Vec<Value> = managed::of_group(&cloud.store, &mig)
                .into_iter()
                .filter(|m| m.action != Action::Deleting)
                .filter_map(|m| {
                    let i = cloud.store.get(&m.instance)?;
                    let status = i["status"].as_str().unwrap_or("PROVISIONING").to_owned();
                    if running_only && status != "RUNNING" {
                        return None;
                    }
                    let mut item = json!({"instance": cloud.link(&m.instance), "status": status});
                    if ports.is_array() {
                        item["namedPorts"] = ports.clone();
                    }
                    Some(item)
                })
                .collect();
            let mut body = json!({"kind": "compute#instanceGroupsListInstances", "id": cloud.link(&key), "selfLink": cloud.link(&key)});
            if !items.is_empty() {
                body["items"] = Value::Array(items);
            }
            Ok(body)
        }
        "setNamedPorts" => {
            crate::generic::check_fingerprint(&key, &stored, &call.body)?;
            let ports = call.body["namedPorts"].clone();
            let change: crate::ops::Change = Box::new(move |g| {
                g["namedPorts"] = ports;
                g["fingerprint"] =
                    crate::generic::fingerprint_text(clock::new_id().as_bytes()).into();
                Ok(())
            });
            cloud
                .change_operation(call, "compute.instanceGroups.setNamedPorts", &key, change)
                .await
        }
        other => Err(crate::handlers::not_implemented("instanceGroups", other)),
    }
}
