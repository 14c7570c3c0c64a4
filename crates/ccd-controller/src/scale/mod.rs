//! The scaling reconciler's decision: target tracking on the agents' CPU
//! (or requests per second) figures, within the spec's `replicas.min` and
//! `replicas.max`. A pure function of its inputs and the time.
//!
//! Scale-out acts on the first figures that ask for it. Instances still
//! starting (younger than the cool-down) are counted as capacity but not
//! sampled: their start-up is not load, and the load they will take is not
//! on them yet, so the same figures never add instances twice. Scale-in
//! goes only as low as the highest recommendation over the whole
//! `scaleInStabilization` window, and never before a whole window was seen.

mod reconciler;
pub mod record;
#[cfg(test)]
mod tests;

pub use reconciler::{ScaleError, ScalingReconciler};

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Figures this close to the target change nothing (as Kubernetes' HPA).
pub const TOLERANCE: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScalePolicy {
    pub min: u32,
    pub max: u32,
    /// Target average CPU share per instance, in (0, 1].
    pub cpu_target: Option<f64>,
    /// Target requests per second per instance.
    pub rps_target: Option<f64>,
    pub scale_in_stabilization: Duration,
    /// How long a new instance is left out of the figures.
    pub cool_down: Duration,
}

/// One member's latest figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub instance: String,
    /// When the instance was created (by this process's clock).
    pub since: Instant,
    /// Fresh figures from its agent, if any.
    pub cpu: Option<f64>,
    pub requests_per_second: Option<f64>,
}

/// Recommendations over time: the decision's memory between passes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// (when, recommended size), oldest first.
    recommendations: VecDeque<(Instant, u32)>,
    /// When the history began: scale-in waits for a whole window of it.
    since: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScaleDecision {
    /// The new target size, when it changes.
    pub resize: Option<u32>,
    /// What the figures ask for now, before stabilization and bounds.
    pub recommended: Option<u32>,
    /// The inputs and the reasoning, in words (an event when it resizes).
    pub reason: String,
    pub history: History,
}

pub fn decide(
    now: Instant,
    policy: &ScalePolicy,
    current: u32,
    samples: &[Sample],
    history: &History,
) -> ScaleDecision {
    let mut history = history.clone();
    let window = policy.scale_in_stabilization;
    while history
        .recommendations
        .front()
        .is_some_and(|(at, _)| now.duration_since(*at) > window)
    {
        history.recommendations.pop_front();
    }
    let bounded = current.clamp(policy.min, policy.max);
    let Some((recommended, why)) = recommend(now, policy, current, samples) else {
        let resize = (bounded != current).then_some(bounded);
        return ScaleDecision {
            resize,
            recommended: None,
            reason: match resize {
                Some(_) => format!(
                    "{current} instances is outside replicas {}..{}",
                    policy.min, policy.max
                ),
                None => "no figures from running instances yet".to_owned(),
            },
            history,
        };
    };
    history.since.get_or_insert(now);
    history.recommendations.push_back((now, recommended));
    let wanted = if recommended >= current {
        recommended
    } else if history
        .since
        .is_some_and(|since| now.duration_since(since) >= window)
    {
        // The highest recommendation of the window: load that came and went
        // within it does not remove instances it will need again.
        history
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(current)
            .min(current)
    } else {
        current
    };
    let target = wanted.clamp(policy.min, policy.max);
    let resize = (target != current).then_some(target);
    let mut reason = why;
    if recommended < current && resize.is_none() && target == current {
        reason.push_str(&format!(
            "; scale-in waits for {}s of low load",
            window.as_secs()
        ));
    }
    if wanted != target {
        reason.push_str(&format!(
            "; held within replicas {}..{}",
            policy.min, policy.max
        ));
    }
    ScaleDecision {
        resize,
        recommended: Some(recommended),
        reason,
        history,
    }
}

/// Reads one kind of figure off a sample.
type Figure = fn(&Sample) -> Option<f64>;

/// The size the figures ask for, with the figures in words; `None` when no
/// settled instance has figures.
fn recommend(
    now: Instant,
    policy: &ScalePolicy,
    current: u32,
    samples: &[Sample],
) -> Option<(u32, String)> {
    let settled: Vec<&Sample> = samples
        .iter()
        .filter(|s| now.duration_since(s.since) >= policy.cool_down)
        .collect();
    let starting = samples.len() - settled.len();
    let mut best: Option<(u32, String)> = None;
    let signals: [(Option<f64>, Figure, &str); 2] = [
        (policy.cpu_target, |s| s.cpu, "CPU"),
        (policy.rps_target, |s| s.requests_per_second, "requests/s"),
    ];
    for (target, figure, name) in signals {
        let Some(target) = target else { continue };
        let figures: Vec<f64> = settled.iter().filter_map(|s| figure(s)).collect();
        if figures.is_empty() {
            continue;
        }
        let average = figures.iter().sum::<f64>() / figures.len() as f64;
        // The load the settled instances carry (those without figures
        // assumed at the average) spread at the target; starting instances
        // are capacity already, so this does not count them again.
        let size = if (average / target - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (average * settled.len() as f64 / target).ceil() as u32
        };
        // While instances start, figures cannot say they are not needed.
        let size = if starting > 0 {
            size.max(current)
        } else {
            size
        };
        let (shown, unit) = if name == "CPU" {
            (
                format!("{:.0}%", average * 100.0),
                format!("{:.0}%", target * 100.0),
            )
        } else {
            (format!("{average:.1}"), format!("{target:.1}"))
        };
        let words = format!(
            "average {name} {shown} over {} instances against a target of {unit}{}: {size} wanted",
            figures.len(),
            if starting > 0 {
                format!(" ({starting} still starting)")
            } else {
                String::new()
            }
        );
        if best.as_ref().is_none_or(|(b, _)| size > *b) {
            best = Some((size, words));
        }
    }
    best
}
