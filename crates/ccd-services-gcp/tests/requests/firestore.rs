//! Firestore Admin and Resource Manager: a protected database per app and a
//! project binding limited to it by a condition, the other bindings kept.

use ccd_services_gcp::{GcpServiceError, OnDelete};
use serde_json::{Value, json};

use crate::EMAIL;
use crate::server::{Server, api, enum_name, error};

fn policy() -> Value {
    json!({"version": 3, "etag": "BwYAAA==", "bindings": [
        {"role": "roles/viewer", "members": ["user:ana@example.com"]},
        {"role": "roles/datastore.user", "members": ["serviceAccount:other@p.iam.gserviceaccount.com"],
         "condition": {"title": "other", "expression": "resource.name == \"projects/p/databases/other\""}}
    ]})
}

fn firestore_op() -> Value {
    json!({"name": "projects/p/databases/ccd-web/operations/o1", "done": true, "response": {
        "@type": "type.googleapis.com/google.firestore.admin.v1.Database",
        "name": "projects/p/databases/ccd-web"}})
}

fn native(protection: &str) -> Value {
    json!({"name": "projects/p/databases/ccd-web", "type": "FIRESTORE_NATIVE",
           "locationId": "europe-west1", "deleteProtectionState": protection})
}

#[tokio::test]
async fn firestore_makes_a_protected_database_and_a_grant_limited_to_it() {
    let s = Server::start().await;
    s.answer(
        "firestore.projects.databases.get",
        404,
        error(404, "NOT_FOUND"),
    )
    .answer("firestore.projects.databases.create", 200, firestore_op())
    .answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
    .answer(
        "cloudresourcemanager.projects.setIamPolicy",
        200,
        json!({"version": 3, "etag": "BwYBAg=="}),
    );
    let made = s
        .services()
        .await
        .ensure_firestore("web", None, EMAIL)
        .await
        .unwrap();
    assert_eq!(
        (made.database.as_str(), made.created),
        ("projects/p/databases/ccd-web", true)
    );
    let r = s.recorded();
    let create = &r[1];
    assert_eq!(create.query("databaseId"), Some("ccd-web"));
    let fs = api("firestore");
    let schema = "GoogleFirestoreAdminV1Database";
    assert_eq!(
        enum_name(fs, schema, "type", &create.body()["type"]),
        "FIRESTORE_NATIVE"
    );
    assert_eq!(
        enum_name(
            fs,
            schema,
            "deleteProtectionState",
            &create.body()["deleteProtectionState"]
        ),
        "DELETE_PROTECTION_ENABLED"
    );
    assert_eq!(
        create.body()["locationId"],
        "europe-west1",
        "the region when no location is configured"
    );
    assert_eq!(r[2].path, "/v3/projects/p:getIamPolicy");
    assert_eq!(
        r[2].body()["options"]["requestedPolicyVersion"],
        3,
        "conditions come back whole"
    );

    let set = r[3].body()["policy"].clone();
    assert_eq!(set["etag"], "BwYAAA==", "written with the etag read");
    assert_eq!(set["version"], 3);
    let bindings = set["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 3, "one binding added");
    assert_eq!(
        &bindings[..2],
        &policy()["bindings"].as_array().unwrap()[..],
        "the others kept as they were"
    );
    assert_eq!(bindings[2]["role"], "roles/datastore.user");
    assert_eq!(
        bindings[2]["members"],
        json!([format!("serviceAccount:{EMAIL}")])
    );
    assert_eq!(
        bindings[2]["condition"]["expression"],
        "resource.name == \"projects/p/databases/ccd-web\""
    );
}

#[tokio::test]
async fn firestore_changes_nothing_that_is_right_and_refuses_a_datastore() {
    let mut mine = policy();
    mine["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "roles/datastore.user",
        "members": [format!("serviceAccount:{EMAIL}")],
        "condition": {"title": "ccd web: its Firestore database only",
                      "expression": "resource.name == \"projects/p/databases/ccd-web\""}}));
    let s = Server::start().await;
    s.answer(
        "firestore.projects.databases.get",
        200,
        native("DELETE_PROTECTION_ENABLED"),
    )
    .answer("cloudresourcemanager.projects.getIamPolicy", 200, mine);
    let found = s
        .services()
        .await
        .ensure_firestore("web", None, EMAIL)
        .await
        .unwrap();
    assert!(!found.created);
    assert_eq!(
        s.methods(),
        [
            "firestore.projects.databases.get",
            "cloudresourcemanager.projects.getIamPolicy"
        ]
    );

    let mut datastore = native("DELETE_PROTECTION_ENABLED");
    datastore["type"] = json!("DATASTORE_MODE");
    let s = Server::start().await;
    s.answer("firestore.projects.databases.get", 200, datastore);
    let e = s
        .services()
        .await
        .ensure_firestore("web", None, EMAIL)
        .await
        .unwrap_err();
    assert!(
        matches!(e, GcpServiceError::Conflict { .. }) && e.to_string().contains("services.nosql"),
        "{e}"
    );
}

#[tokio::test]
async fn a_policy_changed_meanwhile_is_read_and_changed_again() {
    let s = Server::start().await;
    s.answer(
        "firestore.projects.databases.get",
        200,
        native("DELETE_PROTECTION_ENABLED"),
    )
    .answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
    .answer(
        "cloudresourcemanager.projects.setIamPolicy",
        409,
        error(409, "ABORTED"),
    )
    .answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
    .answer(
        "cloudresourcemanager.projects.setIamPolicy",
        200,
        json!({"version": 3}),
    );
    s.services()
        .await
        .ensure_firestore("web", None, EMAIL)
        .await
        .unwrap();
    assert_eq!(s.methods().len(), 5);
}

#[tokio::test]
async fn firestore_data_is_deleted_only_for_on_delete_delete() {
    let mut mine = policy();
    let granted = json!({"role": "roles/datastore.user", "members": [format!("serviceAccount:{EMAIL}")],
        "condition": {"title": "ccd web: its Firestore database only",
                      "expression": "resource.name == \"projects/p/databases/ccd-web\""}});
    mine["bindings"].as_array_mut().unwrap().push(granted);
    let s = Server::start().await;
    s.answer(
        "cloudresourcemanager.projects.getIamPolicy",
        200,
        mine.clone(),
    )
    .answer("cloudresourcemanager.projects.setIamPolicy", 200, policy());
    let services = s.services().await;
    services
        .remove_firestore("web", None, EMAIL, OnDelete::Retain)
        .await
        .unwrap();
    let r = s.recorded();
    assert_eq!(r.len(), 2, "retain: the grant goes, the database stays");
    assert_eq!(
        r[1].body()["policy"]["bindings"],
        policy()["bindings"],
        "only the app's binding taken out"
    );

    s.answer("cloudresourcemanager.projects.getIamPolicy", 200, mine)
        .answer("cloudresourcemanager.projects.setIamPolicy", 200, policy())
        .answer(
            "firestore.projects.databases.get",
            200,
            native("DELETE_PROTECTION_ENABLED"),
        )
        .answer("firestore.projects.databases.patch", 200, firestore_op())
        .answer("firestore.projects.databases.delete", 200, firestore_op());
    services
        .remove_firestore("web", None, EMAIL, OnDelete::Delete)
        .await
        .unwrap();
    let r = s.recorded();
    let patch = &r[5];
    assert_eq!(
        patch.method, "firestore.projects.databases.patch",
        "protection off, right before deleting"
    );
    assert_eq!(patch.query("updateMask"), Some("deleteProtectionState"));
    assert_eq!(
        enum_name(
            api("firestore"),
            "GoogleFirestoreAdminV1Database",
            "deleteProtectionState",
            &patch.body()["deleteProtectionState"]
        ),
        "DELETE_PROTECTION_DISABLED"
    );
    assert_eq!(r[6].method, "firestore.projects.databases.delete");
    assert_eq!(r[6].path, "/v1/projects/p/databases/ccd-web");
}
