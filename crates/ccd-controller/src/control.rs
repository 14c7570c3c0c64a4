//! Operator controls (`controls/<app>.yaml`): what `ccd rollout
//! pause|resume|promote|abort` asks of one rollout. Written by the command
//! line (or, later, the API) into the store, read by the controller on each
//! pass of an open rollout, so they work with a folder and a bucket alike
//! and a pause survives a restart. A control names the rollout it is for:
//! one left over from an earlier rollout never touches a later one.

use serde::{Deserialize, Serialize};

use crate::record::Timestamp;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// The rollout's id, as its status records it (`rollout.id`).
    pub rollout: String,
    /// Hold the rollout where it stands; `false` resumes it.
    #[serde(default)]
    pub paused: bool,
    /// Skip the remaining holds: all traffic to the new revision once its
    /// instances are healthy (never before).
    #[serde(default)]
    pub promote: bool,
    /// Roll back now.
    #[serde(default)]
    pub abort: bool,
    /// When it was last changed, and by whom (for people reading it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Control {
    pub fn to_yaml(&self, app: &str) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        ccd_spec::document::to_yaml(
            &format!("Rollout controls for {app}, written by `ccd rollout`."),
            &value,
        )
    }

    /// `None` for bytes that are not a control (they are ignored).
    pub fn parse(bytes: &[u8]) -> Option<Control> {
        let value = ccd_spec::document::from_yaml(bytes).ok()?;
        serde_json::from_value(value).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips() {
        let c = Control {
            rollout: "web-0a1b2c3d4e@2026-11-30T02:00:00.000Z".into(),
            paused: true,
            by: Some("ana".into()),
            ..Control::default()
        };
        let y = c.to_yaml("web");
        assert!(y.contains("paused: true\n"), "{y}");
        assert_eq!(Control::parse(y.as_bytes()), Some(c));
        assert_eq!(Control::parse(b"rollout: [1]"), None);
        assert_eq!(
            Control::parse(b"rollout: x\n").unwrap(),
            Control {
                rollout: "x".into(),
                ..Control::default()
            }
        );
    }
}
