//! What the scaling reconciler tells about an app (`scaling/<app>.yaml`,
//! shown by `ccd status`): defined once, for the reconciler that writes it
//! and the command line that reads it. It changes only when a decision
//! does, so a steady app's record is not rewritten at every pass.

use serde::{Deserialize, Serialize};

use crate::record::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRecord {
    pub min: u32,
    pub max: u32,
    /// The target the figures are tracked against, in words (`CPU 60%`).
    pub target: String,
    /// The group's target size as the reconciler last set or found it.
    pub size: u32,
    /// Why the size is not being changed, when the reconciler holds it
    /// (a rollout is in progress, the group is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The last resize and its inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<ScaleEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleEvent {
    pub at: Timestamp,
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

impl ScalingRecord {
    pub fn to_yaml(&self, app: &str) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        ccd_spec::document::to_yaml(
            &format!(
                "Written by ccd's scaling reconciler; edits are overwritten. Spec: specs/{app}.yaml"
            ),
            &value,
        )
    }

    /// `None` when the bytes are not a record (a person broke it).
    pub fn parse(bytes: &[u8]) -> Option<ScalingRecord> {
        Self::read(bytes).ok()
    }

    /// As [`ScalingRecord::parse`], with why it is not a record, for `ccd status`.
    pub fn read(bytes: &[u8]) -> Result<ScalingRecord, String> {
        let value = ccd_spec::document::from_yaml(bytes).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// One line for `ccd status`.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} instances (replicas {}..{}, target {})",
            self.size, self.min, self.max, self.target
        );
        if let Some(held) = &self.held {
            line.push_str(&format!("; held: {held}"));
        }
        if let Some(last) = &self.last {
            line.push_str(&format!(
                "; last {} → {} at {}: {}",
                last.from, last.to, last.at, last.reason
            ));
        }
        line
    }
}
