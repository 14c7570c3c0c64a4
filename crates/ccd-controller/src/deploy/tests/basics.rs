//! A first deploy, the light pass, drift modes, the cloud refusing a plan,
//! an invalid spec, deletion, and the defects the review found.

use std::time::Duration;

use ccd_cloud::model::InstanceAction;

use super::*;
use crate::record::VerdictResult;
use crate::testing::{Behaviour, Harness};

#[tokio::test(start_paused = true)]
async fn a_first_deploy_becomes_ready_with_one_group_behind_the_load_balancer() {
    let h = ready(ROLLING).await;
    let s = h.status();
    assert_eq!(s.endpoints, ["http://10.0.0.9"]);
    assert_eq!(s.serving, ["1"]);
    assert_eq!(s.instances.len(), 3);
    assert_eq!(h.cloud.weights(), [("web".to_owned(), 100)]);
    let r = s.rollout.as_ref().unwrap();
    assert_eq!(
        (r.state, r.step.name.as_str()),
        (RolloutState::Succeeded, "create")
    );
    assert_eq!(r.verdict.as_ref().unwrap().result, VerdictResult::Passed);
    assert_eq!(s.last_good.as_ref().unwrap().version, "1");
    for reason in [
        "RolloutStarted",
        "GroupCreated",
        "RolloutSucceeded",
        "Ready",
    ] {
        assert!(
            h.event(reason).is_some(),
            "{reason} in {:?}",
            h.event_reasons()
        );
    }
    assert!(
        !h.probes.is_running("web"),
        "nothing served before: nothing to probe"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_app_is_looked_at_when_its_instances_can_have_turned_healthy() {
    // The autohealing check probes every 5 s and needs two passes in a row.
    let h = Harness::new(&spec("1", ROLLING).replace("interval: 1s", "interval: 5s"));
    let first = h.pass().await;
    assert_eq!(
        h.cloud.state().reads,
        0,
        "no status yet: nothing to observe before creating"
    );
    assert_eq!(first, Duration::from_secs(10), "two checks 5 s apart");
    h.cloud.behave(&template_of(&h, "1"), Behaviour::Starting);
    tokio::time::advance(first).await;
    assert_eq!(h.pass().await, Duration::from_secs(5), "then once a check");
    assert_eq!(h.cloud.state().reads, 1);
    assert_eq!(h.status().phase, Phase::Progressing);
    h.cloud.behave(&template_of(&h, "1"), Behaviour::Healthy);
    tokio::time::advance(Duration::from_secs(5)).await;
    let mutations = h.cloud.mutations();
    h.pass().await;
    assert_eq!(h.status().phase, Phase::Ready);
    let reads = h.cloud.state().reads;
    assert_eq!(
        (reads, h.cloud.mutations()),
        (2, mutations),
        "the pass that ends the rollout only reads the members"
    );
    assert_eq!(
        h.event_reasons()
            .iter()
            .filter(|r| *r == "GroupCreated")
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_converged_app_costs_one_read_and_no_write() {
    let h = ready(ROLLING).await;
    h.pass().await;
    let reads = h.cloud.state().reads;
    let mutations = h.cloud.mutations();
    let writes = *h.store.writes.lock().unwrap();
    let wait = h.pass().await;
    assert_eq!(wait, Duration::from_secs(30));
    assert_eq!(
        h.cloud.state().reads,
        reads + 1,
        "one look at the group's members"
    );
    assert_eq!(h.cloud.mutations(), mutations);
    assert_eq!(
        *h.store.writes.lock().unwrap(),
        writes,
        "an unchanged status is not rewritten"
    );
}

#[tokio::test(start_paused = true)]
async fn drift_is_corrected_reported_or_ignored_as_the_spec_says() {
    for (mode, restored, reason) in [
        ("correct", true, Some("DriftCorrected")),
        ("warn", false, Some("DriftDetected")),
        ("off", false, None),
    ] {
        let h = Harness::new(&format!("{}  drift: {mode}\n", spec("1", ROLLING)));
        h.until("Ready", MINUTE, |s| s.phase == Phase::Ready).await;
        h.cloud.state().firewalls.remove("web-allow-clients");
        // Drift is looked for every ten minutes.
        h.run_for(Duration::from_secs(9 * 60)).await;
        assert!(!h.cloud.state().firewalls.contains_key("web-allow-clients"));
        h.run_for(Duration::from_secs(2 * 60)).await;
        assert_eq!(
            h.cloud.state().firewalls.contains_key("web-allow-clients"),
            restored,
            "{mode}"
        );
        assert_eq!(
            reason.and_then(|r| h.event(r)).is_some(),
            reason.is_some(),
            "{mode}: {:?}",
            h.event_reasons()
        );
        let s = h.status();
        if mode == "warn" {
            assert_eq!(s.phase, Phase::Degraded);
            let c = s.conditions.iter().find(|c| c.kind == "Degraded").unwrap();
            assert_eq!(c.reason, "Drifted");
            assert!(c.message.contains("web-allow-clients"), "{}", c.message);
        } else {
            assert_eq!(s.phase, Phase::Ready, "{mode}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_plan_the_cloud_refuses_is_a_condition_with_the_clouds_message() {
    let mut h = ready(ROLLING).await;
    h.cloud
        .state()
        .refused_machine_types
        .push("e2-nonsense".into());
    h.set_spec(&spec("2", ROLLING).replace("machine: {", "machine: {type: e2-nonsense, "));
    let s = h
        .until("the refusal in the status", MINUTE, |s| {
            s.phase == Phase::Stalled
        })
        .await;
    let c = s.conditions.iter().find(|c| c.kind == "Stalled").unwrap();
    assert_eq!(c.reason, "CloudRejected");
    assert!(
        c.message.contains("e2-nonsense") && c.message.contains("does not exist"),
        "{}",
        c.message
    );
    assert!(h.event("CloudRejected").is_some());
    assert_eq!(
        versions(&h, "web"),
        ["1", "1", "1"],
        "the last good revision keeps serving"
    );
    assert_eq!(s.endpoints, ["http://10.0.0.9"]);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_spec_changes_nothing_and_still_shows_what_serves() {
    let mut h = ready(ROLLING).await;
    let mutations = h.cloud.mutations();
    h.set_spec(&spec("2", ROLLING).replace("port: 8080", "port: 70000"));
    h.pass().await;
    let s = h.status();
    assert_eq!(s.phase, Phase::Stalled);
    assert!(
        s.conditions[0].message.contains("spec.port"),
        "{:?}",
        s.conditions
    );
    assert_eq!(
        s.endpoints,
        ["http://10.0.0.9"],
        "what serves is still shown"
    );
    assert_eq!(s.serving, ["1"]);
    assert_eq!(s.instances.len(), 3);
    assert_eq!(h.cloud.mutations(), mutations);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_spec_deletes_every_group_and_resource() {
    let mut h = ready(BLUE_GREEN).await;
    h.set_spec(&spec("2", BLUE_GREEN));
    h.until("a second group", MINUTE, |s| s.groups.len() == 2)
        .await;
    h.pass().await;
    assert_eq!(h.cloud.group_names().len(), 2);
    h.remove().await;
    let s = h.cloud.state();
    assert!(s.groups.is_empty() && s.lbs.is_empty() && s.templates.is_empty());
    assert!(s.firewalls.is_empty() && s.health_checks.is_empty());
    drop(s);
    assert!(h.store.status.lock().unwrap().is_empty());
}

/// Review defect 1: the rollout clock kept running once the app was ready.
#[tokio::test(start_paused = true)]
async fn days_later_a_busy_group_is_not_a_stuck_rollout() {
    let h = ready(ROLLING).await;
    h.run_for(Duration::from_secs(3 * 24 * 3600)).await;
    // Autohealing recreates an instance: the group is busy for a while.
    let t1 = template_of(&h, "1");
    h.cloud.behave(&t1, Behaviour::Starting);
    h.run_for(Duration::from_secs(30)).await;
    let s = h.status();
    assert!(
        s.conditions
            .iter()
            .all(|c| c.reason != "RolloutStuck" && c.reason != "RolledBack"),
        "{}",
        s.to_yaml()
    );
    assert_eq!(rollout_state(&s), Some(RolloutState::Succeeded));
    h.cloud.behave(&t1, Behaviour::Healthy);
    h.until("Ready again", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    assert!(
        h.cloud
            .members("web")
            .iter()
            .all(|m| m.action == InstanceAction::None)
    );
}

/// Review defect 2: templates were collected while members were unhealthy,
/// and the last good one could go.
#[tokio::test(start_paused = true)]
async fn the_last_good_template_is_never_collected() {
    let mut h = ready(ROLLING).await;
    let t1 = template_of(&h, "1");
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    let t2 = template_of(&h, "2");
    h.cloud.behave(&t2, Behaviour::Unhealthy);
    h.until("the rollback", MINUTE, |s| s.rolled_back).await;
    h.until("back on 1", MINUTE, |s| {
        s.phase == Phase::Degraded && s.serving == ["1"]
    })
    .await;
    h.run_for(Duration::from_secs(15 * 60)).await;
    let templates: Vec<String> = h.cloud.state().templates.keys().cloned().collect();
    assert!(
        templates.contains(&t1),
        "the last good template stays: {templates:?}"
    );
    assert!(
        templates.contains(&t2),
        "the spec's template stays: {templates:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rule_named_like_the_apps_but_not_ccds_stalls_the_app_and_is_left_alone() {
    let mut h = ready(ROLLING).await;
    // Someone replaces the app's allowFrom rule with one of their own.
    let rule = "web-allow-clients".to_owned();
    {
        let mut s = h.cloud.state();
        assert!(s.firewalls.remove(&rule).is_some(), "{:?}", s.firewalls);
        s.foreign.push(rule.clone());
    }
    h.set_spec(&spec("2", ROLLING));
    let s = h
        .until("the clash in the status", MINUTE, |s| {
            s.phase == Phase::Stalled
        })
        .await;
    let c = s.conditions.iter().find(|c| c.kind == "Stalled").unwrap();
    assert_eq!(c.reason, "NameTaken");
    assert!(
        c.message.contains("global/firewalls/web-allow-clients"),
        "{}",
        c.message
    );
    assert!(h.event("NameTaken").is_some());
    assert!(!h.cloud.state().firewalls.contains_key(&rule));
    // Once its owner renames it, the app proceeds.
    h.cloud.state().foreign.clear();
    h.until("version 2 to be Ready", MINUTE, |s| {
        s.phase == Phase::Ready && s.serving == ["2"]
    })
    .await;
    assert!(h.cloud.state().firewalls.contains_key(&rule));
}

#[tokio::test(start_paused = true)]
async fn a_spec_gone_for_less_than_the_grace_period_deletes_nothing() {
    let h = ready(ROLLING).await;
    let mutations = h.cloud.mutations();
    let wait = h.removing_pass().await.expect("a removal waits");
    assert_eq!(wait, crate::deploy::DELETION_GRACE);
    let s = h.status();
    let c = s.conditions.iter().find(|c| c.kind == "Removal").unwrap();
    assert_eq!(c.reason, "PendingDeletion");
    assert!(c.message.contains("specs/web.yaml"), "{}", c.message);
    assert!(h.event("DeletionScheduled").is_some());
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(h.removing_pass().await.is_some(), "still waiting");
    // The spec comes back (a file moved away and back).
    h.until("the app to be Ready again", MINUTE, |s| {
        s.phase == Phase::Ready && s.conditions.iter().all(|c| c.kind != "Removal")
    })
    .await;
    assert!(h.event("DeletionCancelled").is_some());
    assert_eq!(h.cloud.mutations(), mutations, "nothing was deleted");
    // Gone again: the grace starts over, then everything goes.
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(h.removing_pass().await, Some(crate::deploy::DELETION_GRACE));
    h.remove().await;
    assert!(h.cloud.state().groups.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_protected_app_keeps_everything_when_its_spec_is_removed() {
    let mut h = Harness::new(&spec("1", ROLLING).replace(
        "  port: 8080\n",
        "  port: 8080\n  deletionProtection: true\n",
    ));
    h.until("Ready", MINUTE, |s| s.phase == Phase::Ready).await;
    assert!(h.status().deletion_protection);
    h.remove().await;
    tokio::time::advance(Duration::from_secs(3600)).await;
    h.remove().await;
    assert_eq!(h.cloud.group_names(), ["web"], "nothing deleted");
    let s = h.status();
    let c = s.conditions.iter().find(|c| c.kind == "Removal").unwrap();
    assert_eq!(c.reason, "DeletionProtected");
    assert!(
        c.message.contains("deletionProtection: false"),
        "{}",
        c.message
    );
    assert!(h.event("DeletionRefused").is_some());
    // Back with protection off, then removed: deleted after the grace.
    h.set_spec(&spec("1", ROLLING));
    h.until("unprotected", MINUTE, |s| {
        !s.deletion_protection && s.conditions.iter().all(|c| c.kind != "Removal")
    })
    .await;
    h.remove().await;
    assert!(h.cloud.state().groups.is_empty());
    assert!(h.store.status.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn removal_finds_the_apps_groups_by_their_mark_when_the_status_is_lost() {
    let mut h = ready(BLUE_GREEN).await;
    h.set_spec(&spec("2", BLUE_GREEN));
    h.until("a second group", MINUTE, |s| s.groups.len() == 2)
        .await;
    assert!(
        h.cloud.group_names().iter().any(|g| g != "web"),
        "a group not under the app's own name: {:?}",
        h.cloud.group_names()
    );
    h.store.status.lock().unwrap().clear();
    let h = h.restart();
    h.remove().await;
    assert!(
        h.cloud.state().groups.is_empty(),
        "no group leaked: {:?}",
        h.cloud.group_names()
    );
}

#[tokio::test(start_paused = true)]
async fn an_external_app_is_ready_only_once_its_certificate_is_active() {
    use ccd_cloud::model::CertificateState;
    let external = spec("1", ROLLING).replace(
        "expose: {internal: {port: 80, allowFrom: [10.0.0.0/8]}}",
        "expose: {external: {https: {domains: [shop.example.com]}}}",
    );
    let h = Harness::new(&external);
    let provisioning = CertificateState {
        name: "web-cert-1".into(),
        status: "PROVISIONING".into(),
        domains: [("shop.example.com".into(), "FAILED_NOT_VISIBLE".into())].into(),
    };
    h.cloud.state().certificate = Some(provisioning.clone());
    h.run_for(MINUTE).await;
    let s = h.status();
    assert_eq!(s.phase, Phase::Progressing, "{}", s.to_yaml());
    assert_eq!(s.certificate.as_ref().unwrap().status, "PROVISIONING");
    let ready = s.conditions.iter().find(|c| c.kind == "Ready").unwrap();
    assert!(!ready.status);
    assert_eq!(ready.reason, "CertificateProvisioning");
    assert!(
        ready
            .message
            .contains("DNS A record naming 10.0.0.9 for shop.example.com (FAILED_NOT_VISIBLE)"),
        "{}",
        ready.message
    );
    assert!(h.event("Ready").is_none(), "never Ready while HTTPS fails");
    assert!(h.event("CertificateProvisioning").is_some());
    // DNS now points at the balancer and Google issued the certificate.
    h.cloud.state().certificate = Some(CertificateState {
        status: "ACTIVE".into(),
        domains: [("shop.example.com".into(), "ACTIVE".into())].into(),
        ..provisioning
    });
    let s = h
        .until("Ready with HTTPS", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    assert_eq!(s.certificate.unwrap().status, "ACTIVE");
    assert!(h.event("Ready").is_some());
}

/// The chaos suite once found an app whose rollout had succeeded stay
/// Progressing for minutes: the pass that created its load balancer ran
/// before the local cloud's frontend listened, found no URL, and every
/// later pass rested on that pass until the drift check came round.
#[tokio::test(start_paused = true)]
async fn a_load_balancer_without_its_url_yet_is_applied_again_until_it_has_one() {
    let h = Harness::new(&spec("1", ROLLING));
    h.listening
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let s = h
        .until("the first rollout to succeed", MINUTE, |s| {
            s.rollout
                .as_ref()
                .is_some_and(|r| r.state == RolloutState::Succeeded)
        })
        .await;
    assert_eq!(s.phase, Phase::Progressing, "no URL yet: not Ready");
    assert!(s.endpoints.is_empty());
    let wait = h.pass().await;
    assert!(
        wait <= crate::decide::WHEN_BROKEN,
        "an app without its URL is looked at soon, not in {wait:?}"
    );
    h.listening.store(true, std::sync::atomic::Ordering::SeqCst);
    // Well before the drift check would have looked again.
    let s = h
        .until("Ready once it listens", Duration::from_secs(15), |s| {
            s.phase == Phase::Ready
        })
        .await;
    assert_eq!(s.endpoints, ["http://10.0.0.9"]);
    assert!(h.event("Ready").is_some(), "{:?}", h.event_reasons());
}
