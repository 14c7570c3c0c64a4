//! What the user names: the repository (`REPO`: a local path or a URL) and the folder of spec
//! files in it (`--path`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::SyncError;

/// A repository to read commits from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repo {
    /// A repository on this machine (a working tree or a bare repository), read in place.
    Local(PathBuf),
    /// A URL git can fetch (`https://`, `ssh://`, `git@host:path`, `file://`), fetched into a
    /// cache clone, with the user's own git credentials.
    Remote(String),
}

impl FromStr for Repo {
    type Err = SyncError;

    fn from_str(input: &str) -> Result<Self, SyncError> {
        let text = input.trim();
        let bad = |reason: &str| SyncError::BadRepo {
            repo: input.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(bad(
                "it is empty; give a path to a git repository or its URL",
            ));
        }
        // git would take it for an option.
        if text.starts_with('-') {
            return Err(bad("it starts with '-'; write ./ before a path that does"));
        }
        if text.contains("://") || scp_like(text) {
            Ok(Self::Remote(text.to_owned()))
        } else {
            Ok(Self::Local(PathBuf::from(text)))
        }
    }
}

/// `[user@]host:path`, as git reads it: a colon before any slash.
fn scp_like(text: &str) -> bool {
    match (text.find(':'), text.find('/')) {
        (Some(colon), Some(slash)) => colon < slash && colon > 0,
        (Some(colon), None) => colon > 0,
        _ => false,
    }
}

impl fmt::Display for Repo {
    /// Without credentials: safe for logs, output and the marker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Remote(url) => f.write_str(&redact(url)),
        }
    }
}

/// A URL without the `user:password@` a user may have put in it.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The folder of a URL's cache clone under `root`: named by a digest of the URL, so that two
/// repositories never share one and a URL carrying a token leaves no trace of it on disk.
pub fn cache_dir(root: &Path, url: &str) -> PathBuf {
    let digest = ccd_store::spec_version(url.as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    root.join(format!("{}.git", &hex[..hex.len().min(24)]))
}

/// Where cache clones go without `--cache`: `$XDG_CACHE_HOME/ccd/sync`, else
/// `$HOME/.cache/ccd/sync`.
pub fn default_cache_root() -> Result<PathBuf, SyncError> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(xdg) = from("XDG_CACHE_HOME") {
        return Ok(xdg.join("ccd").join("sync"));
    }
    match from("HOME") {
        Some(home) => Ok(home.join(".cache").join("ccd").join("sync")),
        None => Err(SyncError::NoCache),
    }
}

/// `--path` as a folder inside the repository: `deploy/specs`, or empty for the top.
pub fn spec_folder(input: &str) -> Result<String, SyncError> {
    let bad = |reason: &str| SyncError::BadPath {
        path: input.to_owned(),
        reason: reason.to_owned(),
    };
    let text = input.trim();
    if text.starts_with('/') {
        return Err(bad(
            "it is absolute; give the folder relative to the repository's top",
        ));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it leaves the repository ('..')")),
            p if p.starts_with('-') => return Err(bad("a folder name starts with '-'")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tells_paths_from_urls() {
        let remote = |s: &str| Repo::Remote(s.to_owned());
        assert_eq!(
            "https://h/x.git".parse::<Repo>().unwrap(),
            remote("https://h/x.git")
        );
        assert_eq!(
            "git@h:org/x".parse::<Repo>().unwrap(),
            remote("git@h:org/x")
        );
        assert_eq!(
            "file:///srv/x".parse::<Repo>().unwrap(),
            remote("file:///srv/x")
        );
        assert_eq!(
            "./a:b".parse::<Repo>().unwrap(),
            Repo::Local(PathBuf::from("./a:b"))
        );
        assert_eq!(
            "/srv/ops".parse::<Repo>().unwrap(),
            Repo::Local(PathBuf::from("/srv/ops"))
        );
        assert!("".parse::<Repo>().is_err());
        assert!("-oProxyCommand=x:y".parse::<Repo>().is_err());
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("https://u:tok@h.example/o/r.git"),
            "https://h.example/o/r.git"
        );
        assert_eq!(redact("https://h.example/a@b"), "https://h.example/a@b");
        assert_eq!(redact("git@h:o/r"), "git@h:o/r");
        let shown = Repo::Remote("https://x:secret@h/r".into()).to_string();
        assert!(!shown.contains("secret"), "{shown}");
        let root = Path::new("/c");
        let dir = cache_dir(root, "https://x:secret@h/r");
        assert!(!dir.to_string_lossy().contains("secret"));
        assert_ne!(dir, cache_dir(root, "https://h/r"));
    }

    #[test]
    fn the_spec_folder_stays_inside() {
        assert_eq!(spec_folder("./deploy/specs/").unwrap(), "deploy/specs");
        assert_eq!(spec_folder(".").unwrap(), "");
        assert_eq!(spec_folder("a//b").unwrap(), "a/b");
        assert!(spec_folder("../x").is_err());
        assert!(spec_folder("/etc").is_err());
        assert!(spec_folder("-x").is_err());
    }
}
