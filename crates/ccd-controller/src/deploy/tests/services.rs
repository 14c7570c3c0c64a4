//! An app's services through the `Services` port: their credentials become
//! the template's secret references, one that cannot be provided holds the
//! app back while the running version serves, and deleting the app
//! releases them after everything that used them is gone.

use std::sync::Arc;

use super::{MINUTE, ROLLING, spec, template_of};
use crate::status::Phase;
use crate::testing::{FakeServices, Harness};

fn with_services(version: &str) -> String {
    spec(version, ROLLING) + "  services: {cache: {}, sql: {onDelete: delete}}\n"
}

async fn ready_with_services() -> (Harness, Arc<FakeServices>) {
    let h = Harness::new(&with_services("1"));
    let services = Arc::new(FakeServices::new(h.cloud.clone()));
    let h = h.with_services(services.clone());
    h.until("version 1 to be Ready", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    (h, services)
}

#[tokio::test(start_paused = true)]
async fn the_services_credentials_are_secret_references_of_the_template() {
    let (h, _) = ready_with_services().await;
    let template = template_of(&h, "1");
    let secrets = h
        .cloud
        .state()
        .templates
        .values()
        .find(|t| t.name() == template)
        .map(|t| t.secrets.clone())
        .unwrap();
    assert_eq!(secrets["REDIS_URL"].secret, "ccd-web-cache");
    assert_eq!(secrets["DATABASE_URL"].secret, "ccd-web-sql-databaseurl");
    assert!(secrets.values().all(|r| r.version == "latest"));
    let status = h.status();
    let kinds: Vec<(&str, Option<&str>)> = status
        .services
        .iter()
        .map(|s| (s.kind.as_str(), s.on_delete.as_deref()))
        .collect();
    assert_eq!(kinds, [("sql", Some("delete")), ("cache", Some("retain"))]);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_cannot_be_provided_holds_the_app_and_the_running_version_serves() {
    let (mut h, services) = ready_with_services().await;
    services.fail_with(Some(
        "cache: redis-server is not installed: apt-get install redis-server",
    ));
    h.set_spec(&with_services("2"));
    h.until("Stalled", MINUTE, |s| s.phase == Phase::Stalled)
        .await;
    let status = h.status();
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.kind == "Stalled")
        .unwrap();
    assert_eq!(stalled.reason, "ServiceUnavailable");
    assert!(stalled.message.contains("apt-get install redis-server"));
    assert!(
        h.cloud
            .state()
            .templates
            .values()
            .all(|t| t.revision == "1"),
        "no template for version 2 while its services are missing"
    );
    assert_eq!(
        super::versions(&h, &h.cloud.group_names()[0]),
        ["1", "1", "1"]
    );

    services.fail_with(None);
    h.until("version 2 Ready", MINUTE, |s| {
        s.phase == Phase::Ready && s.revision.as_ref().is_some_and(|r| r.version == "2")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_rotation_rolls_the_app_out_and_retires_the_old_credential_only_after() {
    let (h, services) = ready_with_services().await;
    let before = template_of(&h, "1");
    services.rotate();
    h.until("a rollout to the rotated credentials", MINUTE, |s| {
        s.revision.as_ref().is_some_and(|r| r.template != before)
    })
    .await;
    let rotated = h.status().revision.unwrap().template;
    let secrets = h
        .cloud
        .state()
        .templates
        .values()
        .find(|t| t.name() == rotated)
        .map(|t| t.secrets.clone())
        .unwrap();
    assert!(
        secrets.values().all(|r| r.version == "1"),
        "the template reads the rotation's version: {secrets:?}"
    );
    assert!(
        services.retired.lock().unwrap().is_empty(),
        "nothing retired while the rollout runs"
    );
    h.until("Ready on the rotated credentials", MINUTE, |s| {
        s.phase == Phase::Ready
    })
    .await;
    h.until("the old credential retired", MINUTE, |_| {
        !services.retired.lock().unwrap().is_empty()
    })
    .await;
    assert!(h.event("CredentialRetired").is_some());
    let retired = services.retired.lock().unwrap().clone();
    assert_eq!(
        retired,
        [(0, vec![rotated])],
        "retired once, when only the new template ran"
    );
    assert_eq!(
        super::versions(&h, &h.cloud.group_names()[0]),
        ["1", "1", "1"]
    );
}

#[tokio::test(start_paused = true)]
async fn deleting_the_app_releases_its_services_last_as_recorded() {
    let (h, services) = ready_with_services().await;
    h.remove().await;
    let released = services.released.lock().unwrap().clone();
    assert_eq!(released.len(), 1, "{released:?}");
    let (app, recorded, groups_left) = &released[0];
    assert_eq!(app, "web");
    assert_eq!(*groups_left, 0, "released only once the groups are gone");
    let named: Vec<(&str, Option<&str>, Option<&str>)> = recorded
        .iter()
        .map(|s| (s.kind.as_str(), s.name.as_deref(), s.on_delete.as_deref()))
        .collect();
    assert_eq!(
        named,
        [
            ("sql", Some("sql-of-web"), Some("delete")),
            ("cache", Some("cache-of-web"), Some("retain"))
        ]
    );
    assert!(h.event("ServicesRetained").unwrap().contains("cache"));
    assert!(h.store.status.lock().unwrap().is_empty());
}
