//! IAM policies (`google.iam.v1.Policy`) of any resource, kept in the store
//! under `iam/policies/RESOURCE`: read, written with optimistic concurrency
//! on the etag, and asked whether they grant a role.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::IamError;
use crate::store::{Seq, Store};

const PREFIX: &str = "iam/policies/";
/// What Google answers for a policy never written: an etag and nothing else.
pub const EMPTY_ETAG: &str = "ACAB";
const MEMBER_PREFIXES: [&str; 5] = ["user:", "serviceAccount:", "group:", "domain:", "deleted:"];
const EVERYONE: [&str; 2] = ["allUsers", "allAuthenticatedUsers"];
const ROLE_PREFIXES: [&str; 3] = ["roles/", "projects/", "organizations/"];

fn key(resource: &str) -> String {
    format!("{PREFIX}{resource}")
}

/// `getIamPolicy`.
pub fn get(store: &Store, resource: &str) -> Value {
    store
        .get(&key(resource))
        .map_or_else(|| json!({"etag": EMPTY_ETAG}), |p| (*p).clone())
}

/// `setIamPolicy` with the request's body: the stored policy, and the write
/// to wait for.
pub fn set(store: &Store, resource: &str, body: &Value) -> Result<(Value, Seq), IamError> {
    let given = body
        .get("policy")
        .filter(|p| p.is_object())
        .ok_or_else(|| {
            IamError::InvalidArgument("setIamPolicy needs a policy: {\"policy\": {...}}".to_owned())
        })?;
    let (version, bindings) = bindings_of(given)?;
    let etag = match &given["etag"] {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        _ => {
            return Err(IamError::InvalidArgument(
                "policy.etag must be a base64 string".to_owned(),
            ));
        }
    };
    // Audit configs change only when the mask names them (Google's default
    // mask is "bindings,etag").
    let audit_masked = body["updateMask"]
        .as_str()
        .is_some_and(|m| m.split(',').any(|f| f.trim() == "auditConfigs"));
    let mut stored = Value::Null;
    let seq = store.update(&key(resource), |old| {
        let current = old.and_then(|p| p["etag"].as_str()).unwrap_or(EMPTY_ETAG);
        if etag.as_deref().is_some_and(|e| !same_etag(e, current)) {
            return Err(IamError::Aborted);
        }
        let mut next = json!({"version": version, "etag": next_etag(resource, current, &bindings)});
        if !bindings.is_empty() {
            next["bindings"] = Value::Array(bindings.clone());
        }
        let audit = if audit_masked {
            given.get("auditConfigs")
        } else {
            old.and_then(|p| p.get("auditConfigs"))
        };
        if let Some(audit) = audit.filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
            next["auditConfigs"] = audit.clone();
        }
        stored = next.clone();
        Ok(Some(next))
    })?;
    Ok((stored, seq))
}

/// Whether `resource`'s policy binds `member` to one of `roles`. Conditions
/// are not evaluated: a conditional binding counts, so that the local cloud
/// never refuses what Google might allow.
pub fn grants(store: &Store, resource: &str, member: &str, roles: &[&str]) -> bool {
    let Some(policy) = store.get(&key(resource)) else {
        return false;
    };
    policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["role"].as_str().is_some_and(|r| roles.contains(&r)))
        .any(|b| {
            b["members"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m.as_str() == Some(member))
        })
}

/// Turns a deleted account's memberships into `deleted:` members, as
/// Google does; the last write, if any.
pub fn forget(store: &Store, email: &str, unique_id: &str) -> Option<Seq> {
    let member = format!("serviceAccount:{email}");
    let gone = Value::from(format!("deleted:{member}?uid={unique_id}"));
    let mut last = None;
    for (resource_key, _) in store.scan(PREFIX, |_| true) {
        let resource = resource_key.strip_prefix(PREFIX).unwrap_or_default();
        let seq = store.update::<()>(&resource_key, |old| {
            let mut policy = old.filter(|p| p.is_object()).cloned().ok_or(())?;
            let mut changed = false;
            for m in policy
                .get_mut("bindings")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(|b| b.get_mut("members").and_then(Value::as_array_mut))
                .flatten()
            {
                if m.as_str() == Some(member.as_str()) {
                    *m = gone.clone();
                    changed = true;
                }
            }
            if !changed {
                return Err(());
            }
            let current = policy["etag"].as_str().unwrap_or(EMPTY_ETAG).to_owned();
            let bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
            policy["etag"] = next_etag(resource, &current, &bindings).into();
            Ok(Some(policy))
        });
        if let Ok(seq) = seq {
            last = Some(seq);
        }
    }
    last
}

/// The policy's version and its bindings, checked, with empty ones dropped
/// and members listed once. The version is 3 when a binding has a
/// condition (which needs 3 to be asked for), else 1, as Google stores it.
fn bindings_of(policy: &Value) -> Result<(u8, Vec<Value>), IamError> {
    let asked = match &policy["version"] {
        Value::Null => 0,
        v => v
            .as_u64()
            .filter(|v| [0, 1, 3].contains(v))
            .ok_or_else(|| {
                IamError::InvalidArgument(format!("policy.version {v} is not 0, 1 or 3"))
            })?,
    };
    let given = match &policy["bindings"] {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        _ => {
            return Err(IamError::InvalidArgument(
                "policy.bindings must be a list".to_owned(),
            ));
        }
    };
    let mut out = Vec::new();
    let mut conditional = false;
    for (i, binding) in given.iter().enumerate() {
        let role = binding["role"].as_str().unwrap_or_default();
        let role_ok = ROLE_PREFIXES
            .iter()
            .any(|p| role.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        if !role_ok {
            return Err(IamError::InvalidArgument(format!(
                "policy.bindings[{i}]: role {role:?} is not a role: roles start with roles/, \
                 projects/ or organizations/"
            )));
        }
        let mut members: Vec<Value> = Vec::new();
        for m in binding["members"].as_array().into_iter().flatten() {
            let text = m.as_str().filter(|m| member_ok(m)).ok_or_else(|| {
                IamError::InvalidArgument(format!(
                    "policy.bindings[{i}] (role {role}): member {m} is not valid: a member is \
                     allUsers, allAuthenticatedUsers, or user:, serviceAccount:, group:, \
                     domain: or deleted: followed by a name"
                ))
            })?;
            if !members.iter().any(|seen| seen.as_str() == Some(text)) {
                members.push(text.into());
            }
        }
        if members.is_empty() {
            continue;
        }
        let mut kept = json!({"role": role, "members": members});
        match &binding["condition"] {
            Value::Null => {}
            c @ Value::Object(_) => {
                conditional = true;
                kept["condition"] = c.clone();
            }
            _ => {
                return Err(IamError::InvalidArgument(format!(
                    "policy.bindings[{i}] (role {role}): condition must be an object"
                )));
            }
        }
        out.push(kept);
    }
    if conditional && asked != 3 {
        return Err(IamError::InvalidArgument(
            "a policy with conditional bindings must have version 3".to_owned(),
        ));
    }
    Ok((if conditional { 3 } else { 1 }, out))
}

fn member_ok(member: &str) -> bool {
    if EVERYONE.contains(&member) {
        return true;
    }
    MEMBER_PREFIXES.iter().any(|prefix| {
        member.strip_prefix(prefix).is_some_and(|name| {
            let needs_at = matches!(*prefix, "user:" | "serviceAccount:" | "group:");
            !name.is_empty()
                && !name.contains(char::is_whitespace)
                && (!needs_at || name.contains('@'))
        })
    })
}

/// Etags are compared as the bytes they encode, whichever base64 alphabet
/// a client used.
fn same_etag(given: &str, current: &str) -> bool {
    let decode = |s: &str| STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok();
    match (decode(given), decode(current)) {
        (Some(a), Some(b)) => a == b,
        _ => given == current,
    }
}

/// A new etag, chained on the current one so that every write changes it.
fn next_etag(resource: &str, current: &str, bindings: &[Value]) -> String {
    let mut hash = Sha256::new();
    hash.update(resource.as_bytes());
    hash.update(b"\n");
    hash.update(current.as_bytes());
    hash.update(b"\n");
    hash.update(Value::from(bindings.to_vec()).to_string().as_bytes());
    STANDARD.encode(&hash.finalize()[..8])
}
