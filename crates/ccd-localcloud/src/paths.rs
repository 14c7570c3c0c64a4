//! Resource paths: the keys of the store are paths below `/compute/v1/`,
//! such as `projects/p/zones/europe-west1-b/instances/web-1`.

/// Where a request's path points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `projects/p/zones/z`, `projects/p/regions/r` or `projects/p/global`.
    pub scope: String,
    /// The collection's key prefix, e.g. `projects/p/zones/z/instances/`.
    pub collection: String,
    /// The named resource's key, when the path names one.
    pub key: Option<String>,
    /// What follows the resource name (a custom verb such as `resize`).
    pub verb: Option<String>,
}

/// Splits a request path into scope, collection, resource and verb.
pub fn target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.split('/').collect();
    if segs.len() < 3 || segs[0] != "projects" || segs[1].is_empty() {
        return None;
    }
    let project = segs[1];
    // zones.get / regions.get / zones.list name the scope itself.
    let (scope, at) = match segs[2] {
        "global" => (format!("projects/{project}/global"), 3),
        // aggregatedList: one collection across every scope of the project.
        "aggregated" => (format!("projects/{project}/aggregated"), 3),
        "zones" | "regions" if segs.len() >= 5 => {
            (format!("projects/{project}/{}/{}", segs[2], segs[3]), 4)
        }
        "zones" | "regions" => (format!("projects/{project}"), 2),
        _ => return None,
    };
    let collection_name = segs.get(at)?;
    let collection = format!("{scope}/{collection_name}/");
    let key = segs.get(at + 1).map(|name| format!("{collection}{name}"));
    let verb = (segs.len() > at + 2).then(|| segs[at + 2..].join("/"));
    Some(Target {
        scope,
        collection,
        key,
        verb,
    })
}

pub fn project_of(key: &str) -> Option<&str> {
    key.strip_prefix("projects/")?.split('/').next()
}

/// For a zonal or regional scope, the field naming it (`zone` or `region`)
/// and the scope's own key.
pub fn scope_field(scope: &str) -> Option<(&'static str, String)> {
    let segs: Vec<&str> = scope.split('/').collect();
    match segs.as_slice() {
        ["projects", _, "zones", _] => Some(("zone", scope.to_owned())),
        ["projects", _, "regions", _] => Some(("region", scope.to_owned())),
        _ => None,
    }
}

/// The key a reference names, whatever form it takes: a full URL (any host),
/// `projects/...`, or a partial path like `global/instanceTemplates/t` or
/// `zones/z/instanceGroups/g` completed with `project`.
pub fn normalize(reference: &str, project: &str) -> String {
    let trimmed = reference
        .split_once("/compute/v1/")
        .map_or(reference, |(_, rest)| rest)
        .trim_start_matches('/');
    if trimmed.starts_with("projects/") {
        trimmed.to_owned()
    } else {
        format!("projects/{project}/{trimmed}")
    }
}

/// The last segment of a key or URL: the resource's name.
pub fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Compute's resource name rule: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_split_into_scope_collection_key_and_verb() {
        let t = target("projects/p/zones/z1/instanceGroupManagers/web/resize").unwrap();
        assert_eq!(t.scope, "projects/p/zones/z1");
        assert_eq!(t.collection, "projects/p/zones/z1/instanceGroupManagers/");
        assert_eq!(
            t.key.as_deref(),
            Some("projects/p/zones/z1/instanceGroupManagers/web")
        );
        assert_eq!(t.verb.as_deref(), Some("resize"));
        let t = target("projects/p/global/firewalls").unwrap();
        assert_eq!(
            (t.collection.as_str(), t.key),
            ("projects/p/global/firewalls/", None)
        );
        let t = target("projects/p/aggregated/healthChecks").unwrap();
        assert_eq!(
            (t.collection.as_str(), t.key),
            ("projects/p/aggregated/healthChecks/", None)
        );
        let t = target("projects/p/zones/z1").unwrap();
        assert_eq!(t.key.as_deref(), Some("projects/p/zones/z1"));
        assert!(target("nope/p").is_none());
    }

    #[test]
    fn references_normalize_to_keys() {
        let k = "projects/p/global/instanceTemplates/t";
        assert_eq!(
            normalize(
                "https://www.googleapis.com/compute/v1/projects/p/global/instanceTemplates/t",
                "x"
            ),
            k
        );
        assert_eq!(
            normalize(
                "http://127.0.0.1:1/compute/v1/projects/p/global/instanceTemplates/t",
                "x"
            ),
            k
        );
        assert_eq!(normalize("global/instanceTemplates/t", "p"), k);
        assert_eq!(normalize(k, "x"), k);
    }

    #[test]
    fn names_follow_compute_rules() {
        assert!(valid_name("web-1"));
        assert!(!valid_name("Web"));
        assert!(!valid_name("web-"));
        assert!(!valid_name(&"a".repeat(64)));
    }
}
