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
    /// Why it failed, and the fix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}
