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
pub mod private;
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
    /// `ENV` → the secret and its version (never the value).
    pub credentials: std::collections::BTreeMap<String, Credential>,
}

/// A variable's secret, and the version of it the app is to read: `latest`
/// until the service's credential is first rotated, then the rotation's
/// number, so that a rotation changes the template and rolls the app out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Credential {
    pub secret: String,
    pub version: String,
}

impl Credential {
    /// The version that generation `generation` of a credential is read as.
    pub fn version_of(generation: u32) -> String {
        if generation == 0 {
            "latest".to_owned()
        } else {
            generation.to_string()
        }
    }

    /// The generation this version is (`latest` is the first, 0).
    pub fn generation(&self) -> Option<u32> {
        if self.version == "latest" {
            Some(0)
        } else {
            self.version.parse().ok()
        }
    }
}

impl Provisioned {
    /// `kind`'s service is ready: its status, and the secret of each of
    /// `variables` (the contract's) as the app's credentials.
    pub fn ready(&mut self, app: &str, kind: &str, variables: &[&str], status: ServiceStatus) {
        self.ready_at(app, kind, variables, 0, status);
    }

    /// As [`ready`](Self::ready), its credential in its `generation`th
    /// rotation.
    pub fn ready_at(
        &mut self,
        app: &str,
        kind: &str,
        variables: &[&str],
        generation: u32,
        mut status: ServiceStatus,
    ) {
        status.env = variables.iter().map(|v| (*v).to_owned()).collect();
        for env in variables {
            let credential = Credential {
                secret: names::secret_of(app, kind, env),
                version: Credential::version_of(generation),
            };
            self.credentials.insert((*env).to_owned(), credential);
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

    /// Every instance of `app` runs with `in_use` (the credentials of its
    /// one template): a credential a rotation replaced is no longer needed
    /// and stops working. What was retired, in words, for the app's events.
    fn settle<'a>(
        &'a self,
        app: &'a str,
        in_use: &'a std::collections::BTreeMap<String, Credential>,
    ) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + 'a>> {
        let _ = (app, in_use);
        Box::pin(async { Vec::new() })
    }
}
