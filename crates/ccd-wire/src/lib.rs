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

/// Why a metadata item's value is not what the contract says; the message names the item
/// where the caller's context does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);
