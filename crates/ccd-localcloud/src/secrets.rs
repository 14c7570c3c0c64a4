//! Secret Manager, emulated from files. A template names the secrets its
//! instances need in the metadata item `ccd-secrets`, references only:
//!
//! ```json
//! {"DB_PASSWORD": "projects/p/secrets/db-password/versions/latest"}
//! ```
//!
//! On Compute Engine the startup script reads them from Secret Manager at
//! boot; here the value of `NAME` is the file `DIR/secrets/NAME`, and a
//! numbered version `N` is `DIR/secrets/NAME@N` when that file exists (else
//! `NAME` too). The project is not part of the path: one local cloud, one
//! folder. Trailing newlines are dropped (as the startup script's shell
//! does); a value must be one line of UTF-8 text. A local cloud without a
//! data folder has no secrets. Values are never logged nor stored. An
//! instance running as an account made through the local IAM reads only
//! the secrets it is granted (`crate::iam::secret_access`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ccd_wire::secrets::{SecretRefs, SecretVersion};
use serde_json::Value;

/// The item; its shape is `ccd_wire::secrets`'s, shared with the adapter that writes it.
pub use ccd_wire::secrets::METADATA_KEY;

/// Secret Manager's limit on a version's size.
const MAX_BYTES: u64 = 64 * 1024;

/// Creates `DIR/secrets`, readable by its owner only, so that there is a
/// place to put values; an existing folder is left as it is.
pub fn prepare(data_dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = data_dir.join("secrets");
    if !dir.exists() {
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    }
    Ok(dir)
}

/// One secret version an instance needs, as `ENV` ← `projects/P/secrets/NAME/versions/V`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub env: String,
    /// The project named in the reference, whose IAM policy decides access.
    pub project: String,
    pub secret: String,
    pub version: String,
}

impl Reference {
    fn of(env: String, version: SecretVersion) -> Self {
        Reference {
            env,
            project: version.project,
            secret: version.secret,
            version: version.version,
        }
    }

    /// The files that may hold this version, in the order they are tried.
    pub fn files(&self, dir: &Path) -> Vec<PathBuf> {
        let latest = dir.join(&self.secret);
        if self.version == "latest" {
            vec![latest]
        } else {
            vec![
                dir.join(format!("{}@{}", self.secret, self.version)),
                latest,
            ]
        }
    }
}

/// Secret Manager's rule for a secret's name, which here becomes a file
/// name: nothing that could leave the folder.
pub fn valid_name(secret: &str) -> bool {
    ccd_wire::secrets::valid_secret_name(secret)
}

/// Whether `dir` holds the secret `name`: its file, or a numbered version's.
pub fn exists(dir: &Path, name: &str) -> bool {
    if !valid_name(name) {
        return false;
    }
    if dir.join(name).exists() {
        return true;
    }
    let versioned = |file: &str| {
        file.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('@'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(versioned))
    })
}

/// The references of a template (or of a standalone instance's metadata
/// wrapped as one); none without the item.
pub fn of_template(template: &Value) -> Result<Vec<Reference>, String> {
    let item = template
        .pointer("/properties/metadata/items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|i| i["key"] == METADATA_KEY);
    let Some(item) = item else {
        return Ok(Vec::new());
    };
    let refs =
        SecretRefs::parse(item["value"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    Ok(refs
        .0
        .into_iter()
        .map(|(env, version)| Reference::of(env, version))
        .collect())
}

/// The values of `refs`, from `dir` (`None`: a local cloud without a data
/// folder), each first allowed by `may_read` (the instance's account's IAM
/// grants). An error has one line per secret that cannot be read, each
/// naming the file and how to create it, or the grant missing; never a value.
pub fn resolve(
    dir: Option<&Path>,
    refs: &[Reference],
    may_read: impl Fn(&Reference) -> Result<(), String>,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for r in refs {
        let what = format!("secret {} (version {}) for {}", r.secret, r.version, r.env);
        let Some(dir) = dir else {
            problems.push(format!(
                "{what}: this local cloud keeps nothing on disk, so it has no secrets; start it with a data folder (--data DIR) and write the value to DIR/secrets/{}",
                r.secret
            ));
            continue;
        };
        // Access is decided before the value is looked for, as Secret
        // Manager answers PERMISSION_DENIED before NOT_FOUND.
        if let Err(why) = may_read(r) {
            problems.push(format!("{what}: {why}"));
            continue;
        }
        match read(&r.files(dir)) {
            Ok(value) => {
                values.insert(r.env.clone(), value);
            }
            Err(why) => problems.push(format!("{what}: {why}")),
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// The first of `files` that exists, as one line of text.
fn read(files: &[PathBuf]) -> Result<String, String> {
    let Some(path) = files.iter().find(|p| p.exists()) else {
        let tried: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        let first = tried.first().cloned().unwrap_or_default();
        return Err(format!(
            "{} does not exist; create it holding the value, e.g. `printf '%s' VALUE > {first} && chmod 600 {first}`",
            tried.join(" nor ")
        ));
    };
    let shown = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "{shown} is larger than Secret Manager's 64 KiB limit"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{shown} is not UTF-8 text, which an environment variable needs"))?;
    let value = text.trim_end_matches('\n');
    if value.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "{shown} has more than one line (or a NUL byte); an environment variable holds one line (trailing newlines are dropped)"
        ));
    }
    Ok(value.to_owned())
}

/// The `$(ENV)` of a secret in a command line would put its value where
/// every user of the machine can read it: refused, as the cloud's startup
/// script never does it either.
pub fn check_not_expanded<'a>(
    refs: &[Reference],
    words: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    for word in words {
        if let Some(r) = refs
            .iter()
            .find(|r| word.contains(&format!("$({})", r.env)))
        {
            return Err(format!(
                "the command line uses $({}), a secret: its value would be visible to every user of the machine; let the program read {} from its environment",
                r.env, r.env
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ccd-localcloud-secrets-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The references of a template whose `ccd-secrets` holds `env` → `resource`.
    fn refs_of(env: &str, resource: &str) -> Result<Vec<Reference>, String> {
        let value = serde_json::json!({ env: resource }).to_string();
        of_template(&serde_json::json!({"properties": {"metadata": {"items": [
            {"key": METADATA_KEY, "value": value}
        ]}}}))
    }

    fn reference(env: &str, secret: &str, version: &str) -> Reference {
        let mut refs = refs_of(
            env,
            &format!("projects/p/secrets/{secret}/versions/{version}"),
        )
        .unwrap();
        refs.pop().unwrap()
    }

    #[test]
    fn versions_are_files_with_latest_as_the_fallback() {
        let dir = scratch("files");
        std::fs::write(dir.join("db"), "latest-value\n").unwrap();
        std::fs::write(dir.join("db@2"), "second").unwrap();
        let refs = [
            reference("LATEST", "db", "latest"),
            reference("PINNED", "db", "2"),
            reference("UNPINNED", "db", "7"),
        ];
        let values = resolve(Some(&dir), &refs, |_| Ok(())).unwrap();
        assert_eq!(
            values["LATEST"], "latest-value",
            "the trailing newline goes"
        );
        assert_eq!(values["PINNED"], "second");
        assert_eq!(values["UNPINNED"], "latest-value");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn what_cannot_be_read_is_named_with_its_file_never_its_value() {
        let dir = scratch("missing");
        std::fs::write(dir.join("multi"), "top-secret\nsecond line").unwrap();
        std::fs::write(dir.join("binary"), [0xff, 0xfe]).unwrap();
        std::fs::create_dir(dir.join("folder")).unwrap();
        std::fs::write(dir.join("ok"), "fine").unwrap();
        let refs = [
            reference("A", "absent", "latest"),
            reference("B", "absent", "3"),
            reference("C", "multi", "latest"),
            reference("D", "binary", "latest"),
            reference("E", "folder", "latest"),
            reference("F", "ok", "latest"),
        ];
        let problems = resolve(Some(&dir), &refs, |_| Ok(())).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        let absent = dir.join("absent").display().to_string();
        assert_eq!(
            problems[0],
            format!(
                "secret absent (version latest) for A: {absent} does not exist; create it holding the value, e.g. `printf '%s' VALUE > {absent} && chmod 600 {absent}`"
            )
        );
        assert!(
            problems[1].contains(&format!("{absent}@3 nor {absent} does not exist")),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].contains("has more than one line"),
            "{}",
            problems[2]
        );
        assert!(problems[3].contains("is not UTF-8"), "{}", problems[3]);
        assert!(
            problems[4].starts_with("secret folder (version latest) for E: cannot read "),
            "{}",
            problems[4]
        );
        assert!(
            problems
                .iter()
                .all(|p| !p.contains("top-secret") && !p.contains("fine"))
        );
        let none = resolve(None, &refs[5..], |_| Ok(())).unwrap_err();
        assert!(none[0].contains("keeps nothing on disk"), "{none:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn references_come_from_the_template_and_stay_in_their_folder() {
        let template = serde_json::json!({"properties": {"metadata": {"items": [
            {"key": "ccd-secrets", "value": r#"{"DB": "projects/p/secrets/db/versions/latest", "K": "projects/p/secrets/k/versions/12"}"#}
        ]}}});
        let refs = of_template(&template).unwrap();
        assert_eq!(
            refs,
            vec![reference("DB", "db", "latest"), reference("K", "k", "12")]
        );
        assert_eq!(
            of_template(&serde_json::json!({"properties": {}})).unwrap(),
            vec![]
        );
        for bad in [
            "projects/p/secrets/../versions/latest",
            "projects/p/secrets/a/b/versions/latest",
            "projects/p/secrets/db/versions/0",
            "projects/p/secrets/db",
            "secrets/db/versions/latest",
        ] {
            assert!(refs_of("DB", bad).is_err(), "{bad}");
        }
        assert!(refs_of("A=B", "projects/p/secrets/db/versions/latest").is_err());
    }

    #[test]
    fn secrets_stay_off_command_lines() {
        let refs = [reference("DB", "db", "latest")];
        let ok = [
            "--port".to_owned(),
            "$(PORT)".to_owned(),
            "$(DBX)".to_owned(),
        ];
        assert_eq!(check_not_expanded(&refs, &ok), Ok(()));
        let leak = ["--password=$(DB)".to_owned()];
        assert!(check_not_expanded(&refs, &leak).is_err());
    }
}
