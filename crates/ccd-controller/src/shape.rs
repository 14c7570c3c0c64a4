//! What the cloud should look like now: a pure projection of the spec's
//! plan and the status (its groups and rollout record). The decision moves
//! the record; the executor applies the shape the record projects.

use ccd_cloud::identity::IdentitySpec;
use ccd_cloud::model::{
    FirewallSpec, GroupId, GroupSpec, GroupVersion, HealthCheckSpec, LbBackend, LoadBalancerSpec,
    Share, TemplateSpec,
};

use crate::plan::Plan;
use crate::record::{Rollout, RolloutState};
use crate::status::{GroupRecord, GroupRole, Status};
use crate::steps::StepKind;

/// Every cloud resource of the app as it should be at this moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The spec's template: kept while the spec asks for it.
    pub template: TemplateSpec,
    pub health_check: Option<HealthCheckSpec>,
    pub firewalls: Vec<FirewallSpec>,
    /// Groups that should exist, stable first.
    pub groups: Vec<GroupSpec>,
    pub load_balancer: Option<LoadBalancerSpec>,
    /// Groups to delete once the load balancer no longer sends them requests.
    pub retire: Vec<GroupId>,
    /// The app's own service account and its grants, when ccd keeps one.
    pub identity: Option<IdentitySpec>,
}

impl Shape {
    pub fn stable(&self) -> Option<&GroupSpec> {
        self.groups.first()
    }
}

/// The shape of `plan` given what `status` records.
pub fn shape(plan: &Plan, status: &Status, target_size: u32) -> Shape {
    let app = &plan.group.app;
    let open = status.rollout.as_ref().filter(|r| r.state.is_open());
    let mut groups = Vec::new();
    let mut backends = Vec::new();
    let mut retire = Vec::new();
    let share = open.map_or(0, traffic_share);
    let has_next = status.next().is_some();
    for g in &status.groups {
        let mut spec = plan.group.clone();
        spec.name.clone_from(&g.name);
        spec.zones = zones(g, plan);
        match g.role {
            GroupRole::Retired => {
                retire.push(g.id(app));
                continue;
            }
            GroupRole::Stable => {
                let (versions, rollback) = stable_versions(status, plan);
                spec.versions = versions;
                spec.target_size = Some(target_size);
                if rollback {
                    // Back to the last good revision at once: no batches.
                    spec.update.max_surge = Share::Fixed(target_size);
                    spec.update.max_unavailable = Share::Fixed(0);
                }
                let weight = if has_next { 100 - share } else { 100 };
                backends.push(LbBackend {
                    group: spec.id(),
                    weight,
                });
                groups.insert(0, spec);
            }
            GroupRole::Next => {
                let Some(r) = open else {
                    retire.push(g.id(app));
                    continue;
                };
                spec.versions = vec![GroupVersion {
                    name: r.to.version.clone(),
                    template: r.to.template.clone(),
                    target: None,
                }];
                spec.target_size =
                    Some(r.current().and_then(|s| s.instances).unwrap_or(target_size));
                // The rollout sizes the next group; the scaler only the stable one.
                spec.size_range = None;
                backends.push(LbBackend {
                    group: spec.id(),
                    weight: share,
                });
                groups.push(spec);
            }
        }
    }
    let load_balancer = plan.load_balancer.clone().map(|mut lb| {
        // The stable group first, so a single group is always first.
        lb.backends = backends;
        lb
    });
    let settled = open.is_none() && retire.is_empty();
    let identity = identity_of(plan, status, &groups, settled);
    Shape {
        template: plan.template.clone(),
        health_check: plan.health_check.clone(),
        firewalls: plan.firewalls.clone(),
        groups,
        load_balancer,
        retire,
        identity,
    }
}

/// The app's account as the shape needs it: the plan's grants, and the
/// secrets an earlier revision had granted taken away once only the
/// plan's template runs (no rollout open, no group retiring, one group,
/// all of it on the plan's template: a rollback, or an instance recreated
/// in an old group, may still need the old ones until then).
fn identity_of(
    plan: &Plan,
    status: &Status,
    groups: &[GroupSpec],
    settled: bool,
) -> Option<IdentitySpec> {
    let mut identity = plan.identity.clone()?;
    let template = plan.template.name();
    let only_plan_runs =
        settled && groups.len() == 1 && groups[0].versions.iter().all(|v| v.template == template);
    if only_plan_runs && let Some(account) = &status.service_account {
        identity.revoke = account
            .secrets
            .difference(&identity.secrets)
            .cloned()
            .collect();
    }
    Some(identity)
}

/// The percent of requests the next group gets: the weight of the last
/// step whose instances became healthy.
pub fn traffic_share(r: &Rollout) -> u32 {
    if !r.state.is_open() {
        return 0;
    }
    let current = usize::try_from(r.step.index).unwrap_or(usize::MAX);
    let reached = if r.step.ready.is_some() {
        current.checked_add(1)
    } else {
        Some(current)
    };
    r.steps
        .iter()
        .take(reached.unwrap_or(0))
        .filter(|s| s.plan.kind == StepKind::Shift)
        .filter_map(|s| s.plan.weight)
        .next_back()
        .unwrap_or(0)
        .min(100)
}

/// What the stable group runs, and whether it is being rolled back.
fn stable_versions(status: &Status, plan: &Plan) -> (Vec<GroupVersion>, bool) {
    let version = |name: &str, template: &str, target: Option<Share>| GroupVersion {
        name: name.to_owned(),
        template: template.to_owned(),
        target,
    };
    let r = status.rollout.as_ref();
    let in_place = r.is_some_and(|r| r.current().is_some_and(|s| s.kind == StepKind::InPlace));
    match r {
        Some(r) if in_place && r.state == RolloutState::Progressing => {
            (vec![version(&r.to.version, &r.to.template, None)], false)
        }
        Some(r) if in_place && r.state == RolloutState::Paused => {
            let held = r.step.held_instances.unwrap_or(0);
            match &r.from {
                // Hold what was rolled out so far; the rest stays on `from`.
                Some(from) if held > 0 => (
                    vec![
                        version(&from.version, &from.template, None),
                        version(&r.to.version, &r.to.template, Some(Share::Fixed(held))),
                    ],
                    false,
                ),
                Some(from) => (vec![version(&from.version, &from.template, None)], false),
                None => (vec![version(&r.to.version, &r.to.template, None)], false),
            }
        }
        Some(r) if in_place && r.state.rolled_back() && r.from.is_some() => {
            let from = r.from.as_ref().map_or(&r.to, |f| f);
            let back = status
                .revision
                .as_ref()
                .is_some_and(|t| t.template == r.to.template);
            (vec![version(&from.version, &from.template, None)], back)
        }
        _ => match (&status.last_good, r) {
            (Some(good), _) => (vec![version(&good.version, &good.template, None)], false),
            (None, Some(r)) => (vec![version(&r.to.version, &r.to.template, None)], false),
            (None, None) => (
                vec![version(
                    &plan.template.revision,
                    &plan.template.name(),
                    None,
                )],
                false,
            ),
        },
    }
}

/// The zones a recorded group is spread over: its zone, or for a regional
/// group the spec's zones when the spec is regional too (all of the
/// region's otherwise; they only matter when the group is created).
fn zones(g: &GroupRecord, plan: &Plan) -> Vec<String> {
    match &g.zone {
        Some(zone) => vec![zone.clone()],
        None if plan.group.id().zone.is_none() => plan.group.zones.clone(),
        None => Vec::new(),
    }
}
