//! What agents and reconcilers say to each other: one definition, used by
//! both sides. A change that old readers would misread is a new version
//! (`/v2`), published beside the old one until every reader knows it.

use serde::{Deserialize, Serialize};

use crate::{Message, Topic};

/// Which instance a message is about. `instance_id` is the cloud's ID: an
/// instance recreated under the same name has a new one, so messages about
/// the one before are told apart and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRef {
    pub app: String,
    /// The app version the instance runs.
    pub version: String,
    pub instance: String,
    pub instance_id: String,
}

/// The app's health as its agent's last checks found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Not checked enough times yet to say.
    Unknown,
    Healthy,
    Unhealthy,
}

/// An agent's periodic report: health and resource use of its app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(flatten)]
    pub instance: InstanceRef,
    pub health: Health,
    /// The last failed check's answer, while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Share of the instance's CPUs the app used over the interval (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Share of the instance's memory the app uses (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<f64>,
    /// Requests the app accepted per second over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Times the app was restarted on this instance since the agent started.
    #[serde(default)]
    pub restarts: u32,
    /// How often reports come: a reader that hears nothing for a few
    /// intervals holds the instance's health unknown, never healthy.
    pub interval_ms: u64,
}

impl Message for Report {
    const SCHEMA: &'static str = "ccd.agent.report/v1";
    const TOPIC: Topic = Topic::Reports;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AlertKind {
    /// The health check failed `unhealthyThreshold` times in a row.
    Unhealthy,
    /// Passing again after being unhealthy.
    Recovered,
    /// CPU use above the pressure level for a while.
    CpuPressure,
    /// Memory use above the pressure level.
    MemoryPressure,
}

/// Something changed on an instance that someone may have to act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    #[serde(flatten)]
    pub instance: InstanceRef,
    pub kind: AlertKind,
    /// In words: the failed check's answer, the figure over its level.
    pub detail: String,
}

impl Message for Alert {
    const SCHEMA: &'static str = "ccd.agent.alert/v1";
    const TOPIC: Topic = Topic::Alerts;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Kill and start the app again on the same instance.
    Restart,
}

/// A reconciler's order to one instance's agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    #[serde(flatten)]
    pub instance: InstanceRef,
    pub action: Action,
    /// Why, for the agent's log and events.
    pub reason: String,
}

impl Message for Command {
    const SCHEMA: &'static str = "ccd.agent.command/v1";
    const TOPIC: Topic = Topic::Commands;
}
