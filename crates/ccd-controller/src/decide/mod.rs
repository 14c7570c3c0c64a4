//! The deploy decision, as one pure function: what a pass observed, what
//! the status recorded, the spec, an operator's control and the time in;
//! the new status (with its rollout record), the events and when to look
//! again out. The executor (`deploy`) observes, calls it, and applies the
//! shape the new status projects (`shape`).

mod https;
mod look;
mod progress;
mod rollout;
mod verdict;

use std::time::Duration;

use ccd_cloud::model::{LbTraffic, ManagedInstance};
use ccd_spec::App;

pub use https::gate_https;
pub use look::{Known, Work, conclude_look, finalize, stalled, work};

use crate::control::Control;
use crate::plan::Plan;
use crate::record::{ProbeTotals, RolloutState, Timestamp};
use crate::report::{self, Facts, Members};
use crate::status::{GroupRecord, GroupRole, LastGood, Status};
use crate::steps::{self, StepKind};

/// How long to wait before looking again while something moves, unless
/// the executor says otherwise (`Input::poll`).
pub const WHILE_MOVING: Duration = Duration::from_secs(1);
/// How often a converged app is looked at.
pub const WHEN_SETTLED: Duration = Duration::from_secs(30);
/// How often an app at rest but not whole is looked at.
pub const WHEN_BROKEN: Duration = Duration::from_secs(5);

/// What a pass saw before deciding.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The members of each group the status records (or, with none
    /// recorded, of the group the spec would have); `None` when the group
    /// does not exist.
    pub groups: Vec<(GroupRecord, Option<Vec<ManagedInstance>>)>,
    /// Requests and errors per group since the current canary step's
    /// traffic began, when it was asked for.
    pub traffic: Option<LbTraffic>,
    /// The synthetic probe's counts, and the rollout they are for.
    pub probes: Option<(String, ProbeTotals)>,
}

impl Observed {
    fn members(&self, g: &GroupRecord) -> Option<&[ManagedInstance]> {
        self.groups
            .iter()
            .find(|(r, _)| r.same(g))
            .and_then(|(_, m)| m.as_deref())
    }

    fn exists(&self, g: &GroupRecord) -> Option<bool> {
        self.groups
            .iter()
            .find(|(r, _)| r.same(g))
            .map(|(_, m)| m.is_some())
    }
}

/// Everything the decision works from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub app: &'a App,
    /// The spec file's content hash.
    pub spec_version: &'a str,
    pub plan: &'a Plan,
    pub recorded: &'a Status,
    pub observed: &'a Observed,
    pub control: Option<&'a Control>,
    pub now: Timestamp,
    /// How often to look while something moves.
    pub poll: Duration,
}

/// Something worth telling a user (`ccd events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The synthetic probe that should run while a rollout is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOrder {
    /// The rollout's id: counts belong to one rollout.
    pub key: String,
    pub url: String,
    pub path: String,
    /// Where its counts continue from.
    pub initial: ProbeTotals,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub status: Status,
    pub events: Vec<Event>,
    pub requeue: Duration,
    /// At rest: no rollout open, no group coming or going, the stable group
    /// whole on the revision it should run.
    pub settled: bool,
    pub probe: Option<ProbeOrder>,
}

/// The decision. Never fails: what it cannot do yet it says in the status.
pub fn decide(input: &Input<'_>) -> Decision {
    let mut d = Decider {
        input,
        status: input.recorded.clone(),
        events: Vec::new(),
        requeue: input.poll,
    };
    d.identify();
    d.forget_deleted_groups();
    d.ensure_stable_group();
    d.follow_spec();
    d.apply_control();
    d.progress();
    let settled = d.settle();
    d.report(settled);
    d.status_events();
    let probe = d.probe_order();
    let moving = d.status.rollout.as_ref().is_some_and(|r| r.state.is_open())
        || d.status.groups.iter().any(|g| g.role != GroupRole::Stable);
    Decision {
        requeue: if moving {
            d.requeue
        } else if settled && exposed(input.plan, &d.status) {
            WHEN_SETTLED
        } else {
            // At rest but not whole (autohealing at work, or a version
            // stuck), or its load balancer without a URL yet.
            WHEN_BROKEN
        },
        status: d.status,
        events: d.events,
        settled,
        probe,
    }
}

/// Whether the app can be reached as the plan asks: not exposed, or its
/// load balancer has its URLs.
pub fn exposed(plan: &Plan, status: &Status) -> bool {
    plan.load_balancer.is_none() || !status.endpoints.is_empty()
}

pub(crate) struct Decider<'a> {
    pub(crate) input: &'a Input<'a>,
    pub(crate) status: Status,
    pub(crate) events: Vec<Event>,
    pub(crate) requeue: Duration,
}

impl Decider<'_> {
    pub(crate) fn event(&mut self, warning: bool, reason: &'static str, message: String) {
        self.events.push(Event {
            warning,
            reason,
            message,
        });
    }

    pub(crate) fn target_size(&self) -> u32 {
        steps::target_size(self.input.app)
    }

    fn identify(&mut self) {
        let plan = self.input.plan;
        self.status.app.clone_from(&self.input.app.metadata.name);
        self.status.observed_spec = self.input.spec_version.to_owned();
        self.status.deletion_protection = self.input.app.spec.deletion_protection;
        self.status.revision = Some(crate::record::Revision {
            version: plan.template.revision.clone(),
            template: plan.template.name(),
        });
    }

    /// Retired groups that are gone are forgotten.
    fn forget_deleted_groups(&mut self) {
        let observed = self.input.observed;
        let mut gone = Vec::new();
        self.status.groups.retain(|g| {
            let deleted = g.role == GroupRole::Retired && observed.exists(g) == Some(false);
            if deleted {
                gone.push(g.name.clone());
            }
            !deleted
        });
        for name in gone {
            self.event(
                false,
                "GroupDeleted",
                format!("deleted group {name}, no longer used"),
            );
        }
    }

    /// The group the spec places, when none is recorded (a first deploy,
    /// or a status written by an older ccd or lost).
    fn ensure_stable_group(&mut self) {
        if self.status.stable().is_none() {
            let record = self.spec_group(&self.input.plan.group.name);
            self.status.groups.insert(0, record);
        }
    }

    /// A record for a group named `name` where the spec places its group.
    pub(crate) fn spec_group(&self, name: &str) -> GroupRecord {
        let id = self.input.plan.group.id();
        GroupRecord {
            name: name.to_owned(),
            region: id
                .zone
                .is_none()
                .then(|| self.input.app.spec.machine.region.clone()),
            zone: id.zone,
            role: GroupRole::Stable,
        }
    }

    /// The stable group's members, if it exists.
    pub(crate) fn stable_members(&self) -> Option<&[ManagedInstance]> {
        let stable = self.status.stable()?;
        self.input.observed.members(stable)
    }

    pub(crate) fn members_of(&self, role: GroupRole) -> Option<&[ManagedInstance]> {
        let g = self.status.groups.iter().find(|g| g.role == role)?;
        self.input.observed.members(g)
    }

    /// The template the stable group should run at rest.
    fn stable_template(&self) -> String {
        match (&self.status.last_good, &self.status.rollout) {
            (Some(good), _) => good.template.clone(),
            (None, Some(r)) => r.to.template.clone(),
            (None, None) => self.input.plan.template.name(),
        }
    }

    /// Whether the app is at rest; records the last good revision when the
    /// spec's own revision is what rests.
    fn settle(&mut self) -> bool {
        let open = self
            .status
            .rollout
            .as_ref()
            .is_some_and(|r| r.state.is_open());
        let moving = self
            .status
            .groups
            .iter()
            .any(|g| g.role != GroupRole::Stable);
        let template = self.stable_template();
        let whole = self
            .stable_members()
            .is_some_and(|m| report::whole(m, &template, self.target_size()));
        let exposed_ok = exposed(self.input.plan, &self.status);
        let target = self.input.plan.template.name();
        if !open && whole && exposed_ok && template == target && !self.status.target_rolled_back() {
            self.status.last_good = Some(LastGood {
                version: self.input.plan.template.revision.clone(),
                template,
                spec: self.input.spec_version.to_owned(),
            });
        }
        !open && !moving && whole
    }

    /// Serving, instances, phase and conditions.
    fn report(&mut self, settled: bool) {
        let observed = self.input.observed;
        let mut all: Vec<(&str, &ManagedInstance)> = Vec::new();
        for g in &self.status.groups {
            if let Some(members) = observed.members(g) {
                all.extend(members.iter().map(|m| (g.name.as_str(), m)));
            }
        }
        let several = self.status.groups.len() > 1;
        self.status.instances = report::instance_views(&all, several);
        let members: Vec<&ManagedInstance> = all.iter().map(|(_, m)| *m).collect();
        self.status.serving = report::serving(&members);
        self.status.rolled_back = self.status.target_rolled_back();

        let spec_version = self.input.app.spec.version.clone();
        let template = self.stable_template();
        let stable = self.stable_members().unwrap_or_default();
        let standing = Members::of(stable, &template);
        let r = self.status.rollout.clone();
        let open = r.as_ref().filter(|r| r.state.is_open());
        let reason = r
            .as_ref()
            .and_then(|r| r.verdict.as_ref())
            .map_or_else(String::new, |v| v.reason.clone());
        let exposed_ok = exposed(self.input.plan, &self.status);
        // All traffic on the new revision, the old group only kept warm.
        let warm_hold = open.is_some_and(|r| {
            r.state == RolloutState::Progressing
                && r.is_last_step()
                && r.step.ready.is_some()
                && r.current().is_some_and(|s| s.kind == StepKind::Shift)
        });
        let ready = (settled && exposed_ok && !self.status.rolled_back) || warm_hold;
        let good_version = self
            .status
            .last_good
            .as_ref()
            .map_or(spec_version.clone(), |g| g.version.clone());
        let degraded = if self.status.rolled_back {
            Some(report::rolled_back(&spec_version, &good_version, &reason))
        } else if r
            .as_ref()
            .is_some_and(|r| r.state == RolloutState::Failed && r.from.is_none() && !settled)
        {
            Some(report::stuck(&spec_version, &reason))
        } else if open.is_none() && report::idle(stable) && !standing.whole(self.target_size()) {
            Some(report::unhealthy(&standing))
        } else {
            None
        };
        let progressing = open.map(|r| progress::progress_words(r, warm_hold));
        let serving_version = if warm_hold || (ready && !self.status.rolled_back) {
            spec_version
        } else {
            good_version
        };
        let (phase, conditions) = report::conditions(&Facts {
            version: &serving_version,
            ready,
            progressing,
            degraded,
        });
        self.status.phase = phase;
        self.status.conditions = conditions;
    }

    /// Events for a phase or degradation the status did not have before.
    fn status_events(&mut self) {
        let recorded = self.input.recorded;
        if self.status.phase == crate::status::Phase::Ready
            && recorded.phase != crate::status::Phase::Ready
        {
            let at = if self.status.endpoints.is_empty() {
                "(not exposed)".to_owned()
            } else {
                self.status.endpoints.join(" ")
            };
            let message = format!("{at} version {}", self.input.app.spec.version);
            self.event(false, "Ready", message);
        }
        let degraded = |s: &Status| {
            s.conditions
                .iter()
                .find(|c| c.kind == "Degraded" && c.status)
                .map(|c| (c.reason.clone(), c.message.clone()))
        };
        if let Some((reason, message)) = degraded(&self.status)
            && reason == "InstancesUnhealthy"
            && degraded(recorded).map(|d| d.0) != Some(reason)
        {
            self.event(true, "InstancesUnhealthy", message);
        }
    }

    fn probe_order(&self) -> Option<ProbeOrder> {
        let r = self.status.rollout.as_ref().filter(|r| r.state.is_open())?;
        // A first deploy has nothing serving to measure yet.
        r.from.as_ref()?;
        let url = self.status.endpoints.first()?.clone();
        let path = match self.input.app.spec.probe() {
            ccd_spec::ProbeKind::Http { path, .. } => path.to_owned(),
            _ => "/".to_owned(),
        };
        Some(ProbeOrder {
            key: r.id.clone(),
            url,
            path,
            initial: r.probes,
        })
    }
}
