//! `list` with Compute's `filter`, `maxResults` and `pageToken`.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::kinds;

const MAX_RESULTS: usize = 500;

pub async fn list(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let filter = match call.query.get("filter") {
        Some(text) => Filter::parse(text)?,
        None => Filter::default(),
    };
    let max = match call.query.get("maxResults").map(|m| m.parse::<usize>()) {
        None | Some(Ok(0)) => MAX_RESULTS,
        Some(Ok(n)) => n.min(MAX_RESULTS),
        Some(Err(_)) => return Err(ApiError::invalid("Invalid value for field 'maxResults'")),
    };
    let after = match call.query.get("pageToken").filter(|t| !t.is_empty()) {
        Some(token) => Some(decode_token(token)?),
        None => None,
    };
    let prefix = &call.target.collection;
    let mut items = Vec::new();
    let mut next = None;
    // Keys first, values one at a time: a page of a large collection never
    // holds the whole collection in memory.
    for key in cloud
        .store
        .keys(prefix, |k| !k[prefix.len()..].contains('/'))
    {
        if after.as_ref().is_some_and(|a| key <= *a) {
            continue;
        }
        let Some(stored) = cloud.store.get(&key) else {
            continue;
        };
        let rendered = kinds::render(cloud, &call.collection_name, &key, &stored);
        if !filter.matches(&rendered) {
            continue;
        }
        if items.len() == max {
            next = items
                .last()
                .and_then(|v: &Value| v["selfLink"].as_str())
                .map(|l| cloud.key_of(l));
            break;
        }
        items.push(rendered);
    }
    let self_link = cloud.link(prefix.trim_end_matches('/'));
    let mut body = crate::generic::list_body(kinds::list_kind_of(call.method), self_link);
    if !items.is_empty() {
        body["items"] = Value::Array(items);
    }
    if let Some(last) = next {
        body["nextPageToken"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(last)
            .into();
    }
    Ok(body)
}

/// `aggregatedList`: one collection's resources in every scope of the
/// project (`global`, `regions/r`, `zones/z`), grouped by scope, with the
/// same `filter` and paging as `list`. Scopes without any are left out
/// (Compute lists them with a warning; clients skip those).
pub async fn aggregated(cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    let filter = match call.query.get("filter") {
        Some(text) => Filter::parse(text)?,
        None => Filter::default(),
    };
    let after = match call.query.get("pageToken").filter(|t| !t.is_empty()) {
        Some(token) => Some(decode_token(token)?),
        None => None,
    };
    let collection = call.collection_name.as_str();
    let project = format!("projects/{}/", call.project);
    let mut items = serde_json::Map::new();
    let (mut count, mut last, mut more) = (0, None, false);
    for key in cloud.store.keys(&project, |k| {
        scope_of(&k[project.len()..], collection).is_some()
    }) {
        if after.as_ref().is_some_and(|a| key <= *a) {
            continue;
        }
        let Some(stored) = cloud.store.get(&key) else {
            continue;
        };
        let rendered = kinds::render(cloud, collection, &key, &stored);
        if !filter.matches(&rendered) {
            continue;
        }
        if count == MAX_RESULTS {
            more = true;
            break;
        }
        count += 1;
        let scope = scope_of(&key[project.len()..], collection).unwrap_or_default();
        last = Some(key.clone());
        let listed = items
            .entry(scope.to_owned())
            .or_insert_with(|| serde_json::json!({ collection: [] }));
        if let Some(list) = listed[collection].as_array_mut() {
            list.push(rendered);
        }
    }
    let self_link = cloud.link(&format!(
        "projects/{}/aggregated/{collection}",
        call.project
    ));
    let mut body = crate::generic::list_body(kinds::response_kind_of(call.method), self_link);
    if !items.is_empty() {
        body["items"] = Value::Object(items);
    }
    if let Some(last) = last.filter(|_| more) {
        body["nextPageToken"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(last)
            .into();
    }
    Ok(body)
}

/// `global` or `regions/r` when `rest` (a key without its project) names
/// one resource of `collection` there.
fn scope_of<'a>(rest: &'a str, collection: &str) -> Option<&'a str> {
    let segs: Vec<&str> = rest.split('/').collect();
    let (scope_len, coll, name) = match segs.as_slice() {
        ["global", c, n] => (6, *c, *n),
        [kind @ ("regions" | "zones"), s, c, n] => (kind.len() + 1 + s.len(), *c, *n),
        _ => return None,
    };
    (coll == collection && !name.is_empty()).then(|| &rest[..scope_len])
}

fn decode_token(token: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::invalid(format!("Invalid value for field 'pageToken': '{token}'."))
        })
}

/// A conjunction of `field op value` clauses: `name = "web"`,
/// `(labels.app = hello) (status != TERMINATED)`, `a = b AND c = d`.
/// `eq`/`ne` compare literally (no regular expressions).
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<(String, bool, String)>,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::invalid(format!(
                "Invalid value for field 'filter': '{text}'. Invalid list filter expression."
            ))
        };
        let mut clauses = Vec::new();
        let parts: Vec<String> = if text.contains('(') {
            text.split(['(', ')'])
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != "AND")
                .map(str::to_owned)
                .collect()
        } else {
            text.split(" AND ")
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        };
        for part in parts {
            let (field, negate, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once(" ne ") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once(" eq ") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once(':') {
                (f, false, v)
            } else {
                return Err(bad());
            };
            let field = field.trim();
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            if field.is_empty() || field.contains(char::is_whitespace) {
                return Err(bad());
            }
            clauses.push((field.to_owned(), negate, value.to_owned()));
        }
        Ok(Filter { clauses })
    }

    pub fn matches(&self, item: &Value) -> bool {
        self.clauses.iter().all(|(field, negate, value)| {
            let found = field.split('.').try_fold(item, |v, f| v.get(f));
            let equal = match found {
                Some(Value::String(s)) => s == value,
                Some(Value::Null) | None => false,
                Some(other) => value.parse::<Value>().is_ok_and(|v| v == *other),
            };
            equal != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregated_lists_find_a_collection_in_every_scope() {
        assert_eq!(
            scope_of("global/healthChecks/web-hc", "healthChecks"),
            Some("global")
        );
        assert_eq!(
            scope_of("regions/europe-west1/healthChecks/web-hc", "healthChecks"),
            Some("regions/europe-west1")
        );
        assert_eq!(
            scope_of("zones/z1/instances/web-1", "instances"),
            Some("zones/z1")
        );
        assert_eq!(scope_of("global/firewalls/web", "healthChecks"), None);
        assert_eq!(scope_of("global/healthChecks", "healthChecks"), None);
        assert_eq!(scope_of("regions/r/healthChecks/x/y", "healthChecks"), None);
    }

    #[test]
    fn filters_match_like_compute() {
        let item =
            json!({"name": "web-1", "status": "RUNNING", "labels": {"app": "hello"}, "size": 3});
        assert!(Filter::parse("name = \"web-1\"").unwrap().matches(&item));
        assert!(
            Filter::parse("(labels.app = hello) (status != TERMINATED)")
                .unwrap()
                .matches(&item)
        );
        assert!(!Filter::parse("labels.app = other").unwrap().matches(&item));
        assert!(
            Filter::parse("size = 3 AND name eq web-1")
                .unwrap()
                .matches(&item)
        );
        assert!(!Filter::parse("labels.missing = x").unwrap().matches(&item));
        assert!(Filter::parse("nonsense").is_err());
    }
}
