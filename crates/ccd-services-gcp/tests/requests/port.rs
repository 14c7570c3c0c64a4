//! The adapter through the deploy reconciler's port: an app asking for
//! every service, what its status and credentials show, what each pass
//! writes, a controller without a Cloud SQL instance, and deletion as each
//! service's `onDelete` says.

use std::time::Duration;

use base64::Engine as _;
use ccd_services::{ServiceState, ServiceStatus, Services as _};
use ccd_services_gcp::{GcpConfig, GcpServices};
use serde_json::{Value, json};

use crate::EMAIL;
use crate::folders::Folders;
use crate::server::{Server, error};

const SPEC: &str = "apiVersion: ccd/v1
kind: App
metadata: {name: web}
spec:
  image: europe-docker.pkg.dev/p/apps/web:1.0.0
  version: 1.0.0
  port: 8080
  health: {http: {path: /healthz}}
  services:
    sql: {engine: postgres}
    nosql: {}
    cache: {}
    storage: {bucket: files}
    logs: {retention: 720h}
";

fn app() -> ccd_spec::App {
    ccd_spec::parse(SPEC).unwrap()
}

async fn services(s: &Server, folders: &Folders, sql: bool) -> GcpServices {
    let mut config = GcpConfig::new("p", "europe-west1");
    config.sql_instance = sql.then(|| "main".to_owned());
    config.logs_bucket = Some("ccd-logs".to_owned());
    config.endpoint = Some(s.endpoint.clone());
    config.credentials = Some(google_cloud_auth::credentials::anonymous::Builder::new().build());
    config.poll_interval = Duration::from_millis(10);
    config.storage_control = Some(folders.control());
    GcpServices::new(config).await.unwrap()
}

fn instance() -> Value {
    json!({"name": "main", "databaseVersion": "POSTGRES_15", "connectionName": "p:europe-west1:main",
           "ipAddresses": [{"type": "PRIMARY", "ipAddress": "34.1.2.3"},
                           {"type": "PRIVATE", "ipAddress": "10.0.0.5"}],
           "settings": {"dataApiAccess": "ALLOW_DATA_API",
                        "databaseFlags": [{"name": "cloudsql.iam_authentication", "value": "on"}]}})
}

/// Someone else's binding, and the etag the write must carry.
fn policy() -> Value {
    json!({"version": 3, "etag": "BwYAAA==",
           "bindings": [{"role": "roles/viewer", "members": ["user:ana@example.com"]}]})
}

fn native() -> Value {
    json!({"name": "projects/p/databases/ccd-web", "type": "FIRESTORE_NATIVE",
           "locationId": "europe-west1", "deleteProtectionState": "DELETE_PROTECTION_ENABLED"})
}

fn sink() -> Value {
    json!({"name": "ccd-web-logs", "destination": "storage.googleapis.com/ccd-logs",
           "filter": ccd_services_gcp::logging::app_filter("p", "web"),
           "writerIdentity": "serviceAccount:sink-1@gcp-sa-logging.iam.gserviceaccount.com"})
}

fn version(value: &str) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(value);
    json!({"name": "projects/p/secrets/x/versions/1", "payload": {"data": data}})
}

/// The value a recorded `addVersion` wrote.
fn written(body: &Value) -> String {
    let data = body["payload"]["data"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
    .unwrap()
}

const VARIABLES: [&str; 9] = [
    "DATABASE_URL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "FIRESTORE_PROJECT_ID",
    "FIRESTORE_DATABASE_ID",
    "STORAGE_BUCKET",
    "STORAGE_PREFIX",
];

/// Answers for one pass in which everything but secrets exists; the
/// secrets' latest values from `latest` (none: the secret is missing).
fn existing(s: &Server, latest: &dyn Fn(&str) -> Option<String>) {
    s.answer("sql.instances.get", 200, instance())
        .answer("sql.databases.get", 200, json!({"name": "web"}))
        .answer("sql.users.get", 200, json!({"name": "ccd-web@p.iam"}))
        .answer("firestore.projects.databases.get", 200, native())
        .answer("logging.projects.sinks.get", 200, sink());
    for v in VARIABLES {
        match latest(v) {
            Some(value) => {
                s.answer(
                    "secretmanager.projects.secrets.versions.access",
                    200,
                    version(&value),
                );
            }
            None => {
                s.answer(
                    "secretmanager.projects.secrets.versions.access",
                    404,
                    error(404, "NOT_FOUND"),
                )
                .answer(
                    "secretmanager.projects.secrets.get",
                    404,
                    error(404, "NOT_FOUND"),
                )
                .answer(
                    "secretmanager.projects.secrets.create",
                    200,
                    json!({"name": "x"}),
                );
            }
        }
    }
}

fn of<'a>(p: &'a ccd_services::Provisioned, kind: &str) -> &'a ServiceStatus {
    p.services.iter().find(|s| s.kind == kind).unwrap()
}

#[tokio::test]
async fn every_service_is_provided_once_and_its_secrets_versioned_only_on_change() {
    // First pass: the database and user are new, the grants missing, no secret yet.
    let s = Server::start().await;
    let folders = Folders::default();
    s.answer("sql.instances.get", 200, instance())
        .answer("sql.databases.get", 404, error(404, "NOT_FOUND"))
        .answer(
            "sql.databases.insert",
            200,
            json!({"name": "op-1", "status": "DONE"}),
        )
        .answer("sql.users.get", 404, error(404, "NOT_FOUND"))
        .answer(
            "sql.users.insert",
            200,
            json!({"name": "op-2", "status": "DONE"}),
        )
        .answer(
            "sql.instances.executeSql",
            200,
            json!({"results": [{"message": "ALTER DATABASE"}]}),
        )
        .answer("firestore.projects.databases.get", 200, native())
        .answer("logging.projects.sinks.get", 404, error(404, "NOT_FOUND"))
        .answer("logging.projects.sinks.create", 200, sink());
    for _ in 0..2 {
        s.answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
            .answer("cloudresourcemanager.projects.setIamPolicy", 200, policy());
    }
    for _ in VARIABLES {
        s.answer(
            "secretmanager.projects.secrets.versions.access",
            404,
            error(404, "NOT_FOUND"),
        )
        .answer(
            "secretmanager.projects.secrets.get",
            404,
            error(404, "NOT_FOUND"),
        )
        .answer(
            "secretmanager.projects.secrets.create",
            200,
            json!({"name": "x"}),
        )
        .answer(
            "secretmanager.projects.secrets.addVersion",
            200,
            json!({"name": "x/versions/1"}),
        );
    }
    let gcp = services(&s, &folders, true).await;
    let app = app();
    let got = gcp.ensure(&app).await;

    assert_eq!(got.problem, None, "{:#?}", got.services);
    for kind in ["sql", "nosql", "storage", "logs"] {
        assert_eq!(
            of(&got, kind).state,
            ServiceState::Ready,
            "{kind}: {:?}",
            of(&got, kind)
        );
    }
    let cache = of(&got, "cache");
    assert_eq!(cache.state, ServiceState::NotProvided);
    assert!(cache.message.contains("Memorystore"), "{}", cache.message);
    // The variables are secret references named as the template expects;
    // there is no PGPASSWORD: the account logs in with IAM.
    let names: Vec<_> = got.credentials.keys().map(String::as_str).collect();
    let mut expected = VARIABLES.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(
        got.credentials["DATABASE_URL"].secret,
        "ccd-web-sql-databaseurl"
    );
    assert_eq!(got.credentials["DATABASE_URL"].version, "latest");
    let sql = of(&got, "sql");
    assert_eq!(
        sql.endpoint.as_deref(),
        Some("10.0.0.5:5432"),
        "the private address first"
    );
    assert_eq!(sql.user.as_deref(), Some("ccd-web@p.iam"));

    let r = s.recorded();
    // Every secret created with the app's label, then given its value.
    let created: Vec<_> = r
        .iter()
        .filter(|r| r.method == "secretmanager.projects.secrets.create")
        .collect();
    assert_eq!(created.len(), VARIABLES.len());
    assert_eq!(
        created[0].query("secretId"),
        Some("ccd-web-sql-databaseurl")
    );
    assert_eq!(created[0].body()["labels"]["ccd-app"], "web");
    let values: std::collections::BTreeMap<String, String> = r
        .iter()
        .filter(|r| r.method == "secretmanager.projects.secrets.addVersion")
        .map(|r| (r.path.clone(), written(r.body())))
        .collect();
    let value =
        |secret: &str| values[&format!("/v1/projects/p/secrets/{secret}:addVersion")].clone();
    assert_eq!(
        value("ccd-web-sql-databaseurl"),
        "postgresql://ccd-web%40p.iam@10.0.0.5:5432/web?sslmode=require"
    );
    assert_eq!(value("ccd-web-nosql-firestoredatabaseid"), "ccd-web");
    assert_eq!(value("ccd-web-nosql-firestoreprojectid"), "p");
    assert_eq!(value("ccd-web-storage-storagebucket"), "files");
    assert_eq!(value("ccd-web-storage-storageprefix"), "web/");
    // The ownership SQL ran, as the controller's IAM user, on the instance.
    let exec = r
        .iter()
        .find(|r| r.method == "sql.instances.executeSql")
        .unwrap();
    assert_eq!(exec.body()["autoIamAuthn"], true);
    assert_eq!(exec.body()["database"], "postgres");
    let sql_text = exec.body()["sqlStatement"].as_str().unwrap();
    assert!(
        sql_text.contains("ALTER DATABASE \"web\" OWNER TO \"ccd-web@p.iam\""),
        "{sql_text}"
    );
    assert!(
        sql_text.contains("REVOKE ALL ON DATABASE \"web\" FROM PUBLIC"),
        "{sql_text}"
    );
    // Project policy writes keep the other binding and the etag read.
    for set in r
        .iter()
        .filter(|r| r.method == "cloudresourcemanager.projects.setIamPolicy")
    {
        let p = &set.body()["policy"];
        assert_eq!(p["etag"], "BwYAAA==");
        assert_eq!(p["bindings"][0], policy()["bindings"][0]);
    }
    // The folder is the app's alone; the sink may write to the logs bucket.
    let member = format!("serviceAccount:{EMAIL}");
    {
        let st = folders.state();
        let folder = &st.policies["projects/_/buckets/files/managedFolders/web/"];
        assert_eq!(folder.bindings.len(), 1);
        assert_eq!(folder.bindings[0].role, "roles/storage.objectUser");
        assert_eq!(folder.bindings[0].members, std::slice::from_ref(&member));
        let logs = &st.policies["projects/_/buckets/ccd-logs"];
        assert_eq!(logs.bindings[0].role, "roles/storage.objectCreator");
        assert_eq!(
            logs.bindings[0].members,
            ["serviceAccount:sink-1@gcp-sa-logging.iam.gserviceaccount.com"]
        );
    }
    assert!(folders.calls().contains(
        &"create_managed_folder projects/_/buckets/files/managedFolders/web/".to_owned()
    ));

    // Second pass (another process): all there, one value changed (the
    // instance moved): nothing created, one version added, no policy written.
    let s2 = Server::start().await;
    let before: Vec<(String, String)> = values
        .iter()
        .map(|(path, v)| (path.clone(), v.clone()))
        .collect();
    let latest = |var: &str| {
        let secret = ccd_services::names::secret_of("web", kind_of(var), var);
        let path = format!("/v1/projects/p/secrets/{secret}:addVersion");
        before
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, v)| match var {
                "PGHOST" => "10.0.0.4".to_owned(),
                _ => v.clone(),
            })
    };
    existing(&s2, &latest);
    s2.answer(
        "secretmanager.projects.secrets.addVersion",
        200,
        json!({"name": "x/versions/2"}),
    );
    for _ in 0..2 {
        s2.answer(
            "cloudresourcemanager.projects.getIamPolicy",
            200,
            granted_all(),
        );
    }
    let again = services_again(&s2, &folders).await.ensure(&app).await;
    assert_eq!(again.problem, None, "{:#?}", again.services);
    let methods = s2.methods();
    let added: Vec<_> = s2
        .recorded()
        .into_iter()
        .filter(|r| r.method == "secretmanager.projects.secrets.addVersion")
        .collect();
    assert_eq!(added.len(), 1);
    assert_eq!(
        added[0].path,
        "/v1/projects/p/secrets/ccd-web-sql-pghost:addVersion"
    );
    for never in [
        "secretmanager.projects.secrets.create",
        "sql.databases.insert",
        "sql.users.insert",
        "cloudresourcemanager.projects.setIamPolicy",
        "logging.projects.sinks.create",
    ] {
        assert!(
            !methods.iter().any(|m| m == never),
            "{never} in {methods:?}"
        );
    }
    let writes = folders
        .calls()
        .iter()
        .filter(|c| c.starts_with("set_iam_policy") || c.starts_with("create_"))
        .count();
    assert_eq!(writes, 3, "folder made once, two policies written once");
}

fn kind_of(var: &str) -> &'static str {
    match var {
        v if v.starts_with("PG") || v == "DATABASE_URL" => "sql",
        v if v.starts_with("FIRESTORE") => "nosql",
        _ => "storage",
    }
}

/// The project's policy once every grant of the app is in it.
fn granted_all() -> Value {
    let mut p = policy();
    let bindings = p["bindings"].as_array_mut().unwrap();
    let sql = ccd_services_gcp::sql::login_grants("p", "main", EMAIL);
    let fs = ccd_services_gcp::firestore::grant("web", "projects/p/databases/ccd-web", EMAIL);
    for g in sql.into_iter().chain([fs]) {
        bindings.push(json!({"role": g.role, "members": [g.member],
            "condition": {"title": g.condition.title, "expression": g.condition.expression}}));
    }
    p
}

/// A new adapter (a new process: the SQL would run again) on the same
/// folders. The SQL's being run once per process is shown by the first
/// pass; here the test wants the steady state of one process.
async fn services_again(s: &Server, folders: &Folders) -> GcpServices {
    s.answer("sql.instances.executeSql", 200, json!({}));
    services(s, folders, true).await
}

#[tokio::test]
async fn without_a_sql_instance_sql_fails_naming_the_field_and_the_rest_is_provided() {
    let s = Server::start().await;
    let folders = Folders::default();
    s.answer("firestore.projects.databases.get", 200, native())
        .answer("logging.projects.sinks.get", 200, sink())
        .answer("cloudresourcemanager.projects.getIamPolicy", 200, policy())
        .answer("cloudresourcemanager.projects.setIamPolicy", 200, policy());
    for v in &VARIABLES[5..] {
        s.answer(
            "secretmanager.projects.secrets.versions.access",
            200,
            version(&format!("old {v}")),
        )
        .answer(
            "secretmanager.projects.secrets.addVersion",
            200,
            json!({"name": "x/versions/2"}),
        );
    }
    let got = services(&s, &folders, false).await.ensure(&app()).await;
    let sql = of(&got, "sql");
    assert_eq!(sql.state, ServiceState::Failed);
    assert!(
        sql.message.contains("services.sql.instance"),
        "{}",
        sql.message
    );
    assert!(
        got.problem
            .as_deref()
            .is_some_and(|p| p.contains("services.sql.instance"))
    );
    for kind in ["nosql", "storage", "logs"] {
        assert_eq!(of(&got, kind).state, ServiceState::Ready, "{kind}");
    }
    assert!(!got.credentials.contains_key("DATABASE_URL"));
    assert!(got.credentials.contains_key("STORAGE_PREFIX"));
    assert!(
        !s.methods().iter().any(|m| m.starts_with("sql.")),
        "no Cloud SQL call"
    );
}

fn status(kind: &str, name: &str, user: &str, on_delete: &str) -> ServiceStatus {
    ServiceStatus {
        name: Some(name.to_owned()),
        user: Some(user.to_owned()),
        on_delete: Some(on_delete.to_owned()),
        ..ServiceStatus::ready(kind)
    }
}

#[tokio::test]
async fn release_deletes_only_what_on_delete_says_and_reports_what_failed() {
    let s = Server::start().await;
    let folders = Folders::default();
    {
        let mut st = folders.state();
        st.folders
            .insert("projects/_/buckets/files/managedFolders/web/".to_owned());
        let objects = st
            .objects
            .entry("projects/_/buckets/files".to_owned())
            .or_default();
        for o in [
            "web/a.txt",
            "web/b/c.txt",
            "webby/keep.txt",
            "other/keep.txt",
        ] {
            objects.insert(o.to_owned());
        }
    }
    // sql delete: grants revoked, database then user deleted, its secrets gone.
    s.answer(
        "cloudresourcemanager.projects.getIamPolicy",
        200,
        granted_all(),
    )
    .answer("cloudresourcemanager.projects.setIamPolicy", 200, policy())
    .answer(
        "sql.databases.delete",
        200,
        json!({"name": "op-3", "status": "DONE"}),
    )
    .answer(
        "sql.users.delete",
        200,
        json!({"name": "op-4", "status": "DONE"}),
    );
    // Every variable of the contract, those never delivered too (404).
    for _ in ccd_spec::contract::SQL
        .iter()
        .chain(&ccd_spec::contract::STORAGE)
    {
        s.answer("secretmanager.projects.secrets.delete", 200, json!({}));
    }
    // nosql retain: only its grant goes; the revocation fails here, which
    // is reported and fails nothing else.
    s.answer(
        "cloudresourcemanager.projects.getIamPolicy",
        403,
        error(403, "PERMISSION_DENIED"),
    );
    // logs: the sink goes whatever onDelete says.
    s.answer("logging.projects.sinks.delete", 200, json!({}));
    let gcp = services(&s, &folders, true).await;
    let statuses = [
        status("sql", "web", "ccd-web@p.iam", "delete"),
        status("nosql", "ccd-web", EMAIL, "retain"),
        status("storage", "files/web/", EMAIL, "delete"),
        status("logs", "ccd-web-logs", "", "retain"),
        ServiceStatus {
            state: ServiceState::NotProvided,
            ..ServiceStatus::ready("cache")
        },
    ];
    let released = gcp.release("web", &statuses).await;
    assert_eq!(released.deleted, ["sql", "storage", "logs"]);
    assert!(released.retained.is_empty());
    assert_eq!(released.problems.len(), 1, "{:?}", released.problems);
    assert!(
        released.problems[0].starts_with("nosql: kept"),
        "{}",
        released.problems[0]
    );
    let methods = s.methods();
    assert!(
        !methods.iter().any(|m| m.starts_with("firestore.")),
        "the database is kept: {methods:?}"
    );
    let r = s.recorded();
    let deleted: Vec<_> = r
        .iter()
        .filter(|r| r.method == "secretmanager.projects.secrets.delete")
        .map(|r| r.path.as_str())
        .collect();
    assert!(deleted.contains(&"/v1/projects/p/secrets/ccd-web-sql-databaseurl"));
    let (gone, left): (bool, Vec<_>) = {
        let st = folders.state();
        let left = st.objects["projects/_/buckets/files"]
            .iter()
            .cloned()
            .collect();
        (st.folders.is_empty(), left)
    };
    assert!(gone, "the folder is gone");
    assert_eq!(
        left,
        ["other/keep.txt", "webby/keep.txt"],
        "only the app's prefix"
    );

    // retain keeps the folder and its objects, and takes the account's role away.
    let s = Server::start().await;
    let gcp = services(&s, &folders, true).await;
    folders
        .state()
        .folders
        .insert("projects/_/buckets/files/managedFolders/web/".to_owned());
    gcp.ensure_storage("web", Some("files"), EMAIL)
        .await
        .unwrap();
    let kept = gcp
        .release("web", &[status("storage", "files/web/", EMAIL, "retain")])
        .await;
    assert_eq!(kept.retained, ["storage"]);
    assert!(kept.problems.is_empty(), "{:?}", kept.problems);
    let st = folders.state();
    assert!(
        st.folders
            .contains("projects/_/buckets/files/managedFolders/web/")
    );
    assert!(
        st.policies["projects/_/buckets/files/managedFolders/web/"]
            .bindings
            .is_empty()
    );
    assert!(s.methods().is_empty(), "no secret deleted for retain");
}
