//! `ccd-secrets`: the secret versions an instance reads into its environment, by reference
//! only, never a value:
//!
//! ```json
//! {"DB_PASSWORD":"projects/p/secrets/db-password/versions/latest"}
//! ```
//!
//! On Compute Engine the startup script reads them from Secret Manager; the local cloud reads
//! them from files. The names follow Secret Manager's and the shell's rules, checked here for
//! both sides: a reference can neither break a line of an env file nor name a file outside
//! the secrets folder.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use crate::WireError;

/// The metadata item's key.
pub const METADATA_KEY: &str = "ccd-secrets";

/// A secret version by its resource name, `projects/{project}/secrets/{secret}/versions/{version}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretVersion {
    pub project: String,
    pub secret: String,
    /// `latest` or a version number.
    pub version: String,
}

impl SecretVersion {
    /// Secret Manager's resource name.
    pub fn resource(&self) -> String {
        self.to_string()
    }

    /// A resource name, checked: a valid secret name and version, a project.
    pub fn parse(resource: &str) -> Result<Self, WireError> {
        let bad = || {
            WireError(format!(
                "{resource:?} is not projects/PROJECT/secrets/NAME/versions/(latest|N)"
            ))
        };
        let parts: Vec<&str> = resource.split('/').collect();
        let ["projects", project, "secrets", secret, "versions", version] = parts.as_slice() else {
            return Err(bad());
        };
        if project.is_empty() || !valid_secret_name(secret) || !valid_version(version) {
            return Err(bad());
        }
        Ok(Self {
            project: (*project).to_owned(),
            secret: (*secret).to_owned(),
            version: (*version).to_owned(),
        })
    }
}

impl fmt::Display for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "projects/{}/secrets/{}/versions/{}",
            self.project, self.secret, self.version
        )
    }
}

impl Serialize for SecretVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The `ccd-secrets` item: environment variable name → secret version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SecretRefs(pub BTreeMap<String, SecretVersion>);

impl SecretRefs {
    /// The item's value as the adapter writes it: a compact JSON object.
    pub fn to_metadata_value(&self) -> String {
        // A map of strings: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The item's value as the local cloud reads it, every name and reference checked.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let raw: BTreeMap<String, String> = serde_json::from_str(text).map_err(|e| {
            WireError(format!(
                "{METADATA_KEY}: not a JSON object of names to secret versions: {e}"
            ))
        })?;
        let mut refs = BTreeMap::new();
        for (env, resource) in raw {
            if !valid_env_name(&env) {
                return Err(WireError(format!(
                    "{METADATA_KEY}: {env:?} is not an environment variable name"
                )));
            }
            let version = SecretVersion::parse(&resource)
                .map_err(|e| WireError(format!("{METADATA_KEY}: {env}: {e}")))?;
            refs.insert(env, version);
        }
        Ok(Self(refs))
    }
}

/// A name an env file line and a shell can carry: a letter or `_`, then letters, digits, `_`.
pub fn valid_env_name(env: &str) -> bool {
    env.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Secret Manager's rule for a secret's name (which the local cloud makes a file name):
/// 1 to 255 letters, digits, `_` and `-`, so nothing that could leave a folder.
pub fn valid_secret_name(secret: &str) -> bool {
    (1..=255).contains(&secret.len())
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `latest` or a version number (no leading zero, at most 10 digits).
pub fn valid_version(version: &str) -> bool {
    version == "latest"
        || (version.starts_with(|c: char| ('1'..='9').contains(&c))
            && version.len() <= 10
            && version.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn version(secret: &str, version: &str) -> SecretVersion {
        SecretVersion {
            project: "p".into(),
            secret: secret.into(),
            version: version.into(),
        }
    }

    fn refs() -> SecretRefs {
        SecretRefs(BTreeMap::from([
            ("DB_PASSWORD".into(), version("db-password", "latest")),
            ("API_KEY".into(), version("api_key", "3")),
        ]))
    }

    #[test]
    fn round_trips() {
        assert_eq!(
            SecretRefs::parse(&refs().to_metadata_value()).unwrap(),
            refs()
        );
        let one = version("db", "12");
        assert_eq!(SecretVersion::parse(&one.resource()).unwrap(), one);
    }

    /// The exact text both ways (see `local_run`'s test of the same name).
    #[test]
    fn the_text_on_the_wire_is_fixed() {
        let text = r#"{"API_KEY":"projects/p/secrets/api_key/versions/3","DB_PASSWORD":"projects/p/secrets/db-password/versions/latest"}"#;
        assert_eq!(refs().to_metadata_value(), text);
        assert_eq!(SecretRefs::parse(text).unwrap(), refs());
    }

    #[test]
    fn refuses_references_that_could_escape_or_break_a_line() {
        for bad in [
            "projects/p/secrets/../versions/latest",
            "projects/p/secrets/a/b/versions/latest",
            "projects/p/secrets/db/versions/0",
            "projects/p/secrets/db/versions/01",
            "projects//secrets/db/versions/latest",
            "projects/p/secrets/db",
            "secrets/db/versions/latest",
        ] {
            let e = SecretVersion::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("is not projects/PROJECT/secrets/NAME"),
                "{bad}: {e}"
            );
        }
        let e = SecretRefs::parse(r#"{"A=B": "projects/p/secrets/db/versions/latest"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"ccd-secrets: "A=B" is not an environment variable name"#
        );
        let e = SecretRefs::parse(r#"{"DB": "db"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ccd-secrets: DB: \"db\" is not"), "{e}");
        let e = SecretRefs::parse("[]").unwrap_err().to_string();
        assert!(e.contains("not a JSON object of names"), "{e}");
    }
}
