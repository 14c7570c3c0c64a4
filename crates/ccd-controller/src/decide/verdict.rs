//! How a rollout is judged: new instances that fail their health check
//! once their start-up grace has passed (or crash-loop, which autohealing
//! shows as recreating them), steps not healthy by their deadline, and a
//! canary answering with more server errors than the stable group.

use std::time::Duration;

use ccd_cloud::model::{InstanceAction, InstanceHealth, LbTraffic, ManagedInstance};
use ccd_spec::App;

use crate::record::{FailingInstance, Rollout, Timestamp};
use crate::report::{self, humantime};
use crate::steps::{StepKind, StepPlan};

/// How long the end of a canary hold waits for request counts that cover
/// it before judging on health alone.
pub const TRAFFIC_WAIT: Duration = Duration::from_secs(300);
/// A canary is judged on its error rate once it answered this many server errors.
const MIN_ERRORS: u64 = 5;
/// ... and fails when its error rate is more than this many percentage
/// points above the stable group's,
const MARGIN_POINTS: f64 = 1.0;
/// ... and at least this many times it.
const FACTOR: f64 = 1.5;

/// New instances (of the rollout's target template) failing their health
/// check after their grace, or being recreated by autohealing.
pub(super) fn failing(
    members: &[ManagedInstance],
    r: &Rollout,
    now: Timestamp,
    grace: Duration,
) -> Vec<FailingInstance> {
    members
        .iter()
        .filter(|m| m.template.as_deref() == Some(r.to.template.as_str()))
        .filter(|m| report::is_failing(m.health) || m.action == InstanceAction::Recreating)
        .filter(|m| {
            r.new_instances
                .iter()
                .find(|n| n.name == m.name)
                .is_some_and(|n| now.since(n.seen) >= grace)
        })
        .map(|m| FailingInstance {
            name: m.name.clone(),
            health: report::health_answer(m),
        })
        .collect()
}

pub(super) fn failing_reason(failing: &[FailingInstance], app: &App) -> String {
    let h = &app.spec.health;
    let list: Vec<String> = failing
        .iter()
        .map(|f| format!("{} ({})", f.name, f.health))
        .collect();
    format!(
        "new instances failed their health check {} times in a row after their {} start-up \
         grace: {}",
        h.unhealthy_threshold,
        humantime(h.initial_delay.as_std()),
        list.join(", ")
    )
}

/// Running, healthy (checked, not just unknown) and idle members on `template`.
pub(super) fn healthy_on(members: &[ManagedInstance], template: &str) -> u32 {
    let n = members
        .iter()
        .filter(|m| report::is_good(m, template))
        .filter(|m| m.health == InstanceHealth::Healthy && m.action == InstanceAction::None)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) fn deadline_reason(
    members: &[ManagedInstance],
    r: &Rollout,
    step: &StepPlan,
    deadline: Duration,
) -> String {
    let standing = report::Members::of(members, &r.to.template);
    let wanted = match step.kind {
        StepKind::InPlace => String::new(),
        StepKind::Shift => format!(
            "; {} of the {} wanted are healthy",
            healthy_on(members, &r.to.template),
            step.instances.unwrap_or(1)
        ),
    };
    let not_good = if standing.not_good.is_empty() {
        String::new()
    } else {
        format!(" (not yet good: {})", standing.not_good.join(", "))
    };
    format!(
        "step {} was not healthy within the rollout deadline ({}){wanted}{not_good}",
        step.name,
        humantime(deadline)
    )
}

/// Whether the canary's error rate condemns it, and why.
pub(super) fn error_rate(traffic: &LbTraffic, stable: &str, next: &str) -> Option<String> {
    let find = |group: &str| traffic.backends.iter().find(|b| b.group == group);
    let canary = find(next)?;
    if canary.server_errors < MIN_ERRORS || canary.requests == 0 {
        return None;
    }
    let rate = |errors: u64, requests: u64| {
        if requests == 0 {
            0.0
        } else {
            100.0 * errors as f64 / requests as f64
        }
    };
    let canary_rate = rate(canary.server_errors, canary.requests);
    let (stable_rate, stable_requests) = find(stable).map_or((0.0, 0), |s| {
        (rate(s.server_errors, s.requests), s.requests)
    });
    let worse = canary_rate > stable_rate + MARGIN_POINTS && canary_rate >= stable_rate * FACTOR;
    worse.then(|| {
        format!(
            "the new version answered {} of {} requests with a server error ({canary_rate:.1}%), \
             the stable one {stable_rate:.1}% of {stable_requests}",
            canary.server_errors, canary.requests
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccd_cloud::model::BackendTraffic;

    fn traffic(stable: (u64, u64), canary: (u64, u64)) -> LbTraffic {
        LbTraffic {
            backends: vec![
                BackendTraffic {
                    group: "web".into(),
                    requests: stable.0,
                    server_errors: stable.1,
                },
                BackendTraffic {
                    group: "web-next".into(),
                    requests: canary.0,
                    server_errors: canary.1,
                },
            ],
            complete_until: None,
        }
    }

    #[test]
    fn a_canary_fails_only_when_clearly_worse_than_stable() {
        assert!(error_rate(&traffic((900, 0), (100, 10)), "web", "web-next").is_some());
        let why = error_rate(&traffic((900, 9), (100, 10)), "web", "web-next").unwrap();
        assert!(why.contains("10 of 100"), "{why}");
        assert!(
            error_rate(&traffic((900, 90), (100, 11)), "web", "web-next").is_none(),
            "as bad as the stable group"
        );
        assert!(
            error_rate(&traffic((900, 0), (100, 4)), "web", "web-next").is_none(),
            "too few errors to judge"
        );
        assert!(
            error_rate(&traffic((0, 0), (1000, 5)), "web", "web-next").is_none(),
            "0.5% is within the margin"
        );
        assert!(error_rate(&traffic((10, 0), (0, 0)), "web", "web-next").is_none());
    }
}
