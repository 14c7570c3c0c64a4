//! `ccd plan`: what a spec would change, computed by the very pass the
//! controller runs (observe, decide, shape, apply), with the decision kept
//! in memory and the apply made through a read-only view of the cloud. It
//! changes nothing, not even the status. Then the rollout's schedule: its
//! steps, the capacity serving at each, and the best-case duration.

use std::time::Duration;

use ccd_cloud::{Cloud, CloudError};
use ccd_spec::App;
use serde::{Deserialize, Serialize};

use crate::apply::apply;
use crate::decide::{self, Input};
use crate::deploy::Endpoints;
use crate::plan::{LocalTarget, plan};
use crate::record::{Rollout, Timestamp};
use crate::shape::shape;
use crate::status::Status;
use crate::steps::{StepKind, target_size};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub app: String,
    /// One line per resource that would be created, changed or deleted.
    pub changes: Vec<String>,
    /// The rollout this spec would start, if any.
    pub rollout: Option<Rollout>,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub steps: Vec<ScheduledStep>,
    /// The sum of every step's best case.
    #[serde(with = "secs")]
    pub best_case: Duration,
    /// What "best case" leaves out.
    pub assumes: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledStep {
    pub name: String,
    /// Instances of the new version at the end of the step.
    pub new_instances: u32,
    /// Instances of the old version serving during the step.
    pub old_instances: u32,
    /// Percent of the requests the new version gets once the step's instances are healthy.
    pub traffic_to_new: u32,
    /// Instances that may be out of service during the step.
    pub unavailable: u32,
    /// New instances up and healthy, then the hold.
    #[serde(with = "secs")]
    pub up: Duration,
    #[serde(with = "secs")]
    pub hold: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<std::time::Duration, D::Error> {
        let secs = <f64 as serde::Deserialize>::deserialize(d)?;
        std::time::Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// What applying `app` (from a file whose hash is `spec_version`) would do
/// to the cloud as it is, given the status the controller recorded.
pub async fn preview<C: Cloud>(
    cloud: &C,
    app: &App,
    spec_version: &str,
    recorded: &Status,
    local: Option<&LocalTarget>,
    endpoints: &Endpoints,
) -> Result<Preview, CloudError> {
    let name = app.metadata.name.clone();
    let plan = plan(app, local, cloud.app_account(&name));
    let view = cloud.read_only();
    let observed = crate::observe::observe(&view, &name, &plan, recorded).await?;
    let input = Input {
        app,
        spec_version,
        plan: &plan,
        recorded,
        observed: &observed,
        control: None,
        now: Timestamp::new(ccd_clock::wall()),
        poll: decide::WHILE_MOVING,
    };
    let decision = decide::decide(&input);
    let shape = shape(&plan, &decision.status, target_size(app));
    let applied = apply(&view, &shape, endpoints, true).await?;
    let started =
        decision.status.rollout.clone().filter(|r| {
            r.state.is_open() && recorded.rollout.as_ref().map(|o| &o.id) != Some(&r.id)
        });
    let schedule = started.as_ref().map(|r| schedule(app, r));
    Ok(Preview {
        app: name,
        changes: applied.drift,
        rollout: started,
        schedule,
    })
}

/// The steps of `r` for `app`, with what serves during each.
pub fn schedule(app: &App, r: &Rollout) -> Schedule {
    let h = &app.spec.health;
    let target = target_size(app);
    // New instances pass `healthyThreshold` checks in a row, one per interval.
    let up = h.interval.as_std() * h.healthy_threshold;
    let drain = app.spec.rollout.drain_time.as_std();
    let mut steps = Vec::new();
    for step in &r.steps {
        let p = &step.plan;
        match p.kind {
            StepKind::InPlace if r.from.is_none() => steps.push(ScheduledStep {
                name: p.name.clone(),
                new_instances: target,
                old_instances: 0,
                traffic_to_new: 100,
                unavailable: 0,
                up,
                hold: Duration::ZERO,
            }),
            StepKind::InPlace => {
                let surge = app.spec.rollout.max_surge.resolve(target);
                let unavailable = app.spec.rollout.max_unavailable.resolve(target).min(target);
                let per_batch = (surge + unavailable).max(1);
                let mut done = 0;
                let mut batch = 0;
                while done < target {
                    batch += 1;
                    let n = per_batch.min(target - done);
                    done += n;
                    steps.push(ScheduledStep {
                        name: format!("{} batch {batch}", p.name),
                        new_instances: done,
                        old_instances: target - done,
                        traffic_to_new: 100 * done / target.max(1),
                        unavailable: unavailable.min(n),
                        up,
                        hold: drain,
                    });
                }
            }
            StepKind::Shift => steps.push(ScheduledStep {
                name: p.name.clone(),
                new_instances: p.instances.unwrap_or(target),
                old_instances: target,
                traffic_to_new: p.weight.unwrap_or(0),
                unavailable: 0,
                up,
                hold: p.hold(),
            }),
        }
    }
    let best_case = steps.iter().map(|s| s.up + s.hold).sum();
    Schedule {
        steps,
        best_case,
        assumes: "instances start at once and pass healthyThreshold checks in a row; on Compute \
                  Engine add each VM's boot and image pull (often 30-90 s)"
            .to_owned(),
    }
}
