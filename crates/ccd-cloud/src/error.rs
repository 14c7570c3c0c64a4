//! The errors of the Cloud port: kinds a reconciler can act on, each naming
//! the resource it is about.

use std::time::Duration;

/// A failed cloud call. The variants are what a reconciler decides on:
/// `NotFound` → create, `InUse` → delete dependents first, `Conflict` →
/// re-read and retry later, `Throttled`/`Timeout` → requeue with back-off,
/// `Invalid` → report (retrying will not help), `NotOwned` → report the
/// clash (a person must rename one side), `Other` → requeue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    #[error("{resource} was not found")]
    NotFound { resource: String },
    #[error("{resource} is still in use: {message}")]
    InUse { resource: String, message: String },
    /// A concurrent change: the name is taken by something else, or the
    /// resource kept changing under us (stale fingerprint after a re-read).
    #[error("{resource} changed concurrently: {message}")]
    Conflict { resource: String, message: String },
    #[error("{resource}: the cloud throttled the call: {message}")]
    Throttled { resource: String, message: String },
    #[error("{resource}: no answer within {after:?}")]
    Timeout { resource: String, after: Duration },
    #[error("{resource}: invalid request: {message}")]
    Invalid { resource: String, message: String },
    #[error("{resource}: {message}")]
    Other { resource: String, message: String },
    /// The name is taken by a resource ccd did not make for this app: ccd
    /// neither changes nor adopts it. `message` says whose it looks like and
    /// the fix.
    #[error("{resource} {message}")]
    NotOwned { resource: String, message: String },
    /// Refused by a [read-only](crate::Cloud::read_only) view: `change` is
    /// what the call would have done, e.g. "would be created".
    #[error("{resource} {change}")]
    WouldChange { resource: String, change: String },
    /// Not sent: this controller's lease lapsed (another may lead now).
    #[error("{resource}: not changed: this controller does not hold the leader lease")]
    NotLeader { resource: String },
}

impl CloudError {
    /// The resource the error is about, e.g. `global/instanceTemplates/web-1a2b`.
    pub fn resource(&self) -> &str {
        match self {
            CloudError::NotFound { resource }
            | CloudError::InUse { resource, .. }
            | CloudError::Conflict { resource, .. }
            | CloudError::Throttled { resource, .. }
            | CloudError::Timeout { resource, .. }
            | CloudError::Invalid { resource, .. }
            | CloudError::Other { resource, .. }
            | CloudError::NotOwned { resource, .. }
            | CloudError::WouldChange { resource, .. }
            | CloudError::NotLeader { resource } => resource,
        }
    }

    /// Whether the same call may succeed later without any change (throttling,
    /// timeouts, outages, concurrent changes).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CloudError::Throttled { .. }
                | CloudError::Timeout { .. }
                | CloudError::Conflict { .. }
                | CloudError::Other { .. }
        )
    }
}
