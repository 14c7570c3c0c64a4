//! The short fuzz run inside `make test`: every target over its committed
//! corpus and a fixed set of mutations of it (the same on every run).
//! `make fuzz` runs the same targets coverage-guided for longer.

use ccd_fuzz::{TARGETS, short_run};

fn run(name: &str, mutations: usize) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let ran = short_run(target, mutations, 0x5eed_ccd0)
        .unwrap_or_else(|e| panic!("cannot read the {name} corpus: {e}"));
    assert!(ran > mutations, "the {name} corpus is empty");
}

#[test]
fn spec() {
    run("spec", 20_000);
}

#[cfg(feature = "status")]
#[test]
fn status() {
    run("status", 20_000);
}

#[test]
fn front_door() {
    run("front_door", 30_000);
}
