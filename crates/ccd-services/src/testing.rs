//! For tests (here and end to end), behind the `test-support` feature: the
//! servers the services need, installed by the project's scripts when
//! missing.

use std::path::{Path, PathBuf};

/// redis-server's path (Redis 7), installed by `tests/scripts/redis.sh`
/// (Debian's package) when missing.
///
/// # Panics
/// When it cannot be provided, with the script's message: a test cannot run
/// without it.
pub fn redis_server() -> PathBuf {
    provided("redis.sh", "redis-server")
}

/// fake-gcs-server's path, installed by `tests/scripts/fake-gcs.sh` (PyPI's
/// wrapper, into the tools folder `ccd up` looks in) when missing.
///
/// # Panics
/// As [`redis_server`].
pub fn fake_gcs_server() -> PathBuf {
    provided("fake-gcs.sh", "fake-gcs-server")
}

/// `tests/scripts/<script> bin`: installs `what` when missing, prints its path.
#[allow(clippy::panic, clippy::expect_used)] // test support fails loudly
fn provided(script: &str, what: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scripts")
        .join(script);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("bin")
        .output()
        .expect("bash runs the script");
    assert!(
        out.status.success(),
        "{} could not provide {what}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
