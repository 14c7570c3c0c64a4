//! `ccd sync`: puts one git commit's spec files into the store (a folder or a bucket), uploading
//! only what changed, deleting only when asked (and never more than half without `--force`),
//! and writing last a marker that names the commit, its author and time, and each file's
//! checksum, conditionally on the marker's generation so two syncs cannot interleave silently.
//!
//! - [`repo`]: what `REPO` names (a local repository or a URL, cloned once into a cache) and
//!   the `--path` folder; [`git`] reads a commit with the `git` command.
//! - [`plan()`]: what to upload and delete, a pure function of the commit's files and the
//!   store's listing.
//! - [`marker`]: the marker's one definition, which the controller reads back to record per
//!   app the commit its spec came from.
//! - [`sync()`]: the whole run: [`fetch()`] the commit (no store touched), then [`apply()`] it.
//! - [`webhook`]: `--listen`'s server: a signed push (GitHub or GitLab) wakes `--watch` at once.

mod error;
pub mod git;
pub mod marker;
mod plan;
pub mod repo;
mod run;
pub mod webhook;

pub use error::{SyncError, WebhookError};
pub use marker::{MarkedFile, Origin, SyncMarker};
pub use plan::{Plan, PlanError, plan};
pub use repo::Repo;
pub use run::{Fetched, Options, Report, Upload, apply, fetch, sync};
