//! How an open rollout moves with what a pass observed: new instances
//! watched through their start-up grace, the verdicts, a step becoming
//! healthy, its hold, the next step; the probe's counts per step.

use ccd_cloud::model::{InstanceStatus, ManagedInstance};

use super::{Decider, verdict};
use crate::record::{NewInstance, Rollout, RolloutState, StepState, Timestamp};
use crate::report::{self, humantime};
use crate::shape::traffic_share;
use crate::status::GroupRole;
use crate::steps::StepKind;

impl Decider<'_> {
    /// Moves the open rollout along with what the pass observed.
    pub(super) fn progress(&mut self) {
        let Some(mut r) = self.status.rollout.clone().filter(|r| r.state.is_open()) else {
            return;
        };
        self.count_probes(&mut r);
        if r.state == RolloutState::Paused {
            self.status.rollout = Some(r);
            return;
        }
        let Some(step) = r.current().cloned() else {
            self.status.rollout = Some(r);
            return;
        };
        let watched = match step.kind {
            StepKind::InPlace => self.stable_members(),
            StepKind::Shift => self.members_of(GroupRole::Next),
        }
        .unwrap_or_default()
        .to_vec();
        self.watch_new_instances(&mut r, &watched);
        let grace = self.input.app.spec.health.initial_delay.as_std();
        r.failing = verdict::failing(&watched, &r, self.now(), grace);
        if !r.failing.is_empty() {
            let reason = verdict::failing_reason(&r.failing, self.input.app);
            self.fail(r, reason, false);
            return;
        }
        if let Some(reason) = self.error_rate_verdict(&r) {
            self.fail(r, reason, false);
            return;
        }
        let now = self.now();
        let ready = match step.kind {
            StepKind::InPlace => report::whole(&watched, &r.to.template, self.target_size()),
            StepKind::Shift => {
                verdict::healthy_on(&watched, &r.to.template) >= step.instances.unwrap_or(1)
            }
        };
        if ready && r.step.ready.is_none() {
            r.step.ready = Some(now);
            r.step.due = now.plus(step.hold());
            if step.kind == StepKind::Shift {
                self.event(
                    false,
                    "TrafficShifted",
                    format!(
                        "version {} gets {}% of the requests ({})",
                        r.to.version,
                        step.weight.unwrap_or(0),
                        step.name
                    ),
                );
            }
        }
        if step.kind == StepKind::InPlace && ready {
            let reason = format!("every instance runs it and is healthy ({})", step.name);
            self.succeed(r, &reason);
            return;
        }
        if r.step.ready.is_none() {
            if now >= r.step.due {
                let deadline = self.input.app.spec.rollout.deadline.as_std();
                let reason = verdict::deadline_reason(&watched, &r, &step, deadline);
                self.fail(r, reason, false);
                return;
            }
            self.requeue_by(r.step.due);
            self.pace_by_health(&r);
            self.status.rollout = Some(r);
            return;
        }
        if now < r.step.due && !r.promoted {
            self.requeue_by(r.step.due);
            self.status.rollout = Some(r);
            return;
        }
        if !self.traffic_covers(&r) {
            self.status.rollout = Some(r);
            return;
        }
        if r.is_last_step() {
            let reason = if r.promoted {
                "promoted by an operator once healthy".to_owned()
            } else {
                format!(
                    "healthy through every step; the previous group was kept warm for {}",
                    humantime(step.hold())
                )
            };
            self.succeed(r, &reason);
            return;
        }
        // The next step; a promoted rollout goes straight to the last one.
        let index = if r.promoted {
            u32::try_from(r.steps.len().saturating_sub(1)).unwrap_or(u32::MAX)
        } else {
            r.step.index + 1
        };
        let name = usize::try_from(index)
            .ok()
            .and_then(|i| r.steps.get(i))
            .map_or_else(String::new, |s| s.plan.name.clone());
        r.step = StepState {
            index,
            name,
            started: now,
            ready: None,
            due: now.plus(self.input.app.spec.rollout.deadline.as_std()),
            held_instances: None,
        };
        self.status.rollout = Some(r);
    }

    /// Look again no later than `due` (and at least every two seconds).
    fn requeue_by(&mut self, due: Timestamp) {
        let left = due.since(self.now());
        let floor = std::time::Duration::from_millis(100);
        self.requeue = self.requeue.min(left.max(floor));
    }

    /// While the step waits for its instances, look again when their health
    /// can have changed, not every poll: none passes the cloud's check before
    /// `healthyThreshold` checks `interval` apart from the step's start, and
    /// after that an answer changes at most once an interval. On Compute
    /// Engine a boot takes a minute, so this is a few looks instead of sixty.
    fn pace_by_health(&mut self, r: &Rollout) {
        let Some(check) = self.input.plan.health_check.as_ref().map(|c| &c.health) else {
            return;
        };
        let now = self.now();
        let earliest = r
            .step
            .started
            .plus(check.interval * check.healthy_threshold);
        let wait = match earliest.since(now) {
            d if d.is_zero() => check.interval,
            d => d,
        };
        // Never past the step's deadline, which the look must judge.
        let left = r
            .step
            .due
            .since(now)
            .max(std::time::Duration::from_millis(100));
        self.requeue = self.requeue.max(wait.min(left));
    }

    /// New instances of the target revision, and when each was first seen
    /// running: their health counts once their start-up grace has passed.
    fn watch_new_instances(&self, r: &mut Rollout, members: &[ManagedInstance]) {
        let now = self.now();
        let fresh: Vec<&ManagedInstance> = members
            .iter()
            .filter(|m| m.template.as_deref() == Some(r.to.template.as_str()))
            .filter(|m| m.status == InstanceStatus::Running)
            .collect();
        r.new_instances
            .retain(|n| members.iter().any(|m| m.name == n.name));
        for m in fresh {
            if !r.new_instances.iter().any(|n| n.name == m.name) {
                r.new_instances.push(NewInstance {
                    name: m.name.clone(),
                    seen: now,
                });
            }
        }
    }

    /// Adds what the probe counted since the last pass to the current step.
    fn count_probes(&self, r: &mut Rollout) {
        let Some((key, counts)) = &self.input.observed.probes else {
            return;
        };
        if *key != r.id {
            return;
        }
        let sent = counts.sent.saturating_sub(r.probes.sent);
        let failed = counts.failed.saturating_sub(r.probes.failed);
        r.probes.sent += sent;
        r.probes.failed += failed;
        if let Some(step) = usize::try_from(r.step.index)
            .ok()
            .and_then(|i| r.steps.get_mut(i))
        {
            step.probes += sent;
            step.failed_probes += failed;
        }
    }

    /// A canary serving requests is judged against the stable group.
    fn error_rate_verdict(&self, r: &Rollout) -> Option<String> {
        if traffic_share(r) == 0 {
            return None;
        }
        let traffic = self.input.observed.traffic.as_ref()?;
        let stable = self.status.stable()?;
        let next = self.status.next()?;
        verdict::error_rate(traffic, &stable.name, &next.name)
    }

    /// At the end of a canary hold, wait (a while) for the load balancer's
    /// counts to cover it: Cloud Monitoring publishes them minutes late.
    fn traffic_covers(&mut self, r: &Rollout) -> bool {
        if r.strategy != ccd_spec::Strategy::Canary || traffic_share(r) == 0 || r.promoted {
            return true;
        }
        let Some(traffic) = &self.input.observed.traffic else {
            return true;
        };
        let covered = traffic
            .complete_until
            .is_some_and(|t| Timestamp::new(t) >= r.step.due);
        let waited = self.now().since(r.step.due) >= verdict::TRAFFIC_WAIT;
        if !covered && waited {
            self.event(
                true,
                "TrafficUnknown",
                format!(
                    "no complete request counts for step {} after waiting {}: judged on health alone",
                    r.step.name,
                    humantime(verdict::TRAFFIC_WAIT)
                ),
            );
        }
        covered || waited
    }
}

/// The Progressing condition's words for an open rollout.
pub(super) fn progress_words(r: &Rollout, warm_hold: bool) -> (&'static str, String) {
    let step = format!(
        "step {} of {} ({})",
        r.step.index + 1,
        r.steps.len(),
        r.step.name
    );
    match (r.state, r.step.ready, warm_hold) {
        (RolloutState::Paused, ..) => (
            "Paused",
            format!(
                "the rollout of version {} is paused at {step}; `ccd rollout resume` continues it",
                r.to.version
            ),
        ),
        (_, Some(_), true) => (
            "KeepingWarm",
            format!(
                "version {} takes every request; the previous group stays warm until {} for an instant rollback",
                r.to.version, r.step.due
            ),
        ),
        (_, Some(_), false) => (
            "Holding",
            format!(
                "version {} holds at {step} until {}",
                r.to.version, r.step.due
            ),
        ),
        (_, None, _) => (
            "RollingOut",
            format!(
                "rolling out version {}: {step}, healthy by {}",
                r.to.version, r.step.due
            ),
        ),
    }
}
