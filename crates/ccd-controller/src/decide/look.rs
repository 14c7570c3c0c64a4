//! How much a pass does beyond observing, and what its outcome adds to the
//! status: a look for drift and what the spec's drift mode makes of it, the
//! load balancer's endpoints, a cloud that refused the plan, an invalid spec.

use std::time::Duration;

use ccd_cloud::CloudError;
use ccd_spec::DriftMode;

use super::{Decision, Event, Input};
use crate::record::Timestamp;
use crate::report::{self, condition};
use crate::shape::Shape;
use crate::status::{Condition, GroupRole, Phase, Status};

/// What the executor remembers of an app between passes (in memory only:
/// after a restart every app gets a full pass).
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub shape: Shape,
    pub spec_version: String,
    /// When the shape was last applied, or looked at in full.
    pub checked: Timestamp,
    /// What that look found and the drift mode left alone.
    pub drift: Vec<String>,
    /// The app was at rest then (when a rollout ends, the templates it no
    /// longer needs are collected).
    pub settled: bool,
}

/// What a pass does after deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing: the members it observed said all there is to say.
    Nothing,
    /// The whole pass through a read-only view of the cloud: drift, if any.
    Look,
    /// The whole pass, creating and correcting.
    Apply,
}

/// Light when at rest on a shape applied recently; a look when this very
/// spec was applied before (differences are drift); otherwise apply.
pub fn work(
    input: &Input<'_>,
    decision: &Decision,
    shape: &Shape,
    known: Option<&Known>,
    drift_check: Duration,
) -> Work {
    let moving = decision
        .status
        .rollout
        .as_ref()
        .is_some_and(|r| r.state.is_open())
        || decision
            .status
            .groups
            .iter()
            .any(|g| g.role != GroupRole::Stable);
    // This very shape was applied (found whole, when at rest) a short while ago.
    let same = known.is_some_and(|k| {
        k.shape == *shape
            && k.spec_version == input.spec_version
            && (input.now.since(k.checked) < drift_check || input.app.spec.drift == DriftMode::Off)
    });
    if moving {
        // A rollout changes the cloud only when its step does; in between,
        // the members it observed are all it needs.
        return if same { Work::Nothing } else { Work::Apply };
    }
    // At rest on what was applied or looked at a short while ago (a rollout
    // that just ended included: its last pass applied this very shape).
    if decision.settled && same {
        return Work::Nothing;
    }
    let deployed = input
        .recorded
        .last_good
        .as_ref()
        .is_some_and(|g| g.spec == input.spec_version);
    if deployed { Work::Look } else { Work::Apply }
}

/// What a look found, as the spec's drift mode takes it: `true` to apply.
pub fn conclude_look(input: &Input<'_>, decision: &mut Decision, drift: &[String]) -> bool {
    if drift.is_empty() {
        return false;
    }
    match input.app.spec.drift {
        DriftMode::Correct => {
            decision.events.push(Event {
                warning: true,
                reason: "DriftCorrected",
                message: drift.join("; "),
            });
            true
        }
        DriftMode::Warn => {
            let d = report::drifted(drift);
            let s = &mut decision.status;
            s.phase = Phase::Degraded;
            set_condition(s, condition("Degraded", true, d.reason, d.message.clone()));
            let already = input
                .recorded
                .conditions
                .iter()
                .any(|c| c.kind == "Degraded" && c.message == d.message);
            if !already {
                decision.events.push(Event {
                    warning: true,
                    reason: "DriftDetected",
                    message: drift.join("; "),
                });
            }
            false
        }
        DriftMode::Off => false,
    }
}

/// The outcome of a look or an apply, added to the status: the load
/// balancer's endpoints once it is complete, or the cloud's refusal.
pub fn finalize(
    input: &Input<'_>,
    decision: &mut Decision,
    outcome: Result<Option<Vec<String>>, &CloudError>,
) {
    match outcome {
        Ok(Some(endpoints)) => decision.status.endpoints = endpoints,
        Ok(None) => {}
        Err(e) => {
            let (reason, words) = if e.is_transient() {
                (
                    "CloudUnavailable",
                    "the cloud did not take the change yet (ccd retries)",
                )
            } else if matches!(e, CloudError::NotOwned { .. }) {
                (
                    "NameTaken",
                    "a name the app needs is taken by a resource ccd does not own; nothing was changed",
                )
            } else {
                (
                    "CloudRejected",
                    "the cloud refused the change; fix the spec",
                )
            };
            let message = format!("{words}: {e}");
            let s = &mut decision.status;
            if !e.is_transient() {
                s.phase = Phase::Stalled;
            }
            set_condition(s, condition("Stalled", true, reason, message.clone()));
            let already = input
                .recorded
                .conditions
                .iter()
                .any(|c| c.kind == "Stalled" && c.message == message);
            if !already && !e.is_transient() {
                decision.events.push(Event {
                    warning: true,
                    reason,
                    message,
                });
            }
        }
    }
}

/// A spec held back (invalid, or a service it needs missing): the status
/// keeps what serves (instances, endpoints, the rollout record) and says why
/// nothing changes.
pub fn stalled(
    recorded: &Status,
    app: &str,
    spec_version: &str,
    reason: &str,
    problems: &[String],
) -> Status {
    let mut s = recorded.clone();
    s.app = app.to_owned();
    s.observed_spec = spec_version.to_owned();
    s.phase = Phase::Stalled;
    s.revision = None;
    s.conditions = vec![condition("Stalled", true, reason, problems.join("\n"))];
    s
}

fn set_condition(s: &mut Status, c: Condition) {
    match s.conditions.iter_mut().find(|x| x.kind == c.kind) {
        Some(x) => *x = c,
        None => s.conditions.push(c),
    }
}
