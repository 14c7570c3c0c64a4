//! App services: each app's `services` (a SQL database, a document
//! database, a Redis namespace, file storage, log shipping) provisioned with
//! credentials of the app's own that reach only what is the app's.
//!
//! This crate holds what every adapter shares: the names derived from an app
//! ([`names`]), its passwords ([`password`]), and per service the rules as
//! pure functions beside the adapter that applies them. Today: the cache
//! (`cache`: Redis 7 ACL users limited to the app's namespace, over
//! [`resp`], a client of Redis's protocol small enough to read).
//!
//! [`Services`] is the port the deploy reconciler provisions through before
//! it writes the template that needs the credentials; [`LocalServices`] is
//! the adapter of `ccd up` (a redis-server of its own under the data folder,
//! credentials as the local cloud's Secret Manager files).

pub mod cache;
mod error;
mod local;
pub mod logs;
pub mod names;
pub mod password;
mod private;
pub mod resp;
pub mod sql;
mod status;
#[cfg(feature = "test-support")]
pub mod testing;

use std::future::Future;
use std::pin::Pin;

pub use error::ServiceError;
pub use local::{BackupReport, LOCAL_BUCKET, LocalServices, Retained, local_project};
pub use logs::{Cursor as LogCursor, LogLine, ShipReport, Shipper, read as read_logs};
pub use status::{ServiceState, ServiceStatus};

/// What provisioning an app's services came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// One per service the spec asks for, for the app's status.
    pub services: Vec<ServiceStatus>,
    /// Why the app cannot roll out yet (a service that failed), naming the
    /// service and the fix; the running revision stays.
    pub problem: Option<String>,
    /// The variables the app receives, each from a secret the service wrote:
    /// `ENV` → secret name (never the value).
    pub credentials: std::collections::BTreeMap<String, String>,
}

impl Provisioned {
    /// `kind`'s service is ready: its status, and the secret of each of
    /// `variables` (the contract's) as the app's credentials.
    pub fn ready(&mut self, app: &str, kind: &str, variables: &[&str], mut status: ServiceStatus) {
        status.env = variables.iter().map(|v| (*v).to_owned()).collect();
        for env in variables {
            self.credentials
                .insert((*env).to_owned(), names::secret_of(app, kind, env));
        }
        self.services.push(status);
    }

    /// `kind`'s service failed: the app is held back, saying why.
    pub fn failed(&mut self, kind: &str, message: String) {
        self.problem.get_or_insert_with(|| message.clone());
        self.services.push(ServiceStatus::failed(kind, message));
    }
}

/// What releasing a deleted app's services came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// The kinds removed (`onDelete: delete`).
    pub deleted: Vec<String>,
    /// The kinds kept, recorded for `ccd services prune`.
    pub retained: Vec<String>,
    /// What could not be removed (kept and recorded instead), and the fix.
    pub problems: Vec<String>,
}

/// Provisions what an app's `services` asks for, and keeps its credentials
/// where the template's secret references find them ([`names`]).
pub trait Services: Send + Sync + std::fmt::Debug {
    /// Makes every service of `app` exist as its spec asks; idempotent.
    fn ensure<'a>(
        &'a self,
        app: &'a ccd_spec::App,
    ) -> Pin<Box<dyn Future<Output = Provisioned> + Send + 'a>>;

    /// The app is deleted: releases each of its `services` (as its last
    /// status recorded them) as its `onDelete` says, keeping a record of
    /// what stays. Never fails the deletion: what cannot be removed is kept.
    fn release<'a>(
        &'a self,
        app: &'a str,
        services: &'a [ServiceStatus],
    ) -> Pin<Box<dyn Future<Output = Released> + Send + 'a>>;
}
