//! How a rollout proceeds, step by step, as the spec's strategy lays it
//! out. Fixed when the rollout starts (kept in its record), so a spec
//! edited mid-rollout cannot reshuffle the steps under it.

use std::time::Duration;

use ccd_spec::{App, Strategy};
use serde::{Deserialize, Serialize};

/// What one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// The stable group itself moves to the new revision, a few instances
    /// at a time (a rolling update, or a first deploy).
    InPlace,
    /// The next group is brought to `instances` healthy instances, then gets
    /// `weight`% of the requests for `hold`.
    Shift,
}

/// One planned step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    pub name: String,
    pub kind: StepKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<ccd_spec::Duration>,
}

impl StepPlan {
    fn in_place(name: &str) -> StepPlan {
        StepPlan {
            name: name.to_owned(),
            kind: StepKind::InPlace,
            instances: None,
            weight: None,
            hold: None,
        }
    }

    fn shift(name: String, instances: u32, weight: u32, hold: ccd_spec::Duration) -> StepPlan {
        StepPlan {
            name,
            kind: StepKind::Shift,
            instances: Some(instances),
            weight: Some(weight),
            hold: Some(hold),
        }
    }

    pub fn hold(&self) -> Duration {
        self.hold.map_or(Duration::ZERO, |h| h.as_std())
    }
}

/// Why a rollout happens, beyond the strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// Nothing runs yet: the group is created on the new revision.
    FirstDeploy,
    /// The spec moved the group (other zones): a new group, then a switch.
    Move,
    /// A new revision for a running app.
    Update,
}

/// How many instances the app runs when nothing scales it.
pub fn target_size(app: &App) -> u32 {
    app.spec.replicas.min.max(1)
}

/// The bounds within which the scaling reconciler sizes an autoscaled app;
/// `None` when the app does not scale.
pub fn size_range(app: &App) -> Option<(u32, u32)> {
    let min = target_size(app);
    app.spec
        .autoscaling
        .as_ref()
        .map(|_| (min, app.spec.replicas.max.max(min)))
}

/// The steps of a rollout of `app`.
pub fn plan_steps(app: &App, occasion: Occasion) -> Vec<StepPlan> {
    let r = &app.spec.rollout;
    let target = target_size(app);
    let keep_warm = r.keep_warm;
    match (occasion, r.strategy) {
        (Occasion::FirstDeploy, _) => vec![StepPlan::in_place("create")],
        (Occasion::Move, _) | (Occasion::Update, Strategy::BlueGreen) => {
            vec![StepPlan::shift("switch".to_owned(), target, 100, keep_warm)]
        }
        (Occasion::Update, Strategy::Rolling) => vec![StepPlan::in_place("rolling")],
        (Occasion::Update, Strategy::Canary) => {
            let mut steps: Vec<StepPlan> = r
                .steps
                .iter()
                .filter(|s| s.weight < 100)
                .map(|s| {
                    let weight = u32::from(s.weight);
                    StepPlan::shift(
                        format!("{weight}%"),
                        share_of(target, weight),
                        weight,
                        s.pause,
                    )
                })
                .collect();
            // The last step sends everything to the new group and keeps the
            // old one warm; a step the spec wrote at 100% sets how long.
            let last_hold = r
                .steps
                .iter()
                .find(|s| s.weight >= 100)
                .map_or(keep_warm, |s| s.pause.max(keep_warm));
            steps.push(StepPlan::shift("100%".to_owned(), target, 100, last_hold));
            steps
        }
    }
}

/// Instances to carry `weight`% of the requests of a `target`-instance
/// group: rounded up, at least one.
pub fn share_of(target: u32, weight: u32) -> u32 {
    (target * weight).div_ceil(100).clamp(1, target.max(1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn app(rollout: &str) -> App {
        let spec = format!(
            "apiVersion: ccd/v1\nkind: App\nmetadata: {{name: web}}\nspec:\n  image: x\n  version: \"1\"\n  port: 8080\n  replicas: {{min: 3}}\n  rollout: {rollout}\n  expose: {{internal: {{}}}}\n"
        );
        ccd_spec::parse(&spec).unwrap()
    }

    #[test]
    fn each_strategy_lays_out_its_steps() {
        let rolling = app("{strategy: rolling}");
        assert_eq!(
            plan_steps(&rolling, Occasion::Update)[0].kind,
            StepKind::InPlace
        );
        assert_eq!(
            plan_steps(&rolling, Occasion::FirstDeploy)[0].name,
            "create"
        );
        let moved = plan_steps(&rolling, Occasion::Move);
        assert_eq!((moved.len(), moved[0].weight), (1, Some(100)));

        let bg = plan_steps(
            &app("{strategy: blueGreen, keepWarm: 1m}"),
            Occasion::Update,
        );
        assert_eq!(bg.len(), 1);
        assert_eq!(
            (bg[0].instances, bg[0].hold()),
            (Some(3), Duration::from_secs(60))
        );

        let canary = app(
            "{strategy: canary, keepWarm: 30s, steps: [{weight: 10, pause: 2m}, {weight: 50, pause: 1m}]}",
        );
        let steps = plan_steps(&canary, Occasion::Update);
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["10%", "50%", "100%"]);
        let sizes: Vec<Option<u32>> = steps.iter().map(|s| s.instances).collect();
        assert_eq!(sizes, [Some(1), Some(2), Some(3)]);
        assert_eq!(steps[2].hold(), Duration::from_secs(30));

        let to_full = app(
            "{strategy: canary, keepWarm: 30s, steps: [{weight: 20, pause: 1m}, {weight: 100, pause: 5m}]}",
        );
        let steps = plan_steps(&to_full, Occasion::Update);
        assert_eq!(steps.len(), 2, "a 100% step is the last one");
        assert_eq!(steps[1].hold(), Duration::from_secs(300));
    }

    #[test]
    fn shares_round_up_and_never_exceed_the_group() {
        assert_eq!(share_of(3, 10), 1);
        assert_eq!(share_of(3, 50), 2);
        assert_eq!(share_of(10, 10), 1);
        assert_eq!(share_of(10, 11), 2);
        assert_eq!(share_of(1, 100), 1);
        assert_eq!(share_of(4, 100), 4);
    }
}
