//! The embedded contract is exactly what `tools/trim.py` makes from Google's
//! document, so nobody hand-edits it and it can be regenerated for a new revision.

use std::path::Path;
use std::process::Command;

#[test]
fn embedded_file_equals_trim_output() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The reference lives beside the repository (../shared from its root).
    let source = crate_dir.join("../../../shared/reference/discovery-compute.v1.json");
    if !source.exists() {
        println!("note: skipped, {} is not present", source.display());
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        println!("note: skipped, python3 is not available");
        return;
    }
    let output = Command::new("python3")
        .arg(crate_dir.join("tools/trim.py"))
        .arg(&source)
        .arg("-")
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!("running trim.py: {e}"),
    };
    assert!(
        output.status.success(),
        "trim.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let embedded = match std::fs::read(crate_dir.join("data/compute-v1.json")) {
        Ok(bytes) => bytes,
        Err(e) => panic!("reading data/compute-v1.json: {e}"),
    };
    assert!(
        output.stdout == embedded,
        "data/compute-v1.json is stale or edited by hand: run tools/trim.py {}",
        source.display()
    );
}
