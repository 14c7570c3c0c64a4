#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A status written to the folder store survives a power cut: the file and
//! its folder are synced before the write returns. Checked by watching the
//! system calls of a child process that writes one status (strace, from
//! `tests/scripts/need.sh`), since a test cannot pull the plug.

use std::path::Path;
use std::process::Command;

use ccd_store::{FolderStore, SpecStore};

const CHILD: &str = "CCD_DURABILITY_CHILD_DIR";

/// In the child: one status write, nothing else.
#[tokio::test]
async fn child_writes_one_status() {
    let Ok(dir) = std::env::var(CHILD) else {
        return; // only meaningful under the parent below
    };
    let store = FolderStore::new(&dir).unwrap();
    assert!(store.write_status("web", b"phase: Ready\n").await.unwrap());
}

#[test]
fn a_status_write_syncs_the_file_and_its_folder() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scripts/need.sh");
    let found = Command::new("bash")
        .arg(&script)
        .arg("strace")
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{} could not provide strace: {}",
        script.display(),
        String::from_utf8_lossy(&found.stderr)
    );
    let strace = String::from_utf8(found.stdout).unwrap().trim().to_owned();

    let dir = tempfile::tempdir().unwrap();
    FolderStore::new(dir.path()).unwrap(); // folders made outside the trace
    let trace = dir.path().join("trace");
    let run = Command::new(strace)
        .args(["-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_writes_one_status", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(dir.path().join("status/web.yaml").exists());

    // With -y, strace names each descriptor's file: `fsync(7</tmp/x/status/web.yaml#1>)`.
    let calls = std::fs::read_to_string(&trace).unwrap();
    let synced: Vec<&str> = calls.lines().filter(|l| l.contains("sync(")).collect();
    let status_dir = std::fs::canonicalize(dir.path().join("status")).unwrap();
    let status_dir = status_dir.display().to_string();
    assert!(
        synced
            .iter()
            .any(|l| l.contains(&format!("{status_dir}/web.yaml"))),
        "the status file itself was not synced; calls:\n{calls}"
    );
    assert!(
        synced
            .iter()
            .any(|l| l.contains(&format!("<{status_dir}>"))),
        "the status folder (the rename) was not synced; calls:\n{calls}"
    );
}
