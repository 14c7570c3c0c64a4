//! API tokens: bearer tokens kept as their SHA-256 only, each with a scope
//! (`read` < `deploy` < `admin`) and, optionally, the app name prefixes it
//! is limited to. The file (`DATA/api/tokens.json` under `ccd up`) is
//! 0600 in a 0700 folder and replaced whole on each change; a token is
//! shown once, when it is made, and never stored.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// What a token may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read apps, plans, rollouts, events and services.
    Read,
    /// Also apply and delete specs, plan, and control rollouts.
    Deploy,
    /// Everything.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Read, Scope::Deploy, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One token, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// A short name for people (`ccd-` and the hash's first characters).
    pub id: String,
    /// The token's SHA-256, hex.
    pub sha256: String,
    pub scope: Scope,
    /// App name prefixes the token is limited to; empty: every app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// Who a request comes from: what its token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub scope: Scope,
    pub apps: Vec<String>,
}

impl Caller {
    /// Whether the token reaches `app`.
    pub fn reaches(&self, app: &str) -> bool {
        self.apps.is_empty() || self.apps.iter().any(|p| app.starts_with(p.as_str()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a token file ({source}); if it was edited by hand, restore it, or remove it and make new tokens"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness for a token: {0}")]
    Random(String),
    #[error("--apps {0:?}: an app name prefix is lowercase letters, digits and '-'")]
    Prefix(String),
}

/// The tokens of one API, read from their file and kept in memory.
#[derive(Debug)]
pub struct Tokens {
    file: PathBuf,
    records: RwLock<Vec<TokenRecord>>,
}

impl Tokens {
    /// The tokens kept in `file` (none yet when it does not exist).
    pub fn open(file: &Path) -> Result<Tokens, TokenError> {
        Ok(Tokens {
            file: file.to_owned(),
            records: RwLock::new(read(file)?),
        })
    }

    /// Makes a token and keeps its hash; the token itself is returned once.
    pub fn create(&self, scope: Scope, apps: &[String]) -> Result<String, TokenError> {
        if let Some(bad) = apps.iter().find(|p| !valid_prefix(p)) {
            return Err(TokenError::Prefix(bad.clone()));
        }
        let secret =
            ccd_services::password::generate().map_err(|e| TokenError::Random(e.to_string()))?;
        let token = format!("ccd_{secret}");
        let sha256 = ccd_services::password::sha256_hex(&token);
        let record = TokenRecord {
            id: format!("ccd-{}", &sha256[..8]),
            sha256,
            scope,
            apps: apps.to_vec(),
            created: jiff::Timestamp::try_from(ccd_clock::wall())
                .map(|t| t.to_string())
                .unwrap_or_default(),
        };
        let mut records = self
            .records
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another process (`ccd token create`) may have added one meanwhile.
        let mut kept = read(&self.file)?;
        kept.push(record);
        write(&self.file, &kept)?;
        *records = kept;
        Ok(token)
    }

    /// The caller a presented token is, if it is one of ours. The file is
    /// read again when the token is unknown, so that one made by `ccd token
    /// create` in another process works at once.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let sha256 = ccd_services::password::sha256_hex(token);
        let find = |records: &[TokenRecord]| {
            records.iter().find(|r| r.sha256 == sha256).map(|r| Caller {
                id: r.id.clone(),
                scope: r.scope,
                apps: r.apps.clone(),
            })
        };
        let known = find(
            &self
                .records
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        known.or_else(|| {
            let fresh = read(&self.file).ok()?;
            let caller = find(&fresh);
            if caller.is_some() {
                *self
                    .records
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            }
            caller
        })
    }
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= ccd_spec::MAX_APP_NAME
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn read(file: &Path) -> Result<Vec<TokenRecord>, TokenError> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TokenError::Parse {
            path: file.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(TokenError::Read {
            path: file.to_owned(),
            source,
        }),
    }
}

fn write(file: &Path, records: &[TokenRecord]) -> Result<(), TokenError> {
    let error = |source| TokenError::Write {
        path: file.to_owned(),
        source,
    };
    if let Some(dir) = file.parent() {
        ccd_services::private::dir(dir).map_err(error)?;
    }
    let text = serde_json::to_vec_pretty(records).map_err(|e| error(std::io::Error::other(e)))?;
    ccd_services::private::write(file, text).map_err(error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_is_kept_as_its_hash_and_known_by_another_process() {
        let dir = std::env::temp_dir().join(format!("ccd-api-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("api/tokens.json");
        let tokens = Tokens::open(&file).unwrap();
        let admin = tokens.create(Scope::Admin, &[]).unwrap();
        let kept = std::fs::read_to_string(&file).unwrap();
        assert!(!kept.contains(&admin), "never the token itself");
        assert_eq!(tokens.caller(&admin).unwrap().scope, Scope::Admin);
        assert!(tokens.caller("ccd_guess").is_none());
        // Made elsewhere: known at once.
        let other = Tokens::open(&file).unwrap();
        let reader = other.create(Scope::Read, &["web-".to_owned()]).unwrap();
        let caller = tokens.caller(&reader).unwrap();
        assert_eq!(caller.scope, Scope::Read);
        assert!(caller.reaches("web-shop") && !caller.reaches("api"));
        assert!(tokens.caller(&admin).is_some(), "the first one still works");
        assert!(matches!(
            tokens.create(Scope::Read, &["Web".to_owned()]),
            Err(TokenError::Prefix(_))
        ));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(Scope::Read < Scope::Deploy && Scope::Deploy < Scope::Admin);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
