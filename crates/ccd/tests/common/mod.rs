//! Shared by the `ccd` command's tests.

use std::path::Path;
use std::process::Command;

/// Runs `git -C repo ARGS` as a fixed author with a `main` default branch
/// and no signing, whatever the user's git configuration says; its trimmed
/// output. Panics with git's message when it fails.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("git {args:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
