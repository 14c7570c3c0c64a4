//! The health reconciler's decision: from the agents' last reports, the
//! group's members and what it did before, which apps to restart and which
//! instances to recreate. A pure function of its inputs and the time, like
//! the deploy reconciler's; an executor (to come) applies it.
//!
//! The ladder, per instance: unhealthy by its agent's report → restart the
//! app (the seed: kill and restart the service) → still unhealthy once the
//! restarted app had its initial delay and its checks → recreate the
//! instance. Never more than a safe share of the group at once, and never
//! an instance that a rollout is judging (the rollout's verdict decides
//! its fate). An instance whose agent went quiet is unknown, never healthy,
//! and is left to the cloud's autohealing, which sees a dead VM.

mod reconciler;
#[cfg(test)]
mod tests;

pub use reconciler::{HealError, HealthReconciler};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ccd_bus::messages::{Health, Report};
use tokio::time::Instant;

/// Reports older than this many of their intervals say nothing any more.
pub const QUIET_INTERVALS: u32 = 3;

/// The share of a group that may be healing at once (at least one instance).
pub const MAX_HEALING_SHARE: f64 = 0.25;

/// A member of the app's group, as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// The cloud's ID: a recreated instance has a new one.
    pub id: String,
    /// Running, with no action of the group's under way.
    pub settled: bool,
}

/// An agent's last report and when it arrived (by this process's clock).
#[derive(Debug, Clone)]
pub struct Heard {
    pub report: Report,
    pub at: Instant,
}

/// The app's health settings, from its spec.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub interval: Duration,
    pub unhealthy_threshold: u32,
    pub initial_delay: Duration,
}

impl Policy {
    /// How long a restarted app gets to prove itself before the instance
    /// is recreated: its initial delay, then enough checks to turn
    /// unhealthy again, and one report to say so.
    pub fn restart_grace(&self) -> Duration {
        self.initial_delay + self.interval * (self.unhealthy_threshold + 1)
    }
}

/// What the reconciler did to an instance and when: its memory between passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Healing {
    /// The app was told to restart; its agent had counted `restarts_before`.
    Restarted {
        at: Instant,
        restarts_before: u32,
    },
    Recreated {
        at: Instant,
    },
}

/// Per instance (by name and ID).
pub type Healings = BTreeMap<(String, String), Healing>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealAction {
    Restart {
        instance: String,
        id: String,
        reason: String,
    },
    Recreate {
        instance: String,
        reason: String,
    },
}

/// One instance's health as the reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub instance: String,
    pub health: Health,
    /// Why nothing was done about an unhealthy instance, if so.
    pub held: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealDecision {
    pub actions: Vec<HealAction>,
    pub seen: Vec<Seen>,
    /// The memory to keep for the next pass.
    pub healings: Healings,
}

/// Decides one app's healing.
pub fn decide(
    now: Instant,
    policy: &Policy,
    members: &[Member],
    reports: &BTreeMap<String, Heard>,
    judging: &BTreeSet<String>,
    healings: &Healings,
) -> HealDecision {
    // Memory of instances that are gone, or recreated since, is dropped.
    let mut kept: Healings = healings
        .iter()
        .filter(|((name, id), _)| members.iter().any(|m| &m.name == name && &m.id == id))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let budget = ((members.len() as f64 * MAX_HEALING_SHARE).floor() as usize).max(1);
    let mut in_flight = kept.len();
    let mut decision = HealDecision::default();
    for member in members {
        let key = (member.name.clone(), member.id.clone());
        let health = health_of(now, member, reports.get(&member.name));
        let report = reports.get(&member.name).map(|h| &h.report);
        if health == Health::Healthy && kept.remove(&key).is_some() {
            in_flight -= 1;
        }
        let mut seen = Seen {
            instance: member.name.clone(),
            health,
            held: None,
        };
        if health == Health::Unhealthy {
            let failure = report
                .and_then(|r| r.failure.clone())
                .unwrap_or_else(|| "failing its health check".to_owned());
            let next = match kept.get(&key) {
                None => Some(HealAction::Restart {
                    instance: member.name.clone(),
                    id: member.id.clone(),
                    reason: format!("unhealthy: {failure}"),
                }),
                // Unhealthy again after the restart had its chance: the
                // report must come from after the restart to say so.
                Some(Healing::Restarted {
                    at,
                    restarts_before,
                }) if now.duration_since(*at) >= policy.restart_grace()
                    && report.is_some_and(|r| r.restarts > *restarts_before) =>
                {
                    Some(HealAction::Recreate {
                        instance: member.name.clone(),
                        reason: format!("still unhealthy after a restart: {failure}"),
                    })
                }
                Some(_) => None,
            };
            let hold = if judging.contains(&member.name) {
                Some("a rollout is judging it".to_owned())
            } else if !member.settled {
                Some("the group is acting on it".to_owned())
            } else if next.is_some() && !kept.contains_key(&key) && in_flight >= budget {
                Some(format!(
                    "{in_flight} of {} instances already healing (at most {budget} at once)",
                    members.len()
                ))
            } else {
                None
            };
            match (next, hold) {
                (Some(action), None) => {
                    if !kept.contains_key(&key) {
                        in_flight += 1;
                    }
                    let healing = match action {
                        HealAction::Restart { .. } => Healing::Restarted {
                            at: now,
                            restarts_before: report.map_or(0, |r| r.restarts),
                        },
                        HealAction::Recreate { .. } => Healing::Recreated { at: now },
                    };
                    kept.insert(key, healing);
                    decision.actions.push(action);
                }
                (None, None) => {
                    seen.held = Some(match kept.get(&key) {
                        Some(Healing::Restarted { .. }) => {
                            "restarted; its checks since decide what comes next".to_owned()
                        }
                        _ => "being recreated".to_owned(),
                    })
                }
                (_, hold) => seen.held = hold,
            }
        }
        decision.seen.push(seen);
    }
    decision.healings = kept;
    decision
}

/// An instance's health by its agent's report: unknown without a report
/// about this very instance, or when the last one is too old.
fn health_of(now: Instant, member: &Member, heard: Option<&Heard>) -> Health {
    let Some(heard) = heard else {
        return Health::Unknown;
    };
    if heard.report.instance.instance_id != member.id {
        return Health::Unknown;
    }
    let quiet = Duration::from_millis(heard.report.interval_ms) * QUIET_INTERVALS;
    if now.duration_since(heard.at) > quiet {
        return Health::Unknown;
    }
    heard.report.health
}
