#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;

const EMAIL: &str = "ccd-web@p.iam.gserviceaccount.com";
const ACCESSOR: &str = "roles/secretmanager.secretAccessor";

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccd-localcloud-iam-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    dir
}

/// An IAM over an in-memory store whose secrets folder holds `db`.
fn iam_with_db(tag: &str) -> (Iam, PathBuf) {
    let dir = scratch(tag);
    std::fs::write(dir.join("secrets").join("db"), "value").unwrap();
    (Iam::new(Store::in_memory(), Some(dir.join("secrets"))), dir)
}

/// One call as it arrives over HTTP: method, the path below the port, a body.
async fn call(iam: &Iam, method: &str, path: &str, body: Value) -> Result<Value, IamError> {
    let call = if let Some(rest) = path.strip_prefix("/v1/projects/") {
        route::v1(method, rest)?
    } else if let Some(segment) = path.strip_prefix("/v3/projects/") {
        route::v3(method, segment)?
    } else {
        panic!("not an IAM path: {path}");
    };
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    iam.answer(call, &body).await
}

async fn create(iam: &Iam, id: &str) -> Result<Value, IamError> {
    call(
        iam,
        "POST",
        "/v1/projects/p/serviceAccounts",
        json!({"accountId": id, "serviceAccount": {"displayName": "ccd app web", "description": "made by ccd"}}),
    )
    .await
}

fn set_body(etag: Option<&str>, bindings: Value) -> Value {
    let mut policy = json!({"version": 1, "bindings": bindings});
    if let Some(etag) = etag {
        policy["etag"] = etag.into();
    }
    json!({"policy": policy})
}

#[tokio::test]
async fn accounts_are_created_read_listed_and_deleted() {
    let iam = Iam::new(Store::in_memory(), None);
    let made = create(&iam, "ccd-web").await.unwrap();
    assert_eq!(made["name"], format!("projects/p/serviceAccounts/{EMAIL}"));
    assert_eq!(made["projectId"], "p");
    assert_eq!(made["email"], EMAIL);
    assert_eq!(made["displayName"], "ccd app web");
    assert_eq!(made["description"], "made by ccd");
    let id = made["uniqueId"].as_str().unwrap();
    assert_eq!(id.len(), 21, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
    assert_eq!(made["oauth2ClientId"], id);
    let etag = made["etag"].as_str().unwrap();
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(etag)
            .is_ok()
    );

    let path = format!("/v1/projects/p/serviceAccounts/{EMAIL}");
    assert_eq!(call(&iam, "GET", &path, Value::Null).await.unwrap(), made);
    let any_project = format!("/v1/projects/-/serviceAccounts/{EMAIL}");
    assert_eq!(
        call(&iam, "GET", &any_project, Value::Null).await.unwrap(),
        made
    );
    let by_id = format!("/v1/projects/p/serviceAccounts/{id}");
    assert_eq!(call(&iam, "GET", &by_id, Value::Null).await.unwrap(), made);
    let elsewhere = format!("/v1/projects/other/serviceAccounts/{EMAIL}");
    assert!(matches!(
        call(&iam, "GET", &elsewhere, Value::Null).await,
        Err(IamError::NotFound(_))
    ));
    let list = call(&iam, "GET", "/v1/projects/p/serviceAccounts", Value::Null)
        .await
        .unwrap();
    assert_eq!(list, json!({"accounts": [made]}));

    assert_eq!(
        call(&iam, "DELETE", &path, Value::Null).await.unwrap(),
        json!({})
    );
    for method in ["GET", "DELETE"] {
        let gone = call(&iam, method, &path, Value::Null).await.unwrap_err();
        assert!(matches!(gone, IamError::NotFound(_)), "{method}: {gone}");
        assert_eq!(gone.code(), StatusCode::NOT_FOUND);
    }
    let again = create(&iam, "ccd-web").await.unwrap();
    assert_ne!(
        again["uniqueId"], made["uniqueId"],
        "a new account, a new id"
    );
}

#[tokio::test]
async fn a_second_create_is_already_exists() {
    let iam = Iam::new(Store::in_memory(), None);
    create(&iam, "ccd-web").await.unwrap();
    let e = create(&iam, "ccd-web").await.unwrap_err();
    assert_eq!(e.code(), StatusCode::CONFLICT);
    assert_eq!(
        e.body(),
        json!({"error": {"code": 409, "status": "ALREADY_EXISTS",
            "message": "Service account ccd-web already exists within project projects/p."}})
    );
}

#[tokio::test]
async fn account_ids_follow_googles_rule() {
    let iam = Iam::new(Store::in_memory(), None);
    for bad in [
        "short",
        "Upper-case",
        "ends-with-",
        "9starts-with-digit",
        "has_underscore",
        "a234567890123456789012345678901",
        "",
    ] {
        let e = create(&iam, bad).await.unwrap_err();
        assert!(matches!(e, IamError::InvalidArgument(_)), "{bad}: {e}");
        assert_eq!(e.body()["error"]["status"], "INVALID_ARGUMENT");
    }
    for good in ["ccd-web", "a23456", "a23456789012345678901234567890"] {
        create(&iam, good).await.unwrap();
    }
    let missing = call(&iam, "POST", "/v1/projects/p/serviceAccounts", json!({}))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("accountId"), "{missing}");
    let long = json!({"accountId": "ccd-long", "serviceAccount": {"displayName": "x".repeat(101)}});
    let e = call(&iam, "POST", "/v1/projects/p/serviceAccounts", long)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("displayName"), "{e}");
}

#[tokio::test]
async fn policies_round_trip_with_their_etag() {
    let (iam, dir) = iam_with_db("round-trip");
    let get = "/v1/projects/p/secrets/db:getIamPolicy";
    let set = "/v1/projects/p/secrets/db:setIamPolicy";
    let never = call(&iam, "GET", get, Value::Null).await.unwrap();
    assert_eq!(never, json!({"etag": "ACAB"}));

    let member = format!("serviceAccount:{EMAIL}");
    let first = call(
        &iam,
        "POST",
        set,
        set_body(
            Some("ACAB"),
            json!([{"role": ACCESSOR, "members": [member]}]),
        ),
    )
    .await
    .unwrap();
    let etag = first["etag"].as_str().unwrap().to_owned();
    assert_ne!(etag, "ACAB");
    assert_eq!(
        first,
        json!({"version": 1, "etag": etag, "bindings": [{"role": ACCESSOR, "members": [member]}]})
    );
    assert_eq!(call(&iam, "GET", get, Value::Null).await.unwrap(), first);

    // Read, change, write with the etag read: accepted, and the etag moves on.
    let second = call(
        &iam,
        "POST",
        set,
        set_body(
            Some(&etag),
            json!([{"role": ACCESSOR, "members": [member, "user:ana@example.com"]}]),
        ),
    )
    .await
    .unwrap();
    assert_ne!(second["etag"], first["etag"]);
    assert_eq!(second["bindings"][0]["members"][1], "user:ana@example.com");

    // Resource Manager reads and writes a project's policy with POST.
    let project = call(
        &iam,
        "POST",
        "/v3/projects/p:getIamPolicy",
        json!({"options": {"requestedPolicyVersion": 3}}),
    )
    .await
    .unwrap();
    assert_eq!(
        project,
        json!({"etag": "ACAB"}),
        "each resource its own policy"
    );
    let body = json!({"policy": {"etag": "ACAB", "version": 3, "bindings": [
        {"role": "roles/logging.logWriter", "members": [member]}]}, "updateMask": "bindings,etag"});
    let written = call(&iam, "POST", "/v3/projects/p:setIamPolicy", body)
        .await
        .unwrap();
    assert_eq!(written["bindings"][0]["role"], "roles/logging.logWriter");
    assert_eq!(
        call(&iam, "POST", "/v3/projects/p:getIamPolicy", Value::Null)
            .await
            .unwrap(),
        written
    );

    // Any repository is there.
    let repo = "/v1/projects/p/locations/europe-west1/repositories/images";
    assert_eq!(
        call(&iam, "GET", &format!("{repo}:getIamPolicy"), Value::Null)
            .await
            .unwrap(),
        json!({"etag": "ACAB"})
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_stale_etag_is_aborted_and_changes_nothing() {
    let (iam, dir) = iam_with_db("stale");
    let set = "/v1/projects/p/secrets/db:setIamPolicy";
    let one = json!([{"role": ACCESSOR, "members": ["user:ana@example.com"]}]);
    let first = call(&iam, "POST", set, set_body(Some("ACAB"), one.clone()))
        .await
        .unwrap();
    let two = json!([{"role": ACCESSOR, "members": ["user:bo@example.com"]}]);
    let e = call(&iam, "POST", set, set_body(Some("ACAB"), two.clone()))
        .await
        .unwrap_err();
    assert_eq!(e, IamError::Aborted);
    assert_eq!(
        e.body(),
        json!({"error": {"code": 409, "status": "ABORTED", "message":
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."}})
    );
    let now = call(
        &iam,
        "GET",
        "/v1/projects/p/secrets/db:getIamPolicy",
        Value::Null,
    )
    .await
    .unwrap();
    assert_eq!(now, first);
    // Without an etag the write is unconditional.
    let forced = call(&iam, "POST", set, set_body(None, two)).await.unwrap();
    assert_eq!(forced["bindings"][0]["members"][0], "user:bo@example.com");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bindings_are_checked_and_empty_ones_dropped() {
    let (iam, dir) = iam_with_db("bindings");
    let set = "/v1/projects/p/secrets/db:setIamPolicy";
    for (bindings, says) in [
        (
            json!([{"role": "secretAccessor", "members": ["user:a@b.c"]}]),
            "bindings[0]: role \"secretAccessor\"",
        ),
        (
            json!([{"role": ACCESSOR, "members": ["user:a@b.c"]}, {"role": ACCESSOR, "members": ["ana@example.com"]}]),
            "bindings[1] (role roles/secretmanager.secretAccessor): member \"ana@example.com\"",
        ),
        (
            json!([{"role": ACCESSOR, "members": ["serviceAccount:"]}]),
            "member \"serviceAccount:\"",
        ),
        (
            json!([{"role": ACCESSOR, "members": ["user:a@b.c"], "condition": {"expression": "true"}}]),
            "version 3",
        ),
    ] {
        let e = call(&iam, "POST", set, set_body(None, bindings))
            .await
            .unwrap_err();
        assert!(matches!(e, IamError::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let kept = call(
        &iam,
        "POST",
        set,
        set_body(
            None,
            json!([
                {"role": "roles/viewer", "members": []},
                {"role": ACCESSOR, "members": ["allUsers", "domain:example.com", "user:a@b.c", "user:a@b.c",
                    "deleted:serviceAccount:x@p.iam.gserviceaccount.com?uid=1", "group:g@example.com",
                    "allAuthenticatedUsers"]},
                {"role": "projects/p/roles/custom", "members": ["user:a@b.c"]},
            ]),
        ),
    )
    .await
    .unwrap();
    let bindings = kept["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2, "the empty binding is dropped: {kept}");
    assert_eq!(
        bindings[0]["members"].as_array().unwrap().len(),
        6,
        "listed once"
    );
    let conditional = json!({"policy": {"version": 3, "bindings": [{"role": ACCESSOR,
        "members": ["user:a@b.c"], "condition": {"title": "t", "expression": "true"}}]}});
    let stored = call(&iam, "POST", set, conditional).await.unwrap();
    assert_eq!(stored["version"], 3);
    assert_eq!(stored["bindings"][0]["condition"]["title"], "t");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_missing_secret_is_not_found() {
    let (iam, dir) = iam_with_db("missing");
    let e = call(
        &iam,
        "GET",
        "/v1/projects/p/secrets/absent:getIamPolicy",
        Value::Null,
    )
    .await
    .unwrap_err();
    let file = dir.join("secrets").join("absent").display().to_string();
    assert_eq!(e.code(), StatusCode::NOT_FOUND);
    assert!(e.to_string().contains("projects/p/secrets/absent"), "{e}");
    assert!(e.to_string().contains(&file), "{e}");
    let set = set_body(None, json!([]));
    assert!(matches!(
        call(
            &iam,
            "POST",
            "/v1/projects/p/secrets/absent:setIamPolicy",
            set
        )
        .await,
        Err(IamError::NotFound(_))
    ));
    // A numbered version alone makes the secret exist.
    std::fs::write(dir.join("secrets").join("pinned@2"), "v2").unwrap();
    call(
        &iam,
        "GET",
        "/v1/projects/p/secrets/pinned:getIamPolicy",
        Value::Null,
    )
    .await
    .unwrap();
    call(
        &iam,
        "GET",
        "/v1/projects/p/locations/europe-west1/secrets/db:getIamPolicy",
        Value::Null,
    )
    .await
    .unwrap();

    let diskless = Iam::new(Store::in_memory(), None);
    let e = call(
        &diskless,
        "GET",
        "/v1/projects/p/secrets/db:getIamPolicy",
        Value::Null,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("keeps nothing on disk"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn accounts_and_policies_survive_a_restart() {
    let dir = scratch("restart");
    std::fs::write(dir.join("secrets").join("db"), "value").unwrap();
    let policy_path = "/v1/projects/p/secrets/db:getIamPolicy";
    let (account, policy) = {
        let store = Store::open(&dir).unwrap();
        let writer = store.spawn_writer();
        let iam = Iam::new(store.clone(), Some(dir.join("secrets")));
        let account = create(&iam, "ccd-web").await.unwrap();
        let body = set_body(
            Some("ACAB"),
            json!([{"role": ACCESSOR, "members": [format!("serviceAccount:{EMAIL}")]}]),
        );
        let policy = call(&iam, "POST", "/v1/projects/p/secrets/db:setIamPolicy", body)
            .await
            .unwrap();
        store.close();
        writer.await.unwrap();
        (account, policy)
    };
    let iam = Iam::new(Store::open(&dir).unwrap(), Some(dir.join("secrets")));
    let path = format!("/v1/projects/p/serviceAccounts/{EMAIL}");
    assert_eq!(
        call(&iam, "GET", &path, Value::Null).await.unwrap(),
        account
    );
    assert_eq!(
        call(&iam, "GET", policy_path, Value::Null).await.unwrap(),
        policy
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_deleted_accounts_grants_become_deleted_members() {
    let (iam, dir) = iam_with_db("deleted");
    let made = create(&iam, "ccd-web").await.unwrap();
    let member = format!("serviceAccount:{EMAIL}");
    let body = set_body(
        None,
        json!([{"role": ACCESSOR, "members": [member, "user:ana@example.com"]}]),
    );
    let before = call(&iam, "POST", "/v1/projects/p/secrets/db:setIamPolicy", body)
        .await
        .unwrap();
    let path = format!("/v1/projects/p/serviceAccounts/{EMAIL}");
    call(&iam, "DELETE", &path, Value::Null).await.unwrap();
    let after = call(
        &iam,
        "GET",
        "/v1/projects/p/secrets/db:getIamPolicy",
        Value::Null,
    )
    .await
    .unwrap();
    let uid = made["uniqueId"].as_str().unwrap();
    assert_eq!(
        after["bindings"][0]["members"],
        json!([
            format!("deleted:{member}?uid={uid}"),
            "user:ana@example.com"
        ])
    );
    assert_ne!(after["etag"], before["etag"]);
    // The same name again: a new account, which inherits nothing.
    create(&iam, "ccd-web").await.unwrap();
    assert!(secret_access(&iam.store, Some(EMAIL), "p", "db").is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn secret_access_holds_known_accounts_to_their_grants() {
    let (iam, dir) = iam_with_db("access");
    let store = &iam.store;
    // Accounts the local IAM does not know read as before.
    for account in [
        None,
        Some("default"),
        Some("123-compute@developer.gserviceaccount.com"),
        Some(EMAIL),
    ] {
        assert_eq!(
            secret_access(store, account, "p", "db"),
            Ok(()),
            "{account:?}"
        );
    }
    create(&iam, "ccd-web").await.unwrap();
    let refused = secret_access(store, Some(EMAIL), "p", "db").unwrap_err();
    assert_eq!(
        refused,
        format!(
            "the instance's service account {EMAIL} may not access secret db: grant it \
             roles/secretmanager.secretAccessor on the secret (projects/p/secrets/db)"
        )
    );
    let member = format!("serviceAccount:{EMAIL}");
    let grant = |resource: &str, role: &str| {
        let path = if resource == "projects/p" {
            "/v3/projects/p:setIamPolicy".to_owned()
        } else {
            format!("/v1/{resource}:setIamPolicy")
        };
        let body = set_body(None, json!([{"role": role, "members": [member]}]));
        let iam = iam.clone();
        async move { call(&iam, "POST", &path, body).await.unwrap() }
    };
    grant("projects/p/secrets/db", "roles/viewer").await;
    assert!(
        secret_access(store, Some(EMAIL), "p", "db").is_err(),
        "another role"
    );
    for role in [ACCESSOR, "roles/secretmanager.admin", "roles/owner"] {
        grant("projects/p/secrets/db", role).await;
        assert_eq!(
            secret_access(store, Some(EMAIL), "p", "db"),
            Ok(()),
            "{role}"
        );
    }
    // The grant is per secret and per project…
    assert!(secret_access(store, Some(EMAIL), "p", "other").is_err());
    assert!(secret_access(store, Some(EMAIL), "q", "db").is_err());
    // …unless the project's policy grants it, as policies inherit.
    grant("projects/p", ACCESSOR).await;
    assert_eq!(secret_access(store, Some(EMAIL), "p", "other"), Ok(()));
    let _ = std::fs::remove_dir_all(dir);
}

/// The hook as the instance runtime uses it: an unbound account's secret is
/// one of the problems the boot reports, beside a missing file, and no
/// value is read.
#[tokio::test]
async fn an_unbound_account_reads_no_secret_and_the_boot_says_why() {
    let (iam, dir) = iam_with_db("boot");
    std::fs::write(dir.join("secrets").join("granted"), "yes").unwrap();
    create(&iam, "ccd-web").await.unwrap();
    let body = set_body(
        None,
        json!([{"role": ACCESSOR, "members": [format!("serviceAccount:{EMAIL}")]}]),
    );
    call(
        &iam,
        "POST",
        "/v1/projects/p/secrets/granted:setIamPolicy",
        body,
    )
    .await
    .unwrap();
    let template = json!({"properties": {"metadata": {"items": [{"key": "ccd-secrets", "value":
        r#"{"DB": "projects/p/secrets/db/versions/latest", "OK": "projects/p/secrets/granted/versions/latest"}"#}]}}});
    let refs = secrets::of_template(&template).unwrap();
    let folder = dir.join("secrets");
    let resolve = |account: Option<&str>| {
        secrets::resolve(Some(folder.as_path()), &refs, |r| {
            secret_access(&iam.store, account, &r.project, &r.secret)
        })
    };
    let problems = resolve(Some(EMAIL)).unwrap_err();
    assert_eq!(
        problems,
        [format!(
            "secret db (version latest) for DB: the instance's service account {EMAIL} may not \
             access secret db: grant it roles/secretmanager.secretAccessor on the secret \
             (projects/p/secrets/db)"
        )]
    );
    let unknown = resolve(Some("someone@p.iam.gserviceaccount.com")).unwrap();
    assert_eq!(unknown["DB"], "value");
    assert_eq!(unknown["OK"], "yes");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn paths_name_their_calls() {
    let secret = Resource::Secret {
        project: "p".into(),
        location: None,
        secret: "db".into(),
    };
    assert_eq!(
        route::v1("GET", "p/secrets/db:getIamPolicy"),
        Ok(Call::GetPolicy(secret.clone()))
    );
    assert_eq!(
        route::v1("POST", "p/secrets/db:setIamPolicy"),
        Ok(Call::SetPolicy(secret))
    );
    assert_eq!(
        route::v3("POST", "p:getIamPolicy"),
        Ok(Call::GetPolicy(Resource::Project {
            project: "p".into()
        }))
    );
    assert_eq!(
        route::v1("DELETE", &format!("-/serviceAccounts/{EMAIL}")),
        Ok(Call::DeleteAccount {
            project: "-".into(),
            account: EMAIL.into()
        })
    );
    let repo = route::v1("POST", "p/locations/l/repositories/r:setIamPolicy").unwrap();
    let Call::SetPolicy(resource) = repo else {
        panic!("{repo:?}")
    };
    assert_eq!(resource.name(), "projects/p/locations/l/repositories/r");
    for (method, rest) in [
        ("POST", "p/secrets/db:getIamPolicy"),
        ("GET", "p/secrets/db:setIamPolicy"),
        ("GET", "p/secrets/db:testIamPermissions"),
        ("GET", "p/secrets/db"),
        ("PATCH", "p/serviceAccounts/x@y"),
        ("GET", "p//serviceAccounts"),
        ("GET", "p/zones/z/instances/i"),
    ] {
        let e = route::v1(method, rest).unwrap_err();
        assert!(matches!(e, IamError::NotFound(_)), "{method} {rest}: {e}");
    }
    assert!(route::v3("GET", "p:getIamPolicy").is_err());
    assert!(route::v3("POST", "p").is_err());
}

#[tokio::test]
async fn a_change_that_cannot_be_saved_is_a_503_and_is_undone() {
    let dir = scratch("unsaved");
    let switch = crate::store::faulty::switch(&dir.join("localcloud.redb"));
    let store = Store::open(&dir).unwrap();
    let writer = store.spawn_writer();
    let iam = Iam::new(store.clone(), Some(dir.join("secrets")));
    switch
        .full
        .store(true, std::sync::atomic::Ordering::Release);
    let e = create(&iam, "ccd-web").await.unwrap_err();
    assert!(matches!(e, IamError::Unavailable(_)), "{e}");
    assert_eq!(e.body()["error"]["status"], "UNAVAILABLE");
    let path = format!("/v1/projects/p/serviceAccounts/{EMAIL}");
    let gone = call(&iam, "GET", &path, Value::Null).await.unwrap_err();
    assert!(matches!(gone, IamError::NotFound(_)), "{gone}");

    switch
        .full
        .store(false, std::sync::atomic::Ordering::Release);
    create(&iam, "ccd-web").await.unwrap();
    store.close();
    writer.await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
