//! Rolling updates: success, the early verdict, the deadline, a restart in
//! the middle, two spec changes in quick succession, operator controls and
//! probe counts.

use std::time::Duration;

use ccd_cloud::model::Share;

use super::*;
use crate::control::Control;
use crate::record::VerdictResult;
use crate::testing::{Behaviour, Harness};

#[tokio::test(start_paused = true)]
async fn a_rolling_update_moves_every_instance_and_collects_the_old_template() {
    let mut h = ready(ROLLING).await;
    let t1 = template_of(&h, "1");
    h.set_spec(&spec("2", ROLLING));
    let s = h
        .until("version 2 everywhere", MINUTE, |s| {
            rollout_state(s) == Some(RolloutState::Succeeded) && s.phase == Phase::Ready
        })
        .await;
    assert_eq!(versions(&h, "web"), ["2", "2", "2"]);
    assert_eq!(s.last_good.as_ref().unwrap().version, "2");
    let r = s.rollout.as_ref().unwrap();
    assert_eq!(r.from.as_ref().unwrap().version, "1");
    assert_eq!(r.steps[0].plan.name, "rolling");
    assert_eq!(s.history.len(), 1, "the first deploy went to the history");
    h.run_for(Duration::from_secs(5)).await;
    assert!(
        !h.cloud.state().templates.contains_key(&t1),
        "the old template is collected"
    );
    assert!(h.event("TemplateDeleted").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_version_that_fails_its_health_check_is_rolled_back_after_its_grace_not_before() {
    let mut h = ready(ROLLING).await;
    h.probes.running.lock().unwrap().clear();
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    let t2 = template_of(&h, "2");
    h.cloud.behave(&t2, Behaviour::Unreachable);
    // Within the 5s start-up grace the failures do not count.
    h.run_for(Duration::from_secs(4)).await;
    assert_eq!(rollout_state(&h.status()), Some(RolloutState::Progressing));
    let s = h
        .until("the early verdict", Duration::from_secs(10), |s| {
            s.rolled_back
        })
        .await;
    let r = s.rollout.as_ref().unwrap();
    assert_eq!(r.state, RolloutState::Failed);
    let verdict = r.verdict.as_ref().unwrap();
    assert_eq!(verdict.result, VerdictResult::Failed);
    assert!(
        verdict.reason.contains("failed their health check 2 times"),
        "{}",
        verdict.reason
    );
    assert!(
        r.failing.iter().all(|f| f.health.contains("not reachable")),
        "{:?}",
        r.failing
    );
    assert!(!r.failing.is_empty());
    // The whole fleet goes back at once: no batches on the way back.
    let (group, _) = h.cloud.state().groups.values().next().cloned().unwrap();
    assert_eq!(group.versions[0].template, template_of(&h, "1"));
    assert_eq!(group.update.max_surge, Share::Fixed(3));
    h.until("only version 1", MINUTE, |s| s.serving == ["1"])
        .await;
    let s = h.status();
    assert_eq!(s.phase, Phase::Degraded);
    let c = s.conditions.iter().find(|c| c.kind == "Degraded").unwrap();
    assert_eq!(c.reason, "RolledBack");
    assert!(c.message.contains("version 1 serves"), "{}", c.message);
    assert!(h.event("RolledBack").is_some());
    // It stays rolled back until the spec changes.
    h.run_for(Duration::from_secs(10 * 60)).await;
    assert!(h.status().rolled_back);
    assert_eq!(versions(&h, "web"), ["1", "1", "1"]);
    h.cloud.behave(&t2, Behaviour::Healthy);
    h.set_spec(&spec("3", ROLLING));
    h.until("version 3 Ready", MINUTE, |s| {
        s.phase == Phase::Ready && s.serving == ["3"]
    })
    .await;
    assert!(!h.status().rolled_back);
}

#[tokio::test(start_paused = true)]
async fn a_version_that_never_turns_healthy_is_rolled_back_at_its_deadline_not_before() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Starting);
    h.run_for(Duration::from_secs(115)).await;
    assert_eq!(
        rollout_state(&h.status()),
        Some(RolloutState::Progressing),
        "not before 2m"
    );
    let s = h
        .until("the deadline", Duration::from_secs(10), |s| s.rolled_back)
        .await;
    let reason = &s.rollout.as_ref().unwrap().verdict.as_ref().unwrap().reason;
    assert!(
        reason.contains("within the rollout deadline (2m)"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_deploy_that_never_turns_healthy_is_stuck_not_rolled_back() {
    let h = Harness::new(&spec("1", ROLLING));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "1"), Behaviour::Starting);
    let s = h
        .until("the deadline", Duration::from_secs(200), |s| {
            rollout_state(s) == Some(RolloutState::Failed)
        })
        .await;
    assert!(!s.rolled_back);
    let c = s.conditions.iter().find(|c| c.kind == "Degraded").unwrap();
    assert_eq!(c.reason, "RolloutStuck");
    assert!(c.message.contains("no earlier version"), "{}", c.message);
    assert_eq!(versions(&h, "web"), ["1", "1", "1"], "it keeps trying");
    h.cloud.behave(&template_of(&h, "1"), Behaviour::Healthy);
    h.until("Ready at last", MINUTE, |s| s.phase == Phase::Ready)
        .await;
}

#[tokio::test(start_paused = true)]
async fn two_spec_changes_in_quick_succession_end_on_the_newest_alone() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Starting);
    h.run_for(Duration::from_secs(1)).await;
    h.set_spec(&spec("3", ROLLING));
    let s = h
        .until("version 3 alone", MINUTE, |s| {
            s.phase == Phase::Ready && s.serving == ["3"]
        })
        .await;
    assert_eq!(versions(&h, "web"), ["3", "3", "3"]);
    assert_eq!(s.history[0].state, RolloutState::Superseded);
    assert_eq!(s.history[0].version, "2");
    assert_eq!(
        s.rollout.as_ref().unwrap().from.as_ref().unwrap().version,
        "1"
    );
    assert!(h.event("RolloutSuperseded").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_keeps_the_deadline_it_recorded() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Starting);
    h.run_for(Duration::from_secs(90)).await;
    // A new controller process: same cloud, same store, nothing in memory.
    let h2 = h.restart();
    h2.run_for(Duration::from_secs(25)).await;
    assert_eq!(
        rollout_state(&h2.status()),
        Some(RolloutState::Progressing),
        "never early"
    );
    h2.until(
        "the deadline 2m after the start",
        Duration::from_secs(10),
        |s| s.rolled_back,
    )
    .await;
    drop(h);
}

#[tokio::test(start_paused = true)]
async fn pause_holds_a_rolling_update_and_resume_continues_it() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    let id = h.status().rollout.unwrap().id;
    h.write_control(&Control {
        rollout: id.clone(),
        paused: true,
        ..Control::default()
    });
    h.run_for(Duration::from_secs(5)).await;
    let s = h.status();
    assert_eq!(rollout_state(&s), Some(RolloutState::Paused));
    assert!(h.event("RolloutPaused").is_some());
    // Well past the deadline: a paused rollout does not fail.
    h.run_for(Duration::from_secs(5 * 60)).await;
    assert_eq!(rollout_state(&h.status()), Some(RolloutState::Paused));
    h.write_control(&Control {
        rollout: id,
        paused: false,
        ..Control::default()
    });
    h.until("version 2 everywhere", MINUTE, |s| {
        rollout_state(s) == Some(RolloutState::Succeeded)
    })
    .await;
    assert!(h.event("RolloutResumed").is_some());
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_now_and_a_stale_control_is_ignored() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Starting);
    h.write_control(&Control {
        rollout: "web-0000000000@2020-01-01T00:00:00.000Z".into(),
        abort: true,
        ..Control::default()
    });
    h.run_for(Duration::from_secs(5)).await;
    assert_eq!(rollout_state(&h.status()), Some(RolloutState::Progressing));
    let id = h.status().rollout.unwrap().id;
    h.write_control(&Control {
        rollout: id,
        abort: true,
        ..Control::default()
    });
    let s = h
        .until("the abort", Duration::from_secs(5), |s| s.rolled_back)
        .await;
    assert_eq!(rollout_state(&s), Some(RolloutState::Aborted));
    h.until("only version 1", MINUTE, |s| s.serving == ["1"])
        .await;
}

#[tokio::test(start_paused = true)]
async fn probe_counts_are_kept_per_step_and_the_probe_stops_with_the_rollout() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Starting);
    h.pass().await;
    assert!(
        h.probes.is_running("web"),
        "a rollout of a serving app is probed"
    );
    h.probes.count("web", 50, 2);
    h.pass().await;
    // Counts alone are written at most every 5 s (a bucket's write rate).
    assert_eq!(h.status().rollout.unwrap().probes.sent, 0);
    tokio::time::advance(Duration::from_secs(5)).await;
    h.pass().await;
    let r = h.status().rollout.unwrap();
    assert_eq!((r.probes.sent, r.probes.failed), (50, 2));
    assert_eq!((r.steps[0].probes, r.steps[0].failed_probes), (50, 2));
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Healthy);
    h.probes.count("web", 10, 0);
    let s = h
        .until("success", MINUTE, |s| {
            rollout_state(s) == Some(RolloutState::Succeeded)
        })
        .await;
    assert_eq!(s.rollout.as_ref().unwrap().probes.sent, 60);
    h.pass().await;
    assert!(!h.probes.is_running("web"));
    assert!(
        h.event("RolloutSucceeded")
            .unwrap()
            .contains("2 of 60 probes failed")
    );
}
