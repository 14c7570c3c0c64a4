#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Routing: every Compute method the local cloud serves is reachable by its
//! real path, and nothing else is.

use std::collections::BTreeMap;

use ccd_discovery::{Api, Location, ParamType};

const KEPT: &[&str] = &[
    "instanceTemplates",
    "regionInstanceTemplates",
    "instanceGroupManagers",
    "regionInstanceGroupManagers",
    "instanceGroups",
    "regionInstanceGroups",
    "instances",
    "healthChecks",
    "regionHealthChecks",
    "backendServices",
    "regionBackendServices",
    "urlMaps",
    "regionUrlMaps",
    "targetHttpProxies",
    "targetHttpsProxies",
    "regionTargetHttpProxies",
    "regionTargetHttpsProxies",
    "sslCertificates",
    "regionSslCertificates",
    "forwardingRules",
    "globalForwardingRules",
    "addresses",
    "globalAddresses",
    "firewalls",
    "networks",
    "subnetworks",
    "zoneOperations",
    "regionOperations",
    "globalOperations",
    "zones",
    "regions",
    "autoscalers",
    "regionAutoscalers",
];

/// Fills a template with made-up values; returns the path and the expected params.
fn fill(template: &str) -> (String, BTreeMap<String, String>) {
    let mut params = BTreeMap::new();
    let segments: Vec<String> = template
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let value = format!("x-{}-7", name.to_lowercase());
                    params.insert(name.to_owned(), value.clone());
                    value
                }
                None => s.to_owned(),
            },
        )
        .collect();
    (segments.join("/"), params)
}

#[test]
fn every_method_resolves_from_its_own_path() {
    let api = Api::compute();
    let mut count = 0;
    for m in api.methods() {
        let (path, expected) = fill(&m.flat_path);
        let (found, params) = api
            .resolve(&m.http_method, &path)
            .unwrap_or_else(|| panic!("{} {path} does not resolve", m.http_method));
        assert_eq!(found.id, m.id, "{} {path}", m.http_method);
        assert_eq!(params, expected, "{}", m.id);
        // Every path parameter is captured, and only those.
        let path_params: Vec<_> = m
            .parameters
            .iter()
            .filter(|p| p.location == Location::Path)
            .map(|p| &p.name)
            .collect();
        assert_eq!(path_params.len(), params.len(), "{}", m.id);
        count += 1;
    }
    assert!(count > 300, "only {count} methods");
}

#[test]
fn every_kept_resource_is_there_with_its_standard_methods() {
    let api = Api::compute();
    for r in KEPT {
        let methods: Vec<_> = api.methods().filter(|m| m.resource == *r).collect();
        assert!(!methods.is_empty(), "{r} has no methods");
        for m in &methods {
            assert_eq!(m.id, format!("compute.{r}.{}", m.name));
            assert_eq!(api.method(&m.id).map(|x| &x.id), Some(&m.id));
        }
        assert!(methods.iter().any(|m| m.name == "get"), "{r} has no get");
    }
    assert!(api.methods().all(|m| KEPT.contains(&m.resource.as_str())));
}

#[test]
fn resize_resolves_with_params_and_its_query_parameter() {
    let api = Api::compute();
    let (m, params) = api
        .resolve(
            "POST",
            "projects/my-proj/zones/us-central1-a/instanceGroupManagers/web/resize",
        )
        .unwrap();
    assert_eq!(m.id, "compute.instanceGroupManagers.resize");
    assert_eq!(
        (m.resource.as_str(), m.name.as_str()),
        ("instanceGroupManagers", "resize")
    );
    assert_eq!(m.response.as_deref(), Some("Operation"));
    assert_eq!(m.request, None);
    assert_eq!(params["project"], "my-proj");
    assert_eq!(params["zone"], "us-central1-a");
    assert_eq!(params["instanceGroupManager"], "web");
    let names: Vec<_> = m.parameters.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "project",
            "zone",
            "instanceGroupManager",
            "size",
            "requestId"
        ]
    );

    let size = m.query_parameter("size").unwrap();
    assert_eq!(size.kind, ParamType::Integer);
    assert_eq!(size.format.as_deref(), Some("int32"));
    assert!(size.required);
    assert!(
        m.query_parameter("project").is_none(),
        "path parameters are not query parameters"
    );
    // Standard parameters every method accepts, also with the `$` prefix
    // google-cloud-rust uses.
    assert!(m.query_parameter("alt").is_some());
    assert!(m.query_parameter("$alt").is_some());
    assert!(
        m.query_parameter("prettyPrint")
            .is_some_and(|p| p.kind == ParamType::Boolean)
    );
    assert!(m.query_parameter("bogus").is_none());
}

#[test]
fn query_enums_and_repeated_parameters_are_described() {
    let api = Api::compute();
    let update = api.method("compute.instances.update").unwrap();
    let action = update.query_parameter("minimalAction").unwrap();
    assert_eq!(
        action.enum_values,
        ["INVALID", "NO_EFFECT", "REFRESH", "RESTART"]
    );
    let views = api
        .method("compute.subnetworks.list")
        .unwrap()
        .query_parameter("views")
        .unwrap();
    assert!(views.repeated);
}

#[test]
fn literal_segments_win_over_parameters() {
    let api = Api::compute();
    let (m, params) = api
        .resolve("GET", "projects/p/global/backendServices/listUsable")
        .unwrap();
    assert_eq!(m.id, "compute.backendServices.listUsable");
    assert_eq!(params.len(), 1);
    let (m, params) = api
        .resolve("GET", "projects/p/global/backendServices/web")
        .unwrap();
    assert_eq!(m.id, "compute.backendServices.get");
    assert_eq!(params["backendService"], "web");
    let (m, _) = api
        .resolve("GET", "projects/p/aggregated/instanceGroupManagers")
        .unwrap();
    assert_eq!(m.id, "compute.instanceGroupManagers.aggregatedList");
}

#[test]
fn verb_selects_among_methods_on_one_path() {
    let api = Api::compute();
    let path = "projects/p/global/instanceTemplates/t";
    assert_eq!(
        api.resolve("GET", path).unwrap().0.id,
        "compute.instanceTemplates.get"
    );
    assert_eq!(
        api.resolve("DELETE", path).unwrap().0.id,
        "compute.instanceTemplates.delete"
    );
    let list = "projects/p/zones/z/instanceGroupManagers";
    assert_eq!(
        api.resolve("POST", list).unwrap().0.id,
        "compute.instanceGroupManagers.insert"
    );
    assert_eq!(
        api.resolve("GET", list).unwrap().0.id,
        "compute.instanceGroupManagers.list"
    );
}

#[test]
fn leading_slash_query_and_escapes_are_handled() {
    let api = Api::compute();
    let (m, params) = api
        .resolve(
            "GET",
            "/projects/p/zones/z/instances/my%2Dvm?alt=json&$apiVersion=2026-09-01",
        )
        .unwrap();
    assert_eq!(m.id, "compute.instances.get");
    assert_eq!(params["instance"], "my-vm");
}

#[test]
fn unknown_paths_and_verbs_do_not_resolve() {
    let api = Api::compute();
    for (verb, path) in [
        ("POST", "projects/p/zones/z/instanceGroupManagers/m/explode"),
        (
            "DELETE",
            "projects/p/zones/z/instanceGroupManagers/m/resize",
        ),
        ("GET", "projects/p/zones/z/disks/d"), // disks are not part of the kept contract
        ("GET", "projects/p/zones/z/instanceGroupManagers/"),
        ("GET", "projects/p/zones//instanceGroupManagers"),
        (
            "GET",
            "projects/p/zones/z/instanceGroupManagers/m/extra/segments",
        ),
        ("GET", "projects/p"),
        ("GET", ""),
        ("GET", "/"),
        ("BREW", "projects/p/zones/z/instances/i"),
        // Methods are case-sensitive (RFC 9110): `get` is not GET.
        ("get", "projects/p/zones/z/instances/i"),
        ("Post", "projects/p/zones/z/instances"),
        ("GET", "compute/v1/projects/p/zones/z/instances/i"),
    ] {
        assert!(api.resolve(verb, path).is_none(), "{verb} {path} resolved");
    }
}

#[test]
fn lookups_by_id_and_schema_name() {
    let api = Api::compute();
    assert!(api.method("compute.disks.get").is_none());
    assert!(api.method("compute.instanceGroupManagers.resize").is_some());
    assert!(api.schema("InstanceGroupManager").is_some());
    assert!(api.schema("Operation").is_some());
    assert!(api.schema("NoSuchThing").is_none());
    // Every request and response schema a method names is present.
    for m in api.methods() {
        for s in [&m.request, &m.response].into_iter().flatten() {
            assert!(api.schema(s).is_some(), "{} names missing schema {s}", m.id);
        }
    }
}
