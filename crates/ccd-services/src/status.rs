//! A service as the app's status shows it: what it is, whether it is
//! ready, where it is and as whom; never a secret.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceState {
    Ready,
    Failed,
    /// Asked for, but this controller does not provide the kind yet: the app
    /// receives nothing for it, and is not held back.
    NotProvided,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// `cache`, `sql`, `nosql`, `storage` or `logs`: the spec's key.
    pub kind: String,
    pub state: ServiceState,
    /// Where it is (`host:port`), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The app's account there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What the account may reach (a key namespace, a database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The variables the app receives (names only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// What ccd made for the app there (the database, the namespace, the
    /// prefix), which deleting the app releases as `on_delete` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The spec's `onDelete` for it (`retain` when not said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    /// Why it failed, and the fix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl ServiceStatus {
    /// A ready service of `kind`, the rest to be filled in.
    pub fn ready(kind: &str) -> Self {
        ServiceStatus {
            kind: kind.to_owned(),
            state: ServiceState::Ready,
            endpoint: None,
            user: None,
            scope: None,
            env: Vec::new(),
            name: None,
            on_delete: None,
            message: String::new(),
        }
    }

    /// A service of `kind` that failed, and why.
    pub fn failed(kind: &str, message: String) -> Self {
        ServiceStatus {
            state: ServiceState::Failed,
            message,
            ..ServiceStatus::ready(kind)
        }
    }
}
