//! How an instance runs on this machine: the template's `ccd-local-run` item, whose shape
//! `ccd_wire::local_run` defines for the adapter that writes it and for this reader. An
//! instance whose template has no such item is simulated (no process).

use serde_json::Value;

pub use ccd_wire::local_run::{LocalRun, METADATA_KEY};

/// What an instance of a template runs: the template's item, else simulated.
pub fn of_template(template: &Value) -> Result<LocalRun, String> {
    let items = template
        .pointer("/properties/metadata/items")
        .and_then(Value::as_array);
    match items
        .into_iter()
        .flatten()
        .find(|i| i["key"] == METADATA_KEY)
    {
        Some(item) => {
            LocalRun::parse(item["value"].as_str().unwrap_or("")).map_err(|e| e.to_string())
        }
        None => Ok(LocalRun::simulated()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_without_the_item_is_simulated() {
        let template = serde_json::json!({"properties": {}});
        assert_eq!(of_template(&template), Ok(LocalRun::simulated()));
        let template = serde_json::json!({"properties": {"metadata": {"items": [
            {"key": METADATA_KEY, "value": r#"{"command": ["app"], "args": ["$(PORT)"]}"#}
        ]}}});
        assert_eq!(
            of_template(&template).map(|r| r.args),
            Ok(vec!["$(PORT)".to_owned()])
        );
        let template = serde_json::json!({"properties": {"metadata": {"items": [
            {"key": METADATA_KEY, "value": r#"{"cmd": ["app"]}"#}
        ]}}});
        assert!(of_template(&template).is_err());
    }
}
