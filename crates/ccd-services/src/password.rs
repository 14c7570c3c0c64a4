//! Passwords ccd makes for an app's accounts: 32 random bytes from the
//! kernel, as hex (safe in URLs and connection strings). A provider that can
//! keep a hash instead (Redis ACLs) is only ever given [`sha256_hex`].

use std::io::Read as _;

use sha2::{Digest as _, Sha256};

/// A new password; the kernel's randomness or an error.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// SHA-256 of the password, lowercase hex: what Redis's `#<hash>` rule takes.
pub fn sha256_hex(password: &str) -> String {
    hex(&Sha256::digest(password.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_new_each_time_and_hashed_as_redis_expects() {
        let (a, b) = (
            generate().unwrap_or_default(),
            generate().unwrap_or_default(),
        );
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        // `echo -n hello | sha256sum`
        assert_eq!(
            sha256_hex("hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }
}
