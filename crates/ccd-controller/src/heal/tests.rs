#![allow(clippy::unwrap_used)]

use super::*;
use ccd_bus::messages::InstanceRef;

const POLICY: Policy = Policy {
    interval: Duration::from_secs(1),
    unhealthy_threshold: 2,
    initial_delay: Duration::from_secs(5),
};

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        id: format!("{name}-id"),
        settled: true,
    }
}

fn members(n: usize) -> Vec<Member> {
    (1..=n).map(|i| member(&format!("web-{i}"))).collect()
}

fn heard(name: &str, health: Health, restarts: u32, at: Instant) -> (String, Heard) {
    let report = Report {
        instance: InstanceRef {
            app: "web".into(),
            version: "1".into(),
            instance: name.into(),
            instance_id: format!("{name}-id"),
        },
        health,
        failure: (health == Health::Unhealthy).then(|| "GET /healthz: HTTP 500".into()),
        cpu: None,
        memory_bytes: None,
        memory: None,
        requests_per_second: None,
        restarts,
        interval_ms: 1000,
    };
    (name.to_owned(), Heard { report, at })
}

fn reports(list: &[(&str, Health, u32)], at: Instant) -> BTreeMap<String, Heard> {
    list.iter()
        .map(|(name, health, restarts)| heard(name, *health, *restarts, at))
        .collect()
}

/// A pass now, with these fresh reports and no rollout.
fn pass(group: &[Member], heard: &[(&str, Health, u32)], healings: &Healings) -> HealDecision {
    let now = Instant::now();
    decide(
        now,
        &POLICY,
        group,
        &reports(heard, now),
        &BTreeSet::new(),
        healings,
    )
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_app_is_restarted_then_its_instance_recreated_if_that_did_not_help() {
    let group = members(4);
    let first = pass(
        &group,
        &[
            ("web-1", Health::Unhealthy, 0),
            ("web-2", Health::Healthy, 0),
        ],
        &Healings::new(),
    );
    assert_eq!(
        first.actions,
        [HealAction::Restart {
            instance: "web-1".into(),
            id: "web-1-id".into(),
            reason: "unhealthy: GET /healthz: HTTP 500".into()
        }]
    );
    // The same report again (at-least-once, or the next pass): once is enough.
    let again = pass(&group, &[("web-1", Health::Unhealthy, 0)], &first.healings);
    assert!(again.actions.is_empty());
    assert_eq!(
        again.seen[0].held.as_deref(),
        Some("restarted; its checks since decide what comes next")
    );

    // Unhealthy again after the restart, but before its grace: wait.
    tokio::time::advance(POLICY.restart_grace() - Duration::from_secs(1)).await;
    let early = pass(&group, &[("web-1", Health::Unhealthy, 1)], &first.healings);
    assert!(early.actions.is_empty());

    tokio::time::advance(Duration::from_secs(1)).await;
    // A report from before the restart says nothing about it.
    let before = pass(&group, &[("web-1", Health::Unhealthy, 0)], &first.healings);
    assert!(before.actions.is_empty());
    let late = pass(&group, &[("web-1", Health::Unhealthy, 1)], &first.healings);
    assert_eq!(
        late.actions,
        [HealAction::Recreate {
            instance: "web-1".into(),
            reason: "still unhealthy after a restart: GET /healthz: HTTP 500".into()
        }]
    );
    // The recreated instance has a new ID: the memory of the old one goes.
    let mut recreated = group.clone();
    recreated[0].id = "web-1-new".into();
    let after = pass(&recreated, &[], &late.healings);
    assert!(after.healings.is_empty() && after.actions.is_empty());
    assert_eq!(after.seen[0].health, Health::Unknown);
}

#[tokio::test(start_paused = true)]
async fn a_restart_that_helped_is_forgotten() {
    let group = members(2);
    let now = Instant::now();
    let restart = pass(&group, &[("web-1", Health::Unhealthy, 0)], &Healings::new());
    let healed = pass(&group, &[("web-1", Health::Healthy, 1)], &restart.healings);
    assert!(healed.healings.is_empty());
    // Failing again later starts the ladder again, counting from this restart.
    let again = pass(&group, &[("web-1", Health::Unhealthy, 1)], &healed.healings);
    assert!(matches!(again.actions[..], [HealAction::Restart { .. }]));
    assert_eq!(
        again.healings.values().next(),
        Some(&Healing::Restarted {
            at: now,
            restarts_before: 1
        })
    );
}

#[tokio::test(start_paused = true)]
async fn at_most_a_quarter_of_the_group_heals_at_once() {
    let group = members(8);
    let all_failing: Vec<(String, Health, u32)> = group
        .iter()
        .map(|m| (m.name.clone(), Health::Unhealthy, 0))
        .collect();
    let list: Vec<(&str, Health, u32)> = all_failing
        .iter()
        .map(|(n, h, r)| (n.as_str(), *h, *r))
        .collect();
    let d = pass(&group, &list, &Healings::new());
    assert_eq!(d.actions.len(), 2);
    assert_eq!(
        d.seen[2].held.as_deref(),
        Some("2 of 8 instances already healing (at most 2 at once)")
    );
    // A group of one may still heal its one instance.
    let one = members(1);
    let d = pass(&one, &[("web-1", Health::Unhealthy, 0)], &Healings::new());
    assert_eq!(d.actions.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn instances_a_rollout_judges_or_the_group_acts_on_are_left_alone() {
    let mut group = members(4);
    group[1].settled = false;
    let now = Instant::now();
    let judging: BTreeSet<String> = ["web-1".to_owned()].into();
    let d = decide(
        now,
        &POLICY,
        &group,
        &reports(
            &[
                ("web-1", Health::Unhealthy, 0),
                ("web-2", Health::Unhealthy, 0),
            ],
            now,
        ),
        &judging,
        &Healings::new(),
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.seen[0].held.as_deref(), Some("a rollout is judging it"));
    assert_eq!(d.seen[1].held.as_deref(), Some("the group is acting on it"));
}

#[tokio::test(start_paused = true)]
async fn a_quiet_agent_or_a_report_about_another_instance_is_unknown_never_healthy() {
    let group = members(2);
    let then = Instant::now();
    let mut heard = reports(
        &[
            ("web-1", Health::Healthy, 0),
            ("web-2", Health::Unhealthy, 0),
        ],
        then,
    );
    heard.get_mut("web-2").unwrap().report.instance.instance_id = "an-older-web-2".into();
    tokio::time::advance(Duration::from_secs(3)).await;
    let d = decide(
        Instant::now(),
        &POLICY,
        &group,
        &heard,
        &BTreeSet::new(),
        &Healings::new(),
    );
    assert_eq!(
        d.seen[0].health,
        Health::Healthy,
        "3 s is 3 intervals: still fresh"
    );
    assert_eq!(
        d.seen[1].health,
        Health::Unknown,
        "about an instance since replaced"
    );
    assert!(d.actions.is_empty());
    tokio::time::advance(Duration::from_millis(1)).await;
    let d = decide(
        Instant::now(),
        &POLICY,
        &group,
        &heard,
        &BTreeSet::new(),
        &Healings::new(),
    );
    assert_eq!(
        d.seen[0].health,
        Health::Unknown,
        "quiet for over 3 intervals"
    );
}
