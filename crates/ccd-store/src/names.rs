//! Which file names are specs, which app names the store accepts, and spec versions.

use sha2::{Digest, Sha256};

use crate::StoreError;

/// Folder (or key prefix) of the spec files.
pub(crate) const SPECS_DIR: &str = "specs";
/// Folder (or key prefix) of the status files.
pub(crate) const STATUS_DIR: &str = "status";
/// Folder (or key prefix) of the operators' control files.
pub(crate) const CONTROLS_DIR: &str = "controls";
pub(crate) const SCALING_DIR: &str = "scaling";
/// The sync marker's file name inside `specs/`: a dotfile without a `.yaml` extension, so
/// listings, `ccd validate` and the spec watchers never take it for a spec, while the spec
/// folder's own watch and poll see it change at no extra cost.
pub(crate) const MARKER_FILE: &str = ".ccd-sync";

/// Longest app name in bytes; far above the spec's own limit, it only keeps paths sane.
const MAX_NAME_BYTES: usize = 128;

/// What a file name directly under `specs/` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SpecName {
    /// Not a spec: another extension, a dotfile, an editor's swap or backup file.
    Ignored,
    /// A spec for this app.
    App(String),
    /// Looks like a spec, but its stem is not a name the store supports.
    Invalid(String, &'static str),
}

/// Classifies a file name found directly under `specs/`.
///
/// Editors' leftovers never end in `.yaml`/`.yml` except dotfiles (`.hello.yaml.swp` ends in
/// `.swp`; vim's `.hello.yaml` backups, emacs' `.#hello.yaml` locks start with a dot), so the
/// extension plus "no leading dot" is the whole filter. Only lowercase extensions count, as
/// `ccd validate` does.
pub(crate) fn classify(file_name: &str) -> SpecName {
    if file_name.starts_with('.') {
        return SpecName::Ignored;
    }
    let stem = match file_name
        .strip_suffix(".yaml")
        .or_else(|| file_name.strip_suffix(".yml"))
    {
        Some(stem) => stem,
        None => return SpecName::Ignored,
    };
    match check_app_name(stem) {
        Ok(()) => SpecName::App(stem.to_owned()),
        Err(reason) => SpecName::Invalid(stem.to_owned(), reason),
    }
}

/// The app name a file under `specs/` defines, if it is a valid spec file name.
pub(crate) fn app_of(file_name: &str) -> Option<String> {
    match classify(file_name) {
        SpecName::App(name) => Some(name),
        _ => None,
    }
}

/// What a change under `specs/` hints: the app a spec file defines, or [`MARKER_FILE`] for
/// the sync marker (no app name starts with '.', so the two cannot be confused).
pub(crate) fn hint_of(file_name: &str) -> Option<String> {
    if file_name == MARKER_FILE {
        return Some(MARKER_FILE.to_owned());
    }
    app_of(file_name)
}

/// Accepts ASCII letters, digits, `-`, `_` and `.` (not leading), at most 128 bytes.
///
/// The spec itself requires a DNS label; the store's rule is looser so that a file named
/// `Hello.yaml` still reaches the spec validator and gets a precise message, and stricter
/// than "any file name" because object_store maps `%`, `#`, spaces and friends differently
/// for folders and buckets: refusing them keeps both backends agreeing on every name.
pub(crate) fn check_app_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("it is longer than 128 bytes");
    }
    if name.starts_with('.') {
        return Err("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("use only ASCII letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Checks an app name given by a caller.
pub(crate) fn app_name(name: &str) -> Result<(), StoreError> {
    check_app_name(name).map_err(|reason| StoreError::InvalidAppName {
        name: name.to_owned(),
        reason,
    })
}

/// A spec's version: the SHA-256 of its bytes, so it changes exactly when the content does.
pub(crate) fn version_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_spec_files_and_leftovers() {
        assert_eq!(classify("hello.yaml"), SpecName::App("hello".into()));
        assert_eq!(classify("hello.yml"), SpecName::App("hello".into()));
        assert_eq!(classify("a.b.yaml"), SpecName::App("a.b".into()));
        for ignored in [
            ".hello.yaml",
            ".hello.yaml.swp",
            ".#hello.yaml",
            "hello.yaml~",
            "#hello.yaml#",
            "hello.yaml#1",
            "hello.YAML",
            "hello.json",
            "README",
            "4913",
        ] {
            assert_eq!(classify(ignored), SpecName::Ignored, "{ignored}");
        }
        assert!(matches!(classify(".yaml"), SpecName::Ignored));
        assert!(matches!(classify("a b.yaml"), SpecName::Invalid(..)));
        assert!(matches!(classify("a%20.yaml"), SpecName::Invalid(..)));
        assert!(matches!(classify("é.yaml"), SpecName::Invalid(..)));
        assert!(matches!(classify("x.yaml.yaml"), SpecName::App(n) if n == "x.yaml"));
        assert_eq!(classify(MARKER_FILE), SpecName::Ignored);
    }

    #[test]
    fn hints_name_apps_or_the_marker() {
        assert_eq!(hint_of("web.yaml").as_deref(), Some("web"));
        assert_eq!(hint_of(".ccd-sync").as_deref(), Some(MARKER_FILE));
        assert_eq!(hint_of(".ccd-sync#1"), None);
        assert_eq!(hint_of("notes.txt"), None);
    }

    #[test]
    fn rejects_path_tricks() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "a\nb",
            &"x".repeat(129),
        ] {
            assert!(check_app_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_is_a_content_digest() {
        assert_eq!(
            version_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(version_of(b"a"), version_of(b"b"));
    }
}
