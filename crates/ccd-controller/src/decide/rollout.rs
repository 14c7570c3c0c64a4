//! The rollout record's moves: start, supersede, operator controls, and
//! the end (succeeded, or rolled back). How it moves in between is
//! `progress.rs`.

use super::Decider;
use crate::record::{
    HISTORY, Revision, Rollout, RolloutState, StepRecord, StepState, Timestamp, Verdict,
    VerdictResult,
};
use crate::status::{GroupRecord, GroupRole};
use crate::steps::{Occasion, StepKind, plan_steps};

impl Decider<'_> {
    pub(super) fn now(&self) -> Timestamp {
        self.input.now
    }

    fn target(&self) -> Revision {
        self.status.revision.clone().unwrap_or_else(|| Revision {
            version: self.input.plan.template.revision.clone(),
            template: self.input.plan.template.name(),
        })
    }

    /// Whether the stable group is somewhere other than where the spec puts it.
    fn moved(&self) -> bool {
        let want = self.spec_group("");
        self.status
            .stable()
            .is_some_and(|g| g.zone != want.zone || g.region.is_some() != want.region.is_some())
    }

    /// A new spec revision starts a rollout; one that replaces an open
    /// rollout supersedes it first.
    pub(super) fn follow_spec(&mut self) {
        let target = self.target();
        let moved = self.moved();
        let mut superseded_in_place = false;
        if let Some(r) = self.status.rollout.clone().filter(|r| r.state.is_open()) {
            let same_target = r.to.template == target.template;
            let moving_rollout = r.current().is_some_and(|s| s.kind == StepKind::Shift);
            if same_target && (!moved || moving_rollout) {
                return;
            }
            superseded_in_place = r.current().is_some_and(|s| s.kind == StepKind::InPlace);
            self.supersede(r);
        }
        let needed = moved
            || superseded_in_place
            || match &self.status.rollout {
                // This revision was rolled out already (it succeeded, or it failed
                // and stays rolled back until the spec changes).
                Some(r) if r.to.template == target.template => false,
                _ => self.status.last_good.as_ref().map(|g| &g.template) != Some(&target.template),
            };
        if needed {
            self.start(target, moved);
        }
    }

    fn start(&mut self, to: Revision, moved: bool) {
        let app = self.input.app;
        let occasion = if moved {
            Occasion::Move
        } else if self.status.last_good.is_none() {
            // Nothing good runs yet: the group is created, or a group that
            // never became good is rolled over in place.
            Occasion::FirstDeploy
        } else {
            Occasion::Update
        };
        let steps = plan_steps(app, occasion);
        let Some(first) = steps.first().cloned() else {
            return;
        };
        if first.kind == StepKind::Shift {
            let stable_name = self
                .status
                .stable()
                .map(|g| g.name.clone())
                .unwrap_or_default();
            // The next group takes the template's name, or the app's when the
            // stable group already has the template's (a move).
            let name = if stable_name == to.template {
                app.metadata.name.clone()
            } else {
                to.template.clone()
            };
            let next = GroupRecord {
                role: GroupRole::Next,
                ..self.spec_group(&name)
            };
            if self.status.groups.iter().any(|g| g.name == next.name) {
                // A group of that name is still being removed: start once it is gone.
                return;
            }
            self.status.groups.push(next);
        }
        let now = self.now();
        let from = self.status.last_good.as_ref().map(|g| Revision {
            version: g.version.clone(),
            template: g.template.clone(),
        });
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        let message = match &from {
            Some(from) => format!(
                "rolling out version {} (from {}), {:?}: {}",
                to.version,
                from.version,
                app.spec.rollout.strategy,
                names.join(" → ")
            ),
            None => format!("deploying version {}", to.version),
        };
        let rollout = Rollout {
            id: Rollout::rollout_id(&to.template, now),
            strategy: app.spec.rollout.strategy,
            from,
            to,
            spec: self.input.spec_version.to_owned(),
            started: now,
            state: RolloutState::Progressing,
            step: StepState {
                index: 0,
                name: first.name.clone(),
                started: now,
                ready: None,
                due: now.plus(app.spec.rollout.deadline.as_std()),
                held_instances: None,
            },
            steps: steps.into_iter().map(StepRecord::new).collect(),
            verdict: None,
            ended: None,
            failing: Vec::new(),
            new_instances: Vec::new(),
            probes: Default::default(),
            paused: None,
            promoted: false,
        };
        if let Some(previous) = self.status.rollout.replace(rollout) {
            self.status.history.insert(0, previous.summary());
            self.status.history.truncate(HISTORY);
        }
        self.event(false, "RolloutStarted", message);
    }

    /// A newer spec replaces the open rollout. One that already sends all
    /// traffic to its revision (only keeping the old group warm) is done:
    /// it succeeds, and the next rollout starts from it.
    fn supersede(&mut self, mut r: Rollout) {
        let at_full = r.is_last_step()
            && r.step.ready.is_some()
            && r.state == RolloutState::Progressing
            && r.current().is_some_and(|s| s.kind == StepKind::Shift);
        if at_full {
            self.succeed(r, "all traffic was on it when a newer spec arrived");
            return;
        }
        r.state = RolloutState::Superseded;
        r.ended = Some(self.now());
        self.retire_next();
        self.event(
            false,
            "RolloutSuperseded",
            format!(
                "the rollout of version {} gave way to a newer spec",
                r.to.version
            ),
        );
        self.status.rollout = Some(r);
    }

    fn retire_next(&mut self) {
        for g in &mut self.status.groups {
            if g.role == GroupRole::Next {
                g.role = GroupRole::Retired;
            }
        }
    }

    pub(super) fn succeed(&mut self, mut r: Rollout, reason: &str) {
        r.state = RolloutState::Succeeded;
        r.ended = Some(self.now());
        r.failing.clear();
        r.verdict = Some(Verdict {
            result: VerdictResult::Passed,
            reason: reason.to_owned(),
        });
        if self.status.next().is_some() {
            for g in &mut self.status.groups {
                g.role = match g.role {
                    GroupRole::Stable | GroupRole::Retired => GroupRole::Retired,
                    GroupRole::Next => GroupRole::Stable,
                };
            }
            // Stable first, as the shape lists it.
            self.status
                .groups
                .sort_by_key(|g| g.role != GroupRole::Stable);
        }
        self.status.last_good = Some(crate::status::LastGood {
            version: r.to.version.clone(),
            template: r.to.template.clone(),
            spec: r.spec.clone(),
        });
        self.event(
            false,
            "RolloutSucceeded",
            format!(
                "version {} rolled out: {reason}; {} of {} probes failed",
                r.to.version, r.probes.failed, r.probes.sent
            ),
        );
        self.status.rollout = Some(r);
    }

    /// Ends the rollout with a failed verdict: the whole fleet goes back to
    /// the last good revision at once (the shape does it).
    pub(super) fn fail(&mut self, mut r: Rollout, reason: String, aborted: bool) {
        r.state = if aborted {
            RolloutState::Aborted
        } else {
            RolloutState::Failed
        };
        r.ended = Some(self.now());
        r.paused = None;
        r.verdict = Some(Verdict {
            result: VerdictResult::Failed,
            reason: reason.clone(),
        });
        self.retire_next();
        let message = match &r.from {
            Some(from) => format!(
                "version {} rolled back to {}: {reason}",
                r.to.version, from.version
            ),
            None => format!(
                "version {} failed: {reason}; there is no earlier version to go back to",
                r.to.version
            ),
        };
        let reason_word = if r.from.is_some() {
            "RolledBack"
        } else {
            "RolloutStuck"
        };
        self.status.rollout = Some(r);
        self.event(true, reason_word, message);
    }

    /// `ccd rollout pause|resume|promote|abort`, for the open rollout only.
    pub(super) fn apply_control(&mut self) {
        let Some(mut r) = self.status.rollout.clone().filter(|r| r.state.is_open()) else {
            return;
        };
        let now = self.now();
        let control = self.input.control.filter(|c| c.rollout == r.id);
        let wants_pause = control.is_some_and(|c| c.paused);
        if control.is_some_and(|c| c.abort) {
            if r.from.is_some() {
                self.fail(r, "aborted by an operator".to_owned(), true);
            }
            return;
        }
        if control.is_some_and(|c| c.promote) && !r.promoted {
            r.promoted = true;
            self.event(
                false,
                "RolloutPromoted",
                format!(
                    "an operator promoted version {}: no more holds, all traffic once healthy",
                    r.to.version
                ),
            );
        }
        match (r.state, wants_pause) {
            (RolloutState::Progressing, true) => {
                r.state = RolloutState::Paused;
                r.paused = Some(now);
                if r.current().is_some_and(|s| s.kind == StepKind::InPlace) {
                    let on_new = self
                        .stable_members()
                        .unwrap_or_default()
                        .iter()
                        .filter(|m| m.template.as_deref() == Some(r.to.template.as_str()))
                        .count();
                    r.step.held_instances = Some(u32::try_from(on_new).unwrap_or(u32::MAX));
                }
                self.event(
                    false,
                    "RolloutPaused",
                    format!("an operator paused the rollout of version {}", r.to.version),
                );
            }
            (RolloutState::Paused, false) => {
                // The time spent paused does not count against the step.
                let held = r.paused.map_or_else(Default::default, |p| now.since(p));
                r.step.due = r.step.due.plus(held);
                r.state = RolloutState::Progressing;
                r.paused = None;
                r.step.held_instances = None;
                self.event(
                    false,
                    "RolloutResumed",
                    format!(
                        "an operator resumed the rollout of version {}",
                        r.to.version
                    ),
                );
            }
            _ => {}
        }
        self.status.rollout = Some(r);
    }
}
