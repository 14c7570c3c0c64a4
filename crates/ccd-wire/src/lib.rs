//! The wire contract between ccd's Compute adapter (`ccd-cloud`), which writes instance
//! templates, and ccd's local cloud (`ccd-localcloud`), which reads them: the metadata items
//! that only the local cloud acts on.
//!
//! - [`local_run`]: `ccd-local-run`, which program an instance runs on this machine in place
//!   of the image a VM boots.
//! - [`secrets`]: `ccd-secrets`, which secret versions are read into the instance's
//!   environment (references only, never values).
//!
//! Each shape is a serde type written with `to_metadata_value` and read with `parse`, so
//! neither side builds or picks apart the JSON by hand. The crate is apart from both so that
//! the adapter, in production builds, does not pull in the local cloud's server to agree
//! with it.

pub mod local_run;
pub mod secrets;

pub use local_run::LocalRun;
pub use secrets::{SecretRefs, SecretVersion};

/// The label naming the app a resource belongs to; the same value as `ccd_cloud::APP_LABEL`,
/// which the adapter writes on every template (the local cloud does not depend on ccd-cloud).
pub const APP_LABEL: &str = "ccd-app";

/// The file in a local instance's log folder (`DATA/cloud/instances/<zone>/<instance>/`,
/// beside `stdout.log` and `stderr.log`) holding its template's [`APP_LABEL`]: written by the
/// local cloud before the process starts, read by `ccd up`'s log shipper (`ccd-services`).
pub const INSTANCE_APP_FILE: &str = "app";

/// Why a metadata item's value is not what the contract says; the message names the item
/// where the caller's context does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);
