//! Cloud SQL Admin: the instance checked, the database and the IAM user
//! made only when missing, deleted only for `onDelete: delete`.

use ccd_services_gcp::{GcpServiceError, OnDelete};
use serde_json::{Value, json};

use crate::EMAIL;
use crate::server::{Server, api, enum_name, error};

fn instance() -> Value {
    json!({"name": "main", "databaseVersion": "POSTGRES_15", "connectionName": "p:europe-west1:main",
           "settings": {"dataApiAccess": "ALLOW_DATA_API",
                        "databaseFlags": [{"name": "cloudsql.iam_authentication", "value": "on"}]}})
}

/// Someone else's binding, and the etag the write must carry.
fn policy() -> Value {
    json!({"version": 3, "etag": "BwYAAA==",
           "bindings": [{"role": "roles/viewer", "members": ["user:ana@example.com"]}]})
}

/// The policy once the app's account may connect and log in.
fn granted() -> Value {
    let grants = ccd_services_gcp::sql::login_grants("p", "main", EMAIL);
    let mut p = policy();
    for g in grants {
        let b = json!({"role": g.role, "members": [g.member],
                       "condition": {"title": g.condition.title, "expression": g.condition.expression}});
        p["bindings"].as_array_mut().unwrap().push(b);
    }
    p
}

fn sql_op(status: &str) -> Value {
    json!({"kind": "sql#operation", "name": "op-1", "status": status})
}

#[tokio::test]
async fn sql_makes_the_database_and_the_iam_user_only_when_missing() {
    let s = Server::start().await;
    s.answer("sql.instances.get", 200, instance())
        .answer("sql.databases.get", 404, error(404, "NOT_FOUND"))
        .answer("sql.databases.insert", 200, sql_op("DONE"))
        .answer("sql.users.get", 404, error(404, "NOT_FOUND"))
        // A running operation is followed to its end.
        .answer("sql.users.insert", 200, sql_op("PENDING"))
        .answer("sql.operations.get", 200, sql_op("DONE"))
        .answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
        .answer("cloudresourcemanager.projects.setIamPolicy", 200, granted())
        .answer("sql.instances.executeSql", 200, json!({"results": []}));
    let made = s
        .services()
        .await
        .ensure_sql("web", None, EMAIL)
        .await
        .unwrap();
    assert_eq!(
        s.methods(),
        [
            "sql.instances.get",
            "sql.databases.get",
            "sql.databases.insert",
            "sql.users.get",
            "sql.users.insert",
            "sql.operations.get",
            "cloudresourcemanager.projects.getIamPolicy",
            "cloudresourcemanager.projects.setIamPolicy",
            "sql.instances.executeSql"
        ]
    );
    let r = s.recorded();
    // Connect and log in, on the project, but only on the instance; the
    // other binding kept, the etag read sent back.
    let set = &r[7].body()["policy"];
    assert_eq!(set["etag"], "BwYAAA==");
    assert_eq!(set["bindings"], granted()["bindings"]);
    for b in &set["bindings"].as_array().unwrap()[1..] {
        assert_eq!(b["members"], json!([format!("serviceAccount:{EMAIL}")]));
        let condition = b["condition"]["expression"].as_str().unwrap();
        assert!(
            condition.contains("resource.name == \"projects/p/instances/main\""),
            "{condition}"
        );
    }
    assert_eq!(r[1].path, "/v1/projects/p/instances/main/databases/web");
    assert_eq!(
        r[2].body()["name"],
        "web",
        "the app's name when the spec names none"
    );
    let user = r[4].body();
    assert_eq!(
        user["name"], "ccd-web@p.iam",
        "the email without .gserviceaccount.com"
    );
    assert_eq!(
        enum_name(api("sqladmin"), "User", "type", &user["type"]),
        "CLOUD_IAM_SERVICE_ACCOUNT"
    );
    // The number the SDK sent is its CloudIamServiceAccount, which the
    // document's list (above) names CLOUD_IAM_SERVICE_ACCOUNT too.
    let sdk: google_cloud_sql_v1::model::User = serde_json::from_value(user.clone()).unwrap();
    assert_eq!(
        sdk.r#type,
        google_cloud_sql_v1::model::user::SqlUserType::CloudIamServiceAccount
    );
    assert!(
        user.get("password").is_none(),
        "no password: IAM logs it in"
    );
    assert_eq!(r[5].path, "/v1/projects/p/operations/op-1");
    assert!((made.created_database, made.created_user) == (true, true));
    assert_eq!(made.connection_name, "p:europe-west1:main");
    assert!(
        made.statements
            .contains("ALTER DATABASE \"web\" OWNER TO \"ccd-web@p.iam\"")
    );
    assert!(
        made.statements
            .contains("REVOKE ALL ON DATABASE \"web\" FROM PUBLIC")
    );

    let s = Server::start().await;
    s.answer("sql.instances.get", 200, instance())
        .answer(
            "sql.databases.get",
            200,
            json!({"name": "notes", "instance": "main", "project": "p"}),
        )
        .answer(
            "sql.users.get",
            200,
            json!({"name": "ccd-web@p.iam", "type": "CLOUD_IAM_SERVICE_ACCOUNT"}),
        )
        .answer("cloudresourcemanager.projects.getIamPolicy", 200, granted())
        .answer("sql.instances.executeSql", 200, json!({}))
        .answer("sql.instances.get", 200, instance())
        .answer("sql.databases.get", 200, json!({"name": "notes"}))
        .answer("sql.users.get", 200, json!({"name": "ccd-web@p.iam"}))
        .answer("cloudresourcemanager.projects.getIamPolicy", 200, granted());
    let gcp = s.services().await;
    let found = gcp.ensure_sql("web", Some("notes"), EMAIL).await.unwrap();
    assert!(found.ran_statements, "the SQL runs once per process");
    let again = gcp.ensure_sql("web", Some("notes"), EMAIL).await.unwrap();
    assert!(
        !again.ran_statements,
        "and not again while nothing was made"
    );
    let methods = s.methods();
    assert_eq!(
        methods[..5],
        [
            "sql.instances.get",
            "sql.databases.get",
            "sql.users.get",
            "cloudresourcemanager.projects.getIamPolicy",
            "sql.instances.executeSql"
        ],
        "nothing inserted, no policy written"
    );
    assert_eq!(methods.len(), 9, "{methods:?}");
    assert_eq!(
        s.recorded()[1].path,
        "/v1/projects/p/instances/main/databases/notes"
    );
    assert!(!found.created_database && !found.created_user);
}

#[tokio::test]
async fn sql_that_fails_on_the_instance_is_an_error_naming_the_fix() {
    let s = Server::start().await;
    s.answer("sql.instances.get", 200, instance())
        .answer("sql.databases.get", 200, json!({"name": "web"}))
        .answer("sql.users.get", 200, json!({"name": "ccd-web@p.iam"}))
        .answer("cloudresourcemanager.projects.getIamPolicy", 200, granted())
        // A statement's failure is an HTTP 200 with a status.
        .answer(
            "sql.instances.executeSql",
            200,
            json!({"status": {"code": 7, "message": "must be owner of database web"}}),
        );
    let e = s
        .services()
        .await
        .ensure_sql("web", None, EMAIL)
        .await
        .unwrap_err();
    let said = e.to_string();
    assert!(said.contains("must be owner of database web"), "{said}");
    assert!(said.contains("cloudsqlsuperuser"), "{said}");
}

#[tokio::test]
async fn sql_errors_a_user_can_fix_name_the_fix() {
    let s = Server::start().await;
    s.answer("sql.instances.get", 404, error(404, "NOT_FOUND"));
    let e = s
        .services()
        .await
        .ensure_sql("web", None, EMAIL)
        .await
        .unwrap_err();
    assert!(
        matches!(e, GcpServiceError::Config(_))
            && e.to_string().contains("`services.sql.instance`"),
        "{e}"
    );

    let mut off = instance();
    off["settings"]["databaseFlags"] = json!([]);
    let mut mysql = instance();
    mysql["databaseVersion"] = json!("MYSQL_8_0");
    let mut no_data_api = instance();
    no_data_api["settings"]["dataApiAccess"] = json!("DISALLOW_DATA_API");
    for (answer, fix) in [
        (off, "cloudsql.iam_authentication=on"),
        (mysql, "PostgreSQL"),
        (no_data_api, "ALLOW_DATA_API"),
    ] {
        let s = Server::start().await;
        s.answer("sql.instances.get", 200, answer);
        let e = s
            .services()
            .await
            .ensure_sql("web", None, EMAIL)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(fix), "{e}");
        assert_eq!(
            s.methods(),
            ["sql.instances.get"],
            "nothing made on a wrong instance"
        );
    }

    let s = Server::start().await;
    s.answer("sql.instances.get", 200, instance()).answer(
        "sql.databases.get",
        403,
        error(403, "PERMISSION_DENIED"),
    );
    let e = s
        .services()
        .await
        .ensure_sql("web", None, EMAIL)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cloudsql.databases.get"), "{e}");
    let e = s
        .services()
        .await
        .ensure_sql("web", Some("postgres"), EMAIL)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("services.sql.database"), "{e}");
}

#[tokio::test]
async fn sql_data_is_deleted_only_for_on_delete_delete() {
    let s = Server::start().await;
    let services = s.services().await;
    s.answer("cloudresourcemanager.projects.getIamPolicy", 200, granted())
        .answer("cloudresourcemanager.projects.setIamPolicy", 200, policy());
    services
        .remove_sql("web", None, EMAIL, OnDelete::Retain)
        .await
        .unwrap();
    let r = s.recorded();
    assert_eq!(
        r.len(),
        2,
        "retain: the grants go, the database and user stay"
    );
    assert_eq!(r[1].body()["policy"]["bindings"], policy()["bindings"]);

    s.answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
        .answer("sql.databases.delete", 200, sql_op("DONE"))
        .answer("sql.users.delete", 404, error(404, "NOT_FOUND"));
    services
        .remove_sql("web", None, EMAIL, OnDelete::Delete)
        .await
        .unwrap();
    let r = &s.recorded()[2..];
    assert_eq!(
        r.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        [
            "cloudresourcemanager.projects.getIamPolicy",
            "sql.databases.delete",
            "sql.users.delete"
        ],
        "nothing left to revoke; the owner goes last"
    );
    assert_eq!(r[1].path, "/v1/projects/p/instances/main/databases/web");
    assert_eq!(r[2].query("name"), Some("ccd-web@p.iam"));
}
