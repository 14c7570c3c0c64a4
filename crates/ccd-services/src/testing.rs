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
#[allow(clippy::panic, clippy::expect_used)] // test support fails loudly
pub fn redis_server() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scripts/redis.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg("bin")
        .output()
        .expect("bash runs tests/scripts/redis.sh");
    assert!(
        out.status.success(),
        "tests/scripts/redis.sh could not provide redis-server: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
