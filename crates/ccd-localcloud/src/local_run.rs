//! How an instance runs on this machine. A real VM boots an image and starts
//! the container from its startup script; here the instance template's
//! metadata item `ccd-local-run` says which program to start instead:
//!
//! ```json
//! {"command": ["ccd-sample-app"], "args": ["--port", "$(PORT)"], "env": {"MODE": "x"}}
//! ```
//!
//! or `{"simulated": true}` for an instance with no process at all (scale
//! tests), which is RUNNING and healthy as soon as it is created. An
//! instance whose template has no such item is simulated too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const METADATA_KEY: &str = "ccd-local-run";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRun {
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub simulated: bool,
    /// Seconds between SIGTERM and SIGKILL when the instance stops.
    #[serde(default)]
    pub stop_grace_sec: Option<u64>,
}

impl LocalRun {
    pub fn parse(text: &str) -> Result<Self, String> {
        let run: LocalRun = serde_json::from_str(text)
            .map_err(|e| format!("not a valid local run description: {e}"))?;
        if !run.simulated && run.command.first().is_none_or(String::is_empty) {
            return Err("`command` must name a program, or set `simulated: true`".to_owned());
        }
        Ok(run)
    }

    /// What an instance of a template runs: the template's item, else simulated.
    pub fn of_template(template: &serde_json::Value) -> Result<Self, String> {
        let items = template
            .pointer("/properties/metadata/items")
            .and_then(|v| v.as_array());
        match items
            .into_iter()
            .flatten()
            .find(|i| i["key"] == METADATA_KEY)
        {
            Some(item) => Self::parse(item["value"].as_str().unwrap_or("")),
            None => Ok(LocalRun {
                simulated: true,
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let run =
            LocalRun::parse(r#"{"command": ["app"], "args": ["--port", "$(PORT)"]}"#).unwrap();
        assert_eq!(run.args[1], "$(PORT)");
        assert!(LocalRun::parse(r#"{"command": []}"#).is_err());
        assert!(LocalRun::parse(r#"{"simulated": true}"#).unwrap().simulated);
        assert!(LocalRun::parse(r#"{"cmd": ["x"]}"#).is_err());
        let template = serde_json::json!({"properties": {}});
        assert!(LocalRun::of_template(&template).unwrap().simulated);
    }
}
