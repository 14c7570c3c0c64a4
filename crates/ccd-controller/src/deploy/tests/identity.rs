//! An app's own service account: made and granted before the template that
//! runs as it, grants added as the spec asks and taken away once no
//! instance needs them, deleted with the app; one of the same name that
//! ccd did not make stalls the app.

use super::*;

fn with_secret(version: &str, secrets: &str) -> String {
    spec(version, ROLLING).replace(
        "  port: 8080\n",
        &format!("  port: 8080\n  secrets: {{{secrets}}}\n"),
    )
}

fn harness(spec: &str) -> Harness {
    let h = Harness::new(spec);
    h.cloud.state().app_accounts = true;
    h
}

#[tokio::test(start_paused = true)]
async fn instances_run_as_the_apps_own_account_granted_only_its_secrets() {
    let mut h = harness(&with_secret("1", "DB: {secret: web-db}"));
    h.until("Ready", MINUTE, |s| s.phase == Phase::Ready).await;
    let email = "ccd-web@fake.iam.gserviceaccount.com";
    {
        let s = h.cloud.state();
        let identity = s.identities.get("web").expect("an account for web");
        assert_eq!(identity.secrets.iter().collect::<Vec<_>>(), ["web-db"]);
        assert!(
            s.templates
                .values()
                .all(|t| t.service_account.as_deref() == Some(email)),
            "every template runs as the app's account"
        );
        // The account came before the template that names it.
        let created = |what: &str| s.log.iter().position(|l| l.contains(what)).unwrap();
        assert!(
            created("serviceAccounts/") < created("instanceTemplates/"),
            "{:?}",
            s.log
        );
    }
    // A second secret is granted; the first is kept while version 1 may still boot.
    h.set_spec(&with_secret(
        "2",
        "DB: {secret: web-db}, KEY: {secret: web-key}",
    ));
    h.until("version 2 Ready", MINUTE, |s| {
        s.phase == Phase::Ready && s.serving == ["2"]
    })
    .await;
    let granted = |h: &Harness| -> Vec<String> {
        h.cloud.state().identities["web"]
            .secrets
            .iter()
            .cloned()
            .collect()
    };
    assert_eq!(granted(&h), ["web-db", "web-key"]);
    assert_eq!(
        h.status().service_account.map(|a| a.secrets.len()),
        Some(2),
        "the status remembers what may be granted"
    );
    // A secret dropped from the spec: kept while version 2 still runs (a
    // rollback could need it), taken away once only version 3 runs.
    h.set_spec(&with_secret("3", "KEY: {secret: web-key}"));
    h.until("version 3 rolling out", MINUTE, |s| {
        s.rollout
            .as_ref()
            .is_some_and(|r| r.state.is_open() && r.to.version == "3")
    })
    .await;
    assert_eq!(
        granted(&h),
        ["web-db", "web-key"],
        "kept during the rollout"
    );
    h.until("version 3 Ready", MINUTE, |s| {
        s.phase == Phase::Ready && s.serving == ["3"]
    })
    .await;
    h.run_for(Duration::from_secs(5)).await;
    assert_eq!(granted(&h), ["web-key"], "web-db taken away");
    let recorded = h.status().service_account.unwrap();
    assert_eq!(recorded.secrets.iter().collect::<Vec<_>>(), ["web-key"]);
    assert_eq!(recorded.email, "ccd-web@fake.iam.gserviceaccount.com");
    // Deleted with the app, after everything that ran as it.
    h.remove().await;
    let s = h.cloud.state();
    assert!(s.identities.is_empty());
    let deleted = |what: &str| {
        s.log
            .iter()
            .rposition(|l| l.starts_with("deleted") && l.contains(what))
            .unwrap()
    };
    assert!(
        deleted("instanceTemplates/") < deleted("serviceAccounts/"),
        "{:?}",
        s.log
    );
}

#[tokio::test(start_paused = true)]
async fn an_account_of_that_name_made_by_someone_else_stalls_the_app() {
    let h = harness(&spec("1", ROLLING));
    h.cloud
        .state()
        .foreign
        .push("ccd-web@fake.iam.gserviceaccount.com".to_owned());
    let s = h
        .until("the clash in the status", MINUTE, |s| {
            s.phase == Phase::Stalled
        })
        .await;
    let c = s.conditions.iter().find(|c| c.kind == "Stalled").unwrap();
    assert_eq!(c.reason, "NameTaken");
    assert!(
        c.message.contains("serviceAccounts/ccd-web@"),
        "{}",
        c.message
    );
    assert!(h.cloud.state().templates.is_empty(), "nothing runs as it");
    h.cloud.state().foreign.clear();
    h.until("Ready", MINUTE, |s| s.phase == Phase::Ready).await;
}

#[tokio::test(start_paused = true)]
async fn an_account_named_in_the_spec_is_used_as_it_is() {
    let own = "web-runner@acme.iam.gserviceaccount.com";
    let h = harness(&spec("1", ROLLING).replace(
        "  machine: {zones: [europe-west1-b]}\n",
        &format!("  machine: {{zones: [europe-west1-b], serviceAccount: {own}}}\n"),
    ));
    h.until("Ready", MINUTE, |s| s.phase == Phase::Ready).await;
    let s = h.cloud.state();
    assert!(s.identities.is_empty(), "ccd makes no account");
    assert!(
        s.templates
            .values()
            .all(|t| t.service_account.as_deref() == Some(own))
    );
}
