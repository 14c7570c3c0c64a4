//! `ccd-local-run`: how the local cloud runs an instance of a template. A real VM boots an
//! image and its startup script starts the container; the local cloud starts this program
//! instead:
//!
//! ```json
//! {"command":["ccd-sample-app"],"args":["--port","$(PORT)"],"env":{"PORT":"8080"},"stopGraceSec":10}
//! ```
//!
//! or `{"simulated":true}` for an instance with no process at all (scale tests), RUNNING and
//! healthy as soon as it is created.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::WireError;

/// The metadata item's key.
pub const METADATA_KEY: &str = "ccd-local-run";

/// The `ccd-local-run` item. Unknown fields are refused rather than ignored: a field the
/// local cloud does not know is one it would silently not honour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRun {
    /// The program (found beside ccd, then on PATH) and any first words of its command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Its arguments; `$(NAME)` expands the environment's NAME.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Its environment (the adapter sets `PORT` and the app's env).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// No process: the instance only exists in the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// Seconds between SIGTERM and SIGKILL when the instance stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_sec: Option<u64>,
}

impl LocalRun {
    /// An instance with no process.
    pub fn simulated() -> Self {
        Self {
            simulated: true,
            ..Self::default()
        }
    }

    /// The item's value as the adapter writes it: compact JSON.
    pub fn to_metadata_value(&self) -> String {
        // Strings, lists, a string map and numbers: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The item's value as the local cloud reads it; a process needs a program.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let run: LocalRun = serde_json::from_str(text)
            .map_err(|e| WireError(format!("not a valid local run description: {e}")))?;
        if !run.simulated && run.command.first().is_none_or(String::is_empty) {
            return Err(WireError(
                "`command` must name a program, or set `simulated: true`".to_owned(),
            ));
        }
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn process() -> LocalRun {
        LocalRun {
            command: vec!["ccd-sample-app".into()],
            args: vec!["--port".into(), "$(PORT)".into()],
            env: BTreeMap::from([("PORT".into(), "8080".into()), ("MODE".into(), "x".into())]),
            simulated: false,
            stop_grace_sec: Some(10),
        }
    }

    #[test]
    fn round_trips() {
        for run in [process(), LocalRun::simulated()] {
            assert_eq!(LocalRun::parse(&run.to_metadata_value()).unwrap(), run);
        }
    }

    /// The exact text, both ways: templates already stored in local clouds (and tests' raw
    /// requests) hold it, so a renamed or retyped field fails here, not in a user's cloud.
    #[test]
    fn the_text_on_the_wire_is_fixed() {
        let text = r#"{"command":["ccd-sample-app"],"args":["--port","$(PORT)"],"env":{"MODE":"x","PORT":"8080"},"stopGraceSec":10}"#;
        assert_eq!(process().to_metadata_value(), text);
        assert_eq!(LocalRun::parse(text).unwrap(), process());
        assert_eq!(
            LocalRun::simulated().to_metadata_value(),
            r#"{"simulated":true}"#
        );
        assert_eq!(
            LocalRun::parse(r#"{"simulated": true}"#).unwrap(),
            LocalRun::simulated()
        );
    }

    #[test]
    fn refuses_what_it_would_not_honour() {
        assert!(LocalRun::parse(r#"{"command": []}"#).is_err());
        assert!(LocalRun::parse(r#"{"command": [""]}"#).is_err());
        let unknown = LocalRun::parse(r#"{"cmd": ["x"]}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown field `cmd`"), "{unknown}");
        assert!(LocalRun::parse(r#"{"command": ["x"], "stopGraceSec": -1}"#).is_err());
        assert!(LocalRun::parse("").is_err());
    }
}
