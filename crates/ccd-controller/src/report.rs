//! From what a pass observed to what the status says: is the app Ready, is
//! it still Progressing, is it Degraded and why. Pure functions, so every
//! case is tested without a cloud.

use std::time::Duration;

use ccd_cloud::model::{InstanceAction, InstanceHealth, InstanceStatus, ManagedInstance};

use crate::status::{Condition, InstanceView, Phase};

/// How a group's members stand against the template they should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Members {
    pub total: usize,
    /// Running, not unhealthy, on the wanted template.
    pub good: usize,
    /// Names of the members that are not good, for messages.
    pub not_good: Vec<String>,
}

impl Members {
    pub(crate) fn of(members: &[ManagedInstance], template: &str) -> Members {
        let not_good: Vec<String> = members
            .iter()
            .filter(|i| !is_good(i, template))
            .map(|i| i.name.clone())
            .collect();
        Members {
            total: members.len(),
            good: members.len() - not_good.len(),
            not_good,
        }
    }

    /// At least `target` members, and every one good.
    pub(crate) fn whole(&self, target: u32) -> bool {
        self.total >= target as usize && self.not_good.is_empty()
    }
}

fn is_good(i: &ManagedInstance, template: &str) -> bool {
    i.status == InstanceStatus::Running
        && !matches!(
            i.health,
            InstanceHealth::Unhealthy | InstanceHealth::Unreachable
        )
        && i.template.as_deref() == Some(template)
}

/// A group at rest: nothing being created, replaced or verified.
pub(crate) fn idle(members: &[ManagedInstance]) -> bool {
    members.iter().all(|i| i.action == InstanceAction::None)
}

/// Why an app is Degraded, if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Degraded {
    pub reason: &'static str,
    pub message: String,
}

/// What the conditions are built from.
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    pub version: &'a str,
    pub ready: bool,
    pub degraded: Option<Degraded>,
}

/// The phase and the four conditions, in a fixed order (no churn).
pub(crate) fn conditions(f: &Facts) -> (Phase, Vec<Condition>) {
    let phase = match (&f.degraded, f.ready) {
        (Some(_), _) => Phase::Degraded,
        (None, true) => Phase::Ready,
        (None, false) => Phase::Progressing,
    };
    let (reason, message) = if f.ready {
        (
            "Converged",
            format!("version {} serves on every instance", f.version),
        )
    } else {
        ("RollingOut", format!("rolling out version {}", f.version))
    };
    let rolled_back = f.degraded.as_ref().is_some_and(|d| d.reason == ROLLED_BACK);
    let degraded = f.degraded.clone().unwrap_or(Degraded {
        reason: "AsSpecified",
        message: "nothing is degraded".to_owned(),
    });
    let conditions = vec![
        Condition {
            kind: "Degraded",
            status: f.degraded.is_some(),
            reason: degraded.reason.to_owned(),
            message: degraded.message,
        },
        Condition {
            kind: "Progressing",
            status: !f.ready && !rolled_back,
            reason: reason.to_owned(),
            message: message.clone(),
        },
        Condition {
            kind: "Ready",
            status: f.ready,
            reason: reason.to_owned(),
            message,
        },
        Condition {
            kind: "Stalled",
            status: false,
            reason: "SpecValid".to_owned(),
            message: "the spec is valid".to_owned(),
        },
    ];
    (phase, conditions)
}

pub(crate) const ROLLED_BACK: &str = "RolledBack";

pub(crate) fn rolled_back(version: &str, good: &str, deadline: Duration) -> Degraded {
    Degraded {
        reason: ROLLED_BACK,
        message: format!(
            "version {version} was not healthy within the rollout deadline ({}) and was rolled \
             back; version {good} serves. Fix the app and change the spec (e.g. a new version) \
             to try again",
            humantime(deadline)
        ),
    }
}

pub(crate) fn stuck(version: &str, deadline: Duration, m: &Members) -> Degraded {
    Degraded {
        reason: "RolloutStuck",
        message: format!(
            "version {version} is not healthy after the rollout deadline ({}): {} of {} \
             instances are not ({}); there is no earlier version to roll back to",
            humantime(deadline),
            m.not_good.len(),
            m.total,
            m.not_good.join(", ")
        ),
    }
}

pub(crate) fn unhealthy(m: &Members) -> Degraded {
    Degraded {
        reason: "InstancesUnhealthy",
        message: format!(
            "{} of {} instances are not running healthy: {}",
            m.not_good.len(),
            m.total,
            m.not_good.join(", ")
        ),
    }
}

pub(crate) fn drifted(drift: &[String]) -> Degraded {
    Degraded {
        reason: "Drifted",
        message: format!(
            "the cloud differs from the spec, and `drift: warn` leaves it so: {}",
            drift.join("; ")
        ),
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

pub(crate) fn serving(members: &[ManagedInstance]) -> Vec<String> {
    let mut versions: Vec<String> = members.iter().filter_map(|i| i.version.clone()).collect();
    versions.sort();
    versions.dedup();
    versions
}

pub(crate) fn instance_views(members: &[ManagedInstance]) -> Vec<InstanceView> {
    let mut out: Vec<InstanceView> = members
        .iter()
        .map(|i| InstanceView {
            name: i.name.clone(),
            version: i.version.clone().unwrap_or_default(),
            status: format!("{:?}", i.status),
            health: format!("{:?}", i.health),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, template: &str, health: InstanceHealth) -> ManagedInstance {
        ManagedInstance {
            name: name.into(),
            template: Some(template.into()),
            version: Some("1".into()),
            action: InstanceAction::None,
            status: InstanceStatus::Running,
            health,
            address: None,
        }
    }

    #[test]
    fn a_group_is_whole_only_with_enough_good_members_on_the_template() {
        let m = [
            member("a", "t1", InstanceHealth::Healthy),
            member("b", "t1", InstanceHealth::Unknown),
        ];
        assert!(Members::of(&m, "t1").whole(2));
        assert!(!Members::of(&m, "t1").whole(3), "too few");
        assert!(!Members::of(&m, "t2").whole(2), "wrong template");
        let sick = [
            member("a", "t1", InstanceHealth::Healthy),
            member("b", "t1", InstanceHealth::Unhealthy),
        ];
        let s = Members::of(&sick, "t1");
        assert!(!s.whole(2));
        assert_eq!(s.not_good, vec!["b".to_owned()]);
        assert!(unhealthy(&s).message.contains("1 of 2 instances"));
    }

    #[test]
    fn phase_follows_readiness_and_degradation() {
        let ready = Facts {
            version: "1",
            ready: true,
            degraded: None,
        };
        assert_eq!(conditions(&ready).0, Phase::Ready);
        let rolling = Facts {
            ready: false,
            ..ready.clone()
        };
        let (phase, c) = conditions(&rolling);
        assert_eq!(phase, Phase::Progressing);
        assert!(c.iter().any(|c| c.kind == "Progressing" && c.status));
        let back = Facts {
            version: "2",
            ready: true,
            degraded: Some(rolled_back("2", "1", Duration::from_secs(600))),
        };
        let (phase, c) = conditions(&back);
        assert_eq!(phase, Phase::Degraded);
        assert!(
            c.iter()
                .any(|c| c.kind == "Degraded" && c.status && c.message.contains("(10m)"))
        );
        assert!(
            c.iter().all(|c| c.kind != "Progressing" || !c.status),
            "a rollback is not progress"
        );
        let kinds: Vec<&str> = c.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["Degraded", "Progressing", "Ready", "Stalled"]);
    }

    #[test]
    fn durations_read_like_the_spec_writes_them() {
        assert_eq!(humantime(Duration::from_secs(30)), "30s");
        assert_eq!(humantime(Duration::from_secs(600)), "10m");
        assert_eq!(humantime(Duration::from_secs(90)), "1m30s");
        assert_eq!(humantime(Duration::from_secs(7200)), "2h");
    }
}
