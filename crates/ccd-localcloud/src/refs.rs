//! The fields of each collection that name other resources. They are
//! checked to exist, stored as full links, and consulted before a delete
//! (a resource still named by another is "in use").

use serde_json::Value;

/// Reference fields per collection, as paths where `[]` walks every item.
pub fn reference_fields(collection: &str) -> &'static [&'static str] {
    match collection {
        "instanceGroupManagers" => &[
            "instanceTemplate",
            "versions[].instanceTemplate",
            "autoHealingPolicies[].healthCheck",
        ],
        "backendServices" => &["healthChecks[]", "backends[].group"],
        "urlMaps" => &[
            "defaultService",
            "defaultRouteAction.weightedBackendServices[].backendService",
            "pathMatchers[].defaultService",
            "pathMatchers[].defaultRouteAction.weightedBackendServices[].backendService",
            "pathMatchers[].pathRules[].service",
            "pathMatchers[].pathRules[].routeAction.weightedBackendServices[].backendService",
        ],
        "targetHttpProxies" => &["urlMap"],
        "targetHttpsProxies" => &["urlMap", "sslCertificates[]"],
        "forwardingRules" => &["target", "backendService"],
        "autoscalers" => &["target"],
        _ => &[],
    }
}

/// Calls `f` on every string at `path` inside `value`, allowing changes.
pub fn for_each_at(value: &mut Value, path: &str, f: &mut dyn FnMut(&mut String)) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let (field, each) = match head.strip_suffix("[]") {
        Some(f) => (f, true),
        None => (head, false),
    };
    let Some(child) = value.get_mut(field) else {
        return;
    };
    let mut visit = |v: &mut Value| match rest {
        Some(rest) => for_each_at(v, rest, f),
        None => {
            if let Value::String(s) = v {
                f(s);
            }
        }
    };
    match (each, child) {
        (true, Value::Array(items)) => items.iter_mut().for_each(&mut visit),
        (true, _) => {}
        (false, v) => visit(v),
    }
}

/// Every reference of a stored resource of `collection`, as given.
pub fn references(collection: &str, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut copy = value.clone();
    for path in reference_fields(collection) {
        for_each_at(&mut copy, path, &mut |s| out.push(s.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_nested_lists() {
        let mut v = json!({"pathMatchers": [
            {"defaultService": "a", "pathRules": [{"service": "b"}, {"service": "c"}]},
            {"defaultService": "d"}
        ]});
        assert_eq!(references("urlMaps", &v), ["a", "d", "b", "c"]);
        for_each_at(&mut v, "pathMatchers[].defaultService", &mut |s| {
            s.push('!')
        });
        assert_eq!(v["pathMatchers"][1]["defaultService"], "d!");
    }
}
