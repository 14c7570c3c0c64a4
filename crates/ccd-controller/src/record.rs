//! The rollout record: what a rollout is, where it stands and how it ended,
//! persisted in the app's status object so that a restarted controller
//! continues it where it stood (never early, never late). Times are wall
//! clock, in milliseconds, as RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ccd_spec::Strategy;
use serde::{Deserialize, Serialize};

use crate::steps::StepPlan;

/// A wall-clock time, kept to the millisecond so it reads back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// `at`, truncated to the millisecond.
    pub fn new(at: SystemTime) -> Timestamp {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        Timestamp(UNIX_EPOCH + Duration::from_millis(ms))
    }

    pub fn system(self) -> SystemTime {
        self.0
    }

    /// How long after `earlier` this is (zero if it is not after).
    pub fn since(self, earlier: Timestamp) -> Duration {
        self.0.duration_since(earlier.0).unwrap_or_default()
    }

    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp::new(self.0.checked_add(d).unwrap_or(self.0))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match jiff::Timestamp::try_from(self.0) {
            Ok(t) => write!(f, "{t:.3}"),
            Err(_) => write!(f, "(out of range)"),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t: jiff::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
        Ok(Timestamp::new(SystemTime::from(t)))
    }
}

/// A version of the app and the template that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub version: String,
    pub template: String,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutState {
    Progressing,
    /// Held by an operator (`ccd rollout pause`): nothing moves, no deadline runs.
    Paused,
    Succeeded,
    /// A failed verdict or a passed deadline: the fleet went back to `from`.
    Failed,
    /// Rolled back by an operator (`ccd rollout abort`).
    Aborted,
    /// A newer spec replaced it before it ended.
    Superseded,
}

impl RolloutState {
    pub fn is_open(self) -> bool {
        matches!(self, RolloutState::Progressing | RolloutState::Paused)
    }

    /// Ended with the fleet back on the previous revision.
    pub fn rolled_back(self) -> bool {
        matches!(self, RolloutState::Failed | RolloutState::Aborted)
    }
}

/// The step a rollout is at. A step first brings its instances up
/// (`due` is then its deadline), then holds (`ready` is set, `due` is the
/// end of the hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepState {
    pub index: u32,
    pub name: String,
    pub started: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Timestamp>,
    pub due: Timestamp,
    /// While an in-place step is paused: how many instances keep the new
    /// revision (the rest stay on the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_instances: Option<u32>,
}

/// One planned step and what the synthetic probe saw during it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    #[serde(flatten)]
    pub plan: StepPlan,
    #[serde(default)]
    pub probes: u64,
    #[serde(default)]
    pub failed_probes: u64,
}

impl StepRecord {
    pub fn new(plan: StepPlan) -> StepRecord {
        StepRecord {
            plan,
            probes: 0,
            failed_probes: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerdictResult {
    Passed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub result: VerdictResult,
    pub reason: String,
}

/// A new instance that failed, and its last health answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingInstance {
    pub name: String,
    pub health: String,
}

/// A new instance and when the controller first saw it running: its
/// health counts only once `health.initialDelay` has passed since then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewInstance {
    pub name: String,
    pub seen: Timestamp,
}

/// Probes sent through the load balancer during the whole rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTotals {
    pub sent: u64,
    pub failed: u64,
}

/// The rollout now under way, or the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `{to template}@{started}`: operator controls name the rollout they mean.
    pub id: String,
    pub strategy: Strategy,
    /// The revision the fleet goes back to on failure; none for a first deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Revision>,
    pub to: Revision,
    /// The spec file (its hash) that asked for `to`.
    pub spec: String,
    pub started: Timestamp,
    pub state: RolloutState,
    pub step: StepState,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<FailingInstance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_instances: Vec<NewInstance>,
    #[serde(default)]
    pub probes: ProbeTotals,
    /// Since when an operator has held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Timestamp>,
    /// An operator promoted it: no more holds, straight to all traffic once healthy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promoted: bool,
}

impl Rollout {
    pub fn rollout_id(template: &str, started: Timestamp) -> String {
        format!("{template}@{started}")
    }

    /// The plan of the step it is at.
    pub fn current(&self) -> Option<&StepPlan> {
        let i = usize::try_from(self.step.index).ok()?;
        self.steps.get(i).map(|s| &s.plan)
    }

    pub fn is_last_step(&self) -> bool {
        usize::try_from(self.step.index).is_ok_and(|i| i + 1 >= self.steps.len())
    }

    /// What the history keeps of it once it ended.
    pub fn summary(&self) -> RolloutSummary {
        RolloutSummary {
            id: self.id.clone(),
            version: self.to.version.clone(),
            strategy: self.strategy,
            started: self.started,
            ended: self.ended,
            state: self.state,
            reason: self.verdict.as_ref().map(|v| v.reason.clone()),
            probes: self.probes.sent,
            failed_probes: self.probes.failed,
        }
    }
}

/// One past rollout, as `ccd rollout status` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    pub id: String,
    pub version: String,
    pub strategy: Strategy,
    pub started: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    pub state: RolloutState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub probes: u64,
    pub failed_probes: u64,
}

/// How many past rollouts the status keeps.
pub const HISTORY: usize = 5;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_read_back_exactly() {
        let t = Timestamp::new(UNIX_EPOCH + Duration::from_micros(1_764_469_763_123_456));
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, "\"2025-11-30T02:29:23.123Z\"");
        let back: Timestamp = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(
            t.plus(Duration::from_secs(2)).since(t),
            Duration::from_secs(2)
        );
        assert_eq!(t.since(t.plus(Duration::from_secs(2))), Duration::ZERO);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
