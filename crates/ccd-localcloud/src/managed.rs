//! What a managed group knows of each of its instances, kept beside the
//! instances (Compute's Instance has no field for it): the version it runs,
//! the action under way, when it was created and whether it was ever healthy.
//! Keys: `ccd/managed/<group key>/<instance name>`.

use serde::{Deserialize, Serialize};

use crate::paths;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    None,
    Creating,
    Recreating,
    Deleting,
    Abandoning,
    Restarting,
    Refreshing,
    Verifying,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "NONE",
            Action::Creating => "CREATING",
            Action::Recreating => "RECREATING",
            Action::Deleting => "DELETING",
            Action::Abandoning => "ABANDONING",
            Action::Restarting => "RESTARTING",
            Action::Refreshing => "REFRESHING",
            Action::Verifying => "VERIFYING",
        }
    }

    /// From the camelCase keys of `currentActions`.
    pub fn from_camel(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Action::None,
            "creating" => Action::Creating,
            "recreating" => Action::Recreating,
            "deleting" => Action::Deleting,
            "abandoning" => Action::Abandoning,
            "restarting" => Action::Restarting,
            "refreshing" => Action::Refreshing,
            "verifying" => Action::Verifying,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Managed {
    /// The instance's key.
    pub instance: String,
    /// The template link it was made from.
    pub template: String,
    /// The name of the group version it belongs to, if the version had one.
    #[serde(default)]
    pub version: Option<String>,
    pub action: Action,
    /// Unix milliseconds when the instance was (re)created.
    pub created_ms: u64,
    /// Healthy at least once since (re)created: counts as available.
    #[serde(default)]
    pub healthy_once: bool,
    #[serde(default)]
    pub last_error: Option<String>,
}

pub fn record_key(group: &str, instance: &str) -> String {
    format!("ccd/managed/{group}/{}", paths::name_of(instance))
}

pub fn of_group(store: &Store, group: &str) -> Vec<Managed> {
    store
        .list(&format!("ccd/managed/{group}/"))
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value((*v).clone()).ok())
        .collect()
}

pub fn get(store: &Store, group: &str, instance: &str) -> Option<Managed> {
    store
        .get(&record_key(group, instance))
        .and_then(|v| serde_json::from_value((*v).clone()).ok())
}

pub fn put(store: &Store, group: &str, m: &Managed) {
    if let Ok(v) = serde_json::to_value(m) {
        store.put(&record_key(group, &m.instance), v);
    }
}

pub fn forget(store: &Store, group: &str, instance: &str) {
    store.delete(&record_key(group, instance));
}

pub fn set_action(store: &Store, group: &str, instance: &str, action: Action) {
    if let Some(mut m) = get(store, group, instance) {
        m.action = action;
        put(store, group, &m);
    }
}
