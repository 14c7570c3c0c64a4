//! The local cloud's bearer token: 32 random bytes as hex. With a data
//! folder it is kept in `DATA/token`, readable by its owner only, so that
//! every client of the same folder (ccd's adapter, scripts, curl) finds it
//! and a restart keeps it; without one, each start draws a fresh token.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The token's file name in the data folder.
pub const FILE: &str = "token";
/// Hex digits in a token (32 bytes).
const LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "{path} is readable by group or others (mode {mode:o}); the token in it lets anyone run commands as you: run `chmod 600 {path}` or delete it (a new one is made at the next start)"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "{path} does not hold a local cloud token (64 hexadecimal digits); delete it and the next start writes a new one"
    )]
    Malformed { path: PathBuf },
    #[error("cannot read or write the token file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw random bytes for the token: {0}")]
    Random(String),
}

/// A new random token.
pub fn fresh() -> Result<String, TokenError> {
    let mut bytes = [0u8; LEN / 2];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token kept in `dir`, made on first use. Returns it and its file.
pub fn load_or_create(dir: &Path) -> Result<(String, PathBuf), TokenError> {
    let path = dir.join(FILE);
    let io = |source| TokenError::Io {
        path: path.clone(),
        source,
    };
    match File::open(&path) {
        Ok(file) => return read(file, &path).map(|t| (t, path.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let token = fresh()?;
    // Written whole to a private temporary file, then linked into place:
    // a crash never leaves a half-written token, and link, unlike rename,
    // fails rather than replace a token another start made meanwhile.
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            tracing::info!(file = %path.display(), "wrote a new local cloud token");
            Ok((token, path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let file = File::open(&path).map_err(io)?;
            read(file, &path).map(|t| (t, path.clone()))
        }
        Err(e) => Err(io(e)),
    }
}

/// Reads and checks an open token file: private to its owner, one token.
fn read(file: File, path: &Path) -> Result<String, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(TokenError::Malformed {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    // A token file is 65 bytes; reading a little more tells a longer one.
    let read = file.take(LEN as u64 + 16).read_to_string(&mut text);
    let token = text.trim();
    match read {
        Ok(_) if token.len() == LEN && token.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(token.to_ascii_lowercase())
        }
        Ok(_) => Err(TokenError::Malformed {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(TokenError::Malformed {
            path: path.to_owned(),
        }),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ccd-token-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fresh_tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (fresh().unwrap(), fresh().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_token_file_is_made_private_once_and_read_back() {
        let dir = temp("keep");
        let (token, path) = load_or_create(&dir).unwrap();
        assert_eq!(path, dir.join("token"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&dir).unwrap().0, token);
        // Nothing else is left in the folder.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_exposed_or_malformed_file_is_refused_naming_it() {
        let dir = temp("bad");
        let path = dir.join("token");
        std::fs::write(&path, format!("{}\n", "a".repeat(64))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&dir).unwrap_err().to_string();
        assert!(
            e.contains("chmod 600") && e.contains(&path.display().to_string()),
            "{e}"
        );

        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            std::fs::write(&path, bad).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = load_or_create(&dir).unwrap_err();
            assert!(matches!(e, TokenError::Malformed { .. }), "{bad:?}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
