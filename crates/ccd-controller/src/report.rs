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
            not_good,
        }
    }

    /// At least `target` members, and every one good.
    pub(crate) fn whole(&self, target: u32) -> bool {
        self.total >= target as usize && self.not_good.is_empty()
    }
}

/// Running, not failing its health check, on `template`.
pub(crate) fn is_good(i: &ManagedInstance, template: &str) -> bool {
    i.status == InstanceStatus::Running
        && !is_failing(i.health)
        && i.template.as_deref() == Some(template)
}

pub(crate) fn is_failing(health: InstanceHealth) -> bool {
    matches!(
        health,
        InstanceHealth::Unhealthy | InstanceHealth::Unreachable
    )
}

/// A group at rest: nothing being created, replaced or verified.
pub(crate) fn idle(members: &[ManagedInstance]) -> bool {
    members.iter().all(|i| i.action == InstanceAction::None)
}

/// A group at rest with at least `target` good members on `template`.
pub(crate) fn whole(members: &[ManagedInstance], template: &str, target: u32) -> bool {
    idle(members) && Members::of(members, template).whole(target)
}

/// What an instance's last health answer was, in words.
pub(crate) fn health_answer(i: &ManagedInstance) -> String {
    match (&i.action, i.health) {
        (InstanceAction::Recreating, _) => {
            "recreated by autohealing after failing its health check".to_owned()
        }
        (_, InstanceHealth::Unhealthy) => {
            "answered, but the answer failed the health check".to_owned()
        }
        (_, InstanceHealth::Unreachable) => {
            "not reachable: no connection, or no answer within the check's timeout".to_owned()
        }
        (_, h) => format!("{h:?}").to_lowercase(),
    }
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
    /// The version that serves.
    pub version: &'a str,
    pub ready: bool,
    /// A rollout under way: its reason and message.
    pub progressing: Option<(&'static str, String)>,
    pub degraded: Option<Degraded>,
}

/// The phase and the four conditions, in a fixed order (no churn).
pub(crate) fn conditions(f: &Facts) -> (Phase, Vec<Condition>) {
    let phase = match (&f.degraded, f.ready) {
        (Some(_), _) => Phase::Degraded,
        (None, true) => Phase::Ready,
        (None, false) => Phase::Progressing,
    };
    let ready_message = format!("version {} serves on every instance", f.version);
    let (p_reason, p_message) = match (&f.progressing, f.ready) {
        (Some((reason, message)), _) => (*reason, message.clone()),
        (None, true) => ("Converged", ready_message.clone()),
        (None, false) => ("Converging", format!("converging on version {}", f.version)),
    };
    let degraded = f.degraded.clone().unwrap_or(Degraded {
        reason: "AsSpecified",
        message: "nothing is degraded".to_owned(),
    });
    let (r_reason, r_message) = if f.ready {
        ("Converged", ready_message)
    } else {
        ("NotReady", p_message.clone())
    };
    let conditions = vec![
        condition(
            "Degraded",
            f.degraded.is_some(),
            degraded.reason,
            degraded.message,
        ),
        condition(
            "Progressing",
            f.progressing.is_some() || (!f.ready && f.degraded.is_none()),
            p_reason,
            p_message,
        ),
        condition("Ready", f.ready, r_reason, r_message),
        condition(
            "Stalled",
            false,
            "SpecValid",
            "the spec is valid".to_owned(),
        ),
    ];
    (phase, conditions)
}

pub(crate) fn condition(kind: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        kind: kind.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
    }
}

pub(crate) const ROLLED_BACK: &str = "RolledBack";

pub(crate) fn rolled_back(version: &str, good: &str, why: &str) -> Degraded {
    Degraded {
        reason: ROLLED_BACK,
        message: format!(
            "version {version} was rolled back: {why}; version {good} serves. Fix the app and \
             change the spec (e.g. a new version) to try again"
        ),
    }
}

pub(crate) fn stuck(version: &str, why: &str) -> Degraded {
    Degraded {
        reason: "RolloutStuck",
        message: format!(
            "version {version} failed: {why}; there is no earlier version to roll back to, so \
             its instances keep being retried"
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

pub(crate) fn humantime(d: Duration) -> String {
    ccd_spec::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).to_string()
}

pub(crate) fn serving(members: &[&ManagedInstance]) -> Vec<String> {
    let mut versions: Vec<String> = members.iter().filter_map(|i| i.version.clone()).collect();
    versions.sort();
    versions.dedup();
    versions
}

pub(crate) fn instance_views(
    members: &[(&str, &ManagedInstance)],
    named: bool,
) -> Vec<InstanceView> {
    let mut out: Vec<InstanceView> = members
        .iter()
        .map(|(group, i)| InstanceView {
            name: i.name.clone(),
            version: i.version.clone().unwrap_or_default(),
            status: i.status.to_string(),
            health: format!("{:?}", i.health),
            group: if named {
                (*group).to_owned()
            } else {
                String::new()
            },
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
            id: None,
            zone: None,
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
            member("b", "t1", InstanceHealth::Unreachable),
        ];
        let s = Members::of(&sick, "t1");
        assert!(!s.whole(2));
        assert_eq!(s.not_good, vec!["b".to_owned()]);
        assert!(unhealthy(&s).message.contains("1 of 2 instances"));
        assert!(health_answer(&sick[1]).contains("not reachable"));
    }

    #[test]
    fn phase_follows_readiness_and_degradation() {
        let ready = Facts {
            version: "1",
            ready: true,
            progressing: None,
            degraded: None,
        };
        assert_eq!(conditions(&ready).0, Phase::Ready);
        let rolling = Facts {
            ready: false,
            progressing: Some(("RollingOut", "step 1".into())),
            ..ready.clone()
        };
        let (phase, c) = conditions(&rolling);
        assert_eq!(phase, Phase::Progressing);
        assert!(c.iter().any(|c| c.kind == "Progressing" && c.status));
        let back = Facts {
            version: "1",
            ready: true,
            progressing: None,
            degraded: Some(rolled_back("2", "1", "not healthy within 10m")),
        };
        let (phase, c) = conditions(&back);
        assert_eq!(phase, Phase::Degraded);
        assert!(
            c.iter().all(|c| c.kind != "Progressing" || !c.status),
            "a rollback is not progress"
        );
        let kinds: Vec<&str> = c.iter().map(|c| c.kind.as_str()).collect();
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
