//! Blue/green, canary and group moves: a second group, traffic moved by
//! load-balancer weights, the old group kept warm, then removed.

use std::time::Duration;

use ccd_cloud::model::{BackendTraffic, LbTraffic};

use super::*;
use crate::control::Control;
use crate::status::GroupRole;
use crate::testing::{Behaviour, Harness};

fn weights(h: &Harness) -> Vec<u32> {
    h.cloud.weights().into_iter().map(|(_, w)| w).collect()
}

#[tokio::test(start_paused = true)]
async fn blue_green_switches_in_one_step_keeps_the_old_group_warm_then_removes_it() {
    let mut h = ready(BLUE_GREEN).await;
    h.set_spec(&spec("2", BLUE_GREEN));
    h.pass().await;
    let t2 = template_of(&h, "2");
    h.cloud.behave(&t2, Behaviour::Starting);
    h.run_for(Duration::from_secs(5)).await;
    // The new group comes up at full size while the old one takes every request.
    assert_eq!(versions(&h, &t2), ["2", "2", "2"]);
    assert_eq!(weights(&h), [100, 0]);
    assert_eq!(h.status().phase, Phase::Progressing);
    h.cloud.behave(&t2, Behaviour::Healthy);
    let s = h
        .until("the switch", MINUTE, |_| weights(&h) == [0, 100])
        .await;
    assert_eq!(s.phase, Phase::Ready, "version 2 takes every request");
    assert!(h.event("TrafficShifted").unwrap().contains("100%"));
    let c = s
        .conditions
        .iter()
        .find(|c| c.kind == "Progressing")
        .unwrap();
    assert_eq!(c.reason, "KeepingWarm");
    // Kept warm for a minute (keepWarm: 1m), not less.
    h.run_for(Duration::from_secs(50)).await;
    assert_eq!(versions(&h, "web"), ["1", "1", "1"], "still warm");
    let s = h
        .until("the old group's removal", MINUTE, |s| s.groups.len() == 1)
        .await;
    assert_eq!(rollout_state(&s), Some(RolloutState::Succeeded));
    assert_eq!(s.groups[0].name, t2);
    assert_eq!(s.groups[0].role, GroupRole::Stable);
    assert_eq!(h.cloud.group_names(), std::slice::from_ref(&t2));
    assert_eq!(h.cloud.weights(), [(t2, 100)]);
    assert_eq!(s.last_good.as_ref().unwrap().version, "2");
    assert!(h.event("GroupDeleted").is_some());
}

#[tokio::test(start_paused = true)]
async fn blue_green_rolls_back_instantly_when_the_new_group_fails_under_traffic() {
    let mut h = ready(BLUE_GREEN).await;
    h.set_spec(&spec("2", BLUE_GREEN));
    h.until("the switch", MINUTE, |_| weights(&h) == [0, 100])
        .await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Unhealthy);
    let s = h
        .until("the rollback", Duration::from_secs(5), |s| s.rolled_back)
        .await;
    assert_eq!(
        h.cloud.weights(),
        [("web".to_owned(), 100)],
        "all traffic back at once"
    );
    assert_eq!(versions(&h, "web"), ["1", "1", "1"]);
    assert_eq!(s.phase, Phase::Degraded);
    h.until("the failed group's removal", MINUTE, |s| {
        s.groups.len() == 1
    })
    .await;
    assert_eq!(h.cloud.group_names(), ["web"]);
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_group_that_never_turns_healthy_never_gets_traffic() {
    let mut h = ready(BLUE_GREEN).await;
    h.set_spec(&spec("2", BLUE_GREEN));
    h.pass().await;
    h.cloud.behave(&template_of(&h, "2"), Behaviour::Unhealthy);
    let s = h.until("the verdict", MINUTE, |s| s.rolled_back).await;
    assert!(
        weights(&h).len() == 1 || weights(&h)[1] == 0,
        "{:?}",
        h.cloud.weights()
    );
    assert!(
        s.rollout
            .unwrap()
            .verdict
            .unwrap()
            .reason
            .contains("health check")
    );
}

fn traffic(h: &Harness, stable: (u64, u64), canary: (u64, u64)) {
    let next = h.status().next().map(|g| g.name.clone()).unwrap();
    h.cloud.state().traffic = LbTraffic {
        backends: vec![
            BackendTraffic {
                group: "web".into(),
                requests: stable.0,
                server_errors: stable.1,
            },
            BackendTraffic {
                group: next,
                requests: canary.0,
                server_errors: canary.1,
            },
        ],
        complete_until: Some(ccd_clock::wall() + Duration::from_secs(3_000_000_000)),
    };
}

#[tokio::test(start_paused = true)]
async fn a_canary_moves_through_its_steps_on_time() {
    let mut h = ready(CANARY).await;
    h.set_spec(&spec("2", CANARY));
    h.until("10% of the requests", MINUTE, |_| weights(&h) == [90, 10])
        .await;
    let t2 = template_of(&h, "2");
    assert_eq!(versions(&h, &t2), ["2"], "one instance carries 10%");
    traffic(&h, (900, 0), (100, 0));
    // The step holds for a minute.
    h.run_for(Duration::from_secs(55)).await;
    assert_eq!(weights(&h), [90, 10], "not early");
    h.until("50%", Duration::from_secs(10), |_| weights(&h) == [50, 50])
        .await;
    assert_eq!(versions(&h, &t2), ["2", "2"]);
    h.run_for(Duration::from_secs(115)).await;
    assert_eq!(weights(&h), [50, 50]);
    h.until("100%", Duration::from_secs(10), |_| weights(&h) == [0, 100])
        .await;
    assert_eq!(versions(&h, &t2), ["2", "2", "2"]);
    let s = h
        .until("the end of keepWarm", MINUTE, |s| {
            rollout_state(s) == Some(RolloutState::Succeeded) && s.groups.len() == 1
        })
        .await;
    let names: Vec<&str> = s
        .rollout
        .as_ref()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.plan.name.as_str())
        .collect();
    assert_eq!(names, ["10%", "50%", "100%"]);
    assert_eq!(h.cloud.weights(), [(t2, 100)]);
}

#[tokio::test(start_paused = true)]
async fn a_canary_with_more_server_errors_than_stable_is_rolled_back() {
    let mut h = ready(CANARY).await;
    h.set_spec(&spec("2", CANARY));
    h.until("10% of the requests", MINUTE, |_| weights(&h) == [90, 10])
        .await;
    traffic(&h, (900, 1), (100, 20));
    let s = h
        .until("the verdict", Duration::from_secs(5), |s| s.rolled_back)
        .await;
    let reason = s.rollout.unwrap().verdict.unwrap().reason;
    assert!(reason.contains("20 of 100 requests"), "{reason}");
    assert_eq!(h.cloud.weights(), [("web".to_owned(), 100)]);
}

#[tokio::test(start_paused = true)]
async fn promote_skips_the_holds_but_never_the_health_check() {
    let mut h = ready(CANARY).await;
    h.set_spec(&spec("2", CANARY));
    h.until("10%", MINUTE, |_| weights(&h) == [90, 10]).await;
    let id = h.status().rollout.unwrap().id;
    let t2 = template_of(&h, "2");
    h.cloud.behave(&t2, Behaviour::Starting);
    h.write_control(&Control {
        rollout: id,
        promote: true,
        ..Control::default()
    });
    h.run_for(Duration::from_secs(10)).await;
    assert_ne!(
        weights(&h),
        [0, 100],
        "not to instances that are not healthy"
    );
    h.cloud.behave(&t2, Behaviour::Healthy);
    h.until("promotion", MINUTE, |s| {
        rollout_state(s) == Some(RolloutState::Succeeded)
    })
    .await;
    assert!(h.event("RolloutPromoted").is_some());
    h.until(
        "no keepWarm after a promotion",
        Duration::from_secs(5),
        |s| s.groups.len() == 1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_continues_a_canary_hold_never_early_never_late() {
    let mut h = ready(CANARY).await;
    h.set_spec(&spec("2", CANARY));
    h.until("10%", MINUTE, |_| weights(&h) == [90, 10]).await;
    h.run_for(Duration::from_secs(30)).await;
    let h2 = h.restart();
    h2.run_for(Duration::from_secs(25)).await;
    assert_eq!(weights(&h2), [90, 10]);
    h2.until("50%", Duration::from_secs(10), |_| weights(&h2) == [50, 50])
        .await;
    drop(h);
}

#[tokio::test(start_paused = true)]
async fn a_newer_spec_during_keep_warm_finishes_the_switch_then_rolls_out_from_it() {
    let mut h = ready(BLUE_GREEN).await;
    h.set_spec(&spec("2", BLUE_GREEN));
    h.until("the switch", MINUTE, |_| weights(&h) == [0, 100])
        .await;
    let t2 = template_of(&h, "2");
    h.set_spec(&spec("3", BLUE_GREEN));
    h.pass().await;
    let s = h.status();
    assert_eq!(s.history[0].state, RolloutState::Succeeded);
    assert_eq!(s.last_good.as_ref().unwrap().version, "2");
    assert_eq!(
        s.rollout.as_ref().unwrap().from.as_ref().unwrap().version,
        "2"
    );
    assert_eq!(s.stable().unwrap().name, t2);
    let s = h
        .until("version 3 alone", 3 * MINUTE, |s| {
            rollout_state(s) == Some(RolloutState::Succeeded) && s.groups.len() == 1
        })
        .await;
    assert_eq!(s.serving, ["3"]);
    assert_eq!(h.cloud.group_names().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_superseded_canary_sends_its_traffic_back_and_its_group_goes() {
    let mut h = ready(CANARY).await;
    h.set_spec(&spec("2", CANARY));
    h.until("10%", MINUTE, |_| weights(&h) == [90, 10]).await;
    h.set_spec(&spec("3", CANARY));
    h.pass().await;
    let w = weights(&h);
    assert_eq!(
        w[0],
        100,
        "version 2 gets nothing any more: {:?}",
        h.cloud.weights()
    );
    let s = h
        .until("version 3 alone", 5 * MINUTE, |s| {
            rollout_state(s) == Some(RolloutState::Succeeded) && s.groups.len() == 1
        })
        .await;
    assert_eq!(s.serving, ["3"]);
    assert_eq!(s.history[0].state, RolloutState::Superseded);
}

#[tokio::test(start_paused = true)]
async fn a_new_zone_moves_the_group_behind_the_load_balancer() {
    let mut h = ready(ROLLING).await;
    h.set_spec(&spec("1", ROLLING).replace("europe-west1-b", "europe-west1-c"));
    // A move keeps the old group warm for keepWarm (5m by default).
    let s = h
        .until("the move", 6 * MINUTE, |s| {
            rollout_state(s) == Some(RolloutState::Succeeded) && s.groups.len() == 1
        })
        .await;
    assert_eq!(s.groups[0].zone.as_deref(), Some("europe-west1-c"));
    let lb = h.cloud.lb().unwrap();
    assert_eq!(lb.backends.len(), 1);
    assert_eq!(lb.backends[0].group.zone.as_deref(), Some("europe-west1-c"));
    assert_eq!(h.cloud.group_names().len(), 1);
    assert_eq!(s.phase, Phase::Ready);
}

#[tokio::test(start_paused = true)]
async fn between_steps_a_rollout_reads_its_groups_and_changes_nothing() {
    let mut h = ready(CANARY).await;
    h.set_spec(&spec("2", CANARY));
    h.until("10%", MINUTE, |_| weights(&h) == [90, 10]).await;
    h.pass().await;
    let reads = h.cloud.state().reads;
    let mutations = h.cloud.mutations();
    for _ in 0..10 {
        h.pass().await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(
        h.cloud.mutations(),
        mutations,
        "holding a step changes nothing"
    );
    assert_eq!(
        h.cloud.state().reads,
        reads + 20,
        "one read of each of the two groups per pass"
    );
    assert_eq!(weights(&h), [90, 10]);
}
