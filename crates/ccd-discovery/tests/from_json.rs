#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A contract loaded at run time from another API's discovery document:
//! nested resources, custom verbs after a parameter (`{x}:getIamPolicy`)
//! and, when asked for, enums given by number as the Rust SDKs send them.

use ccd_discovery::Api;
use serde_json::json;

/// The shape of Google's resource-oriented documents (Firestore, Resource
/// Manager): paths from the host's root, `{+name}` paths, nested resources.
fn doc() -> String {
    let param = |location: &str| json!({"location": location, "type": "string"});
    let method = |id: &str, verb: &str, flat: &str| {
        json!({
            "id": id, "httpMethod": verb, "flatPath": flat, "path": "v1/{+name}",
            "parameterOrder": ["name"], "parameters": {"name": param("path"), "databaseId": param("query")},
            "request": {"$ref": "Database"}
        })
    };
    json!({
        "name": "demo", "version": "v1", "revision": "1", "rootUrl": "https://demo.example/",
        "servicePath": "", "parameters": {"alt": param("query")},
        "resources": {"projects": {
            "methods": {
                "get": method("demo.projects.get", "GET", "v1/projects/{projectsId}"),
                "getIamPolicy": method("demo.projects.getIamPolicy", "POST", "v1/projects/{projectsId}:getIamPolicy"),
                "search": method("demo.projects.search", "POST", "v1/projects:search")
            },
            "resources": {"databases": {
                "methods": {"create": method("demo.projects.databases.create", "POST", "v1/projects/{projectsId}/databases")}
            }}
        }},
        "schemas": {"Database": {"id": "Database", "type": "object", "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["TYPE_UNSPECIFIED", "NATIVE", "DATASTORE"]}
        }}}
    })
    .to_string()
}

#[test]
fn nested_resources_and_custom_verbs_resolve() {
    let api = Api::from_json(&doc()).unwrap();
    let (m, params) = api.resolve("POST", "/v1/projects/p1:getIamPolicy").unwrap();
    assert_eq!(m.id, "demo.projects.getIamPolicy");
    assert_eq!(params["projectsId"], "p1");
    assert_eq!(
        api.resolve("GET", "v1/projects/p1").unwrap().0.id,
        "demo.projects.get"
    );
    assert_eq!(
        api.resolve("POST", "v1/projects:search").unwrap().0.id,
        "demo.projects.search",
        "a literal with a verb is a literal"
    );
    let (m, _) = api
        .resolve("POST", "v1/projects/p1/databases?databaseId=d")
        .unwrap();
    assert_eq!(
        (m.id.as_str(), m.resource.as_str()),
        ("demo.projects.databases.create", "projects.databases")
    );
    assert!(m.query_parameter("databaseId").is_some());
    assert!(
        api.resolve("POST", "v1/projects/p1:setIamPolicy").is_none(),
        "an unknown verb"
    );
    assert!(
        api.resolve("POST", "v1/projects/:getIamPolicy").is_none(),
        "an empty value"
    );
    assert!(
        api.resolve("GET", "v1/projects/p1:getIamPolicy")
            .is_some_and(|(m, p)| {
                // GET has no custom verb here: the plain parameter takes the segment whole.
                m.id == "demo.projects.get" && p["projectsId"] == "p1:getIamPolicy"
            })
    );
}

#[test]
fn enum_numbers_only_when_asked_and_only_in_range() {
    let strict = Api::from_json(&doc()).unwrap();
    let numbered = Api::from_json(&doc()).unwrap().with_enum_numbers();
    assert!(
        strict
            .check_request("Database", &json!({"type": 1}))
            .is_err()
    );
    assert!(
        numbered
            .check_request("Database", &json!({"type": 1}))
            .is_ok()
    );
    assert!(
        numbered
            .check_request("Database", &json!({"type": "NATIVE"}))
            .is_ok()
    );
    assert!(
        numbered
            .check_request("Database", &json!({"type": 3}))
            .is_err()
    );
    assert!(
        numbered
            .check_request("Database", &json!({"type": -1}))
            .is_err()
    );
    assert!(
        numbered
            .check_response("Database", &json!({"type": 1}))
            .is_err(),
        "Google answers names"
    );
}

#[test]
fn a_broken_document_is_an_error_not_a_panic() {
    assert!(Api::from_json("{").is_err());
    let missing = doc().replace("\"$ref\":\"Database\"", "\"$ref\":\"Nope\"");
    assert!(Api::from_json(&missing).is_err());
}
