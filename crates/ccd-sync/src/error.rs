//! Why a sync did not happen. Each message names what to fix; none carries a URL's credentials.

use ccd_store::StoreError;

use crate::PlanError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// `REPO` is not something to read a repository from.
    #[error("{repo:?} is not a repository: {reason}")]
    BadRepo { repo: String, reason: String },
    /// `--path` is not a folder inside a repository.
    #[error("--path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    /// `--ref` is not something git can resolve safely.
    #[error("--ref {reference:?}: {reason}")]
    BadRef { reference: String, reason: String },
    /// The `git` command is missing.
    #[error(
        "cannot run git ({reason}): ccd sync reads repositories with the git command; install it (apt-get install git)"
    )]
    NoGit { reason: String },
    /// A git command failed: its own message, and what ccd was doing.
    #[error("{doing}: git says: {message}")]
    Git { doing: String, message: String },
    /// A git command took too long (a network that does not answer, a prompt nobody sees).
    #[error(
        "{doing}: git did not finish within {seconds} s; check the network and that the URL's credentials work without a prompt (a credential helper, or an ssh key in the agent)"
    )]
    GitTimeout { doing: String, seconds: u64 },
    /// What git printed is not what ccd expects.
    #[error("{doing}: cannot read git's output: {reason}")]
    GitOutput { doing: String, reason: String },
    /// The `--path` folder is not in the commit.
    #[error(
        "there is no folder {path:?} in commit {commit} of {repo}; check --path (relative to the repository's top)"
    )]
    NoFolder {
        repo: String,
        commit: String,
        path: String,
    },
    /// No cache folder for a URL's clone.
    #[error("neither XDG_CACHE_HOME nor HOME is set: give --cache DIR for the repository's clone")]
    NoCache,
    /// The cache clone's folder cannot be used.
    #[error("cannot use the cache clone {dir}: {reason}")]
    Cache { dir: String, reason: String },
    /// The plan was refused (too many deletions).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another sync wrote the marker between this sync's read and its write.
    #[error(
        "another ccd sync wrote {location} while this one ran, so the store may hold a mix of both commits' specs: run ccd sync again ({detail})"
    )]
    Raced { location: String, detail: String },
}

/// Why the webhook (`--listen`) cannot start or stopped. No message carries the secret, nor any
/// part of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The secret file cannot be read.
    #[error(
        "cannot read the webhook secret file {file}: {reason}; write the hook's secret into it \
         (GitHub: the webhook's Secret; GitLab: its signing token, whsec_...) and chmod 600 it"
    )]
    SecretUnreadable { file: String, reason: String },
    /// The secret file holds nothing but white space.
    #[error(
        "the webhook secret file {file} is empty: write the hook's secret into it (GitHub: the \
         webhook's Secret; GitLab: its signing token, whsec_...)"
    )]
    SecretEmpty { file: String },
    /// The secret looks like a signing token but is not one.
    #[error(
        "the webhook secret file {file} starts with whsec_ but the rest is not base64: copy \
         GitLab's signing token whole, on one line"
    )]
    SecretNotBase64 { file: String },
    /// The server itself failed (accepting connections).
    #[error("the webhook server stopped: {0}")]
    Serve(#[source] std::io::Error),
}
