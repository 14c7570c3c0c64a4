//! Fuzz targets: each takes arbitrary bytes and panics only when a property a
//! user relies on breaks. `fuzz/` (cargo-fuzz, libFuzzer, nightly) runs them
//! coverage-guided for `make fuzz`; [`short_run`] replays the committed
//! corpus and a fixed number of mutations of it on the stable toolchain, the
//! short run inside `make test`.
#![allow(clippy::panic)] // a fuzz target reports a broken property by panicking

mod front_door;
mod mutate;
mod targets;

pub use mutate::Mutator;
pub use targets::{TARGETS, Target};

use std::path::{Path, PathBuf};

/// Runs the target called `name` on `input` (what cargo-fuzz's targets call).
pub fn run(name: &str, input: &[u8]) {
    match TARGETS.iter().find(|t| t.name == name) {
        Some(target) => (target.run)(input),
        None => panic!("no fuzz target {name}"),
    }
}

/// `fuzz/corpus/<target>` in the repository.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// The committed corpus of `target`, sorted by file name.
pub fn corpus(target: &str) -> std::io::Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    files.iter().map(std::fs::read).collect()
}

/// Runs `target` on every corpus input, then on `mutations` inputs derived
/// from them with a seeded [`Mutator`] (the same inputs on every run).
/// Returns how many inputs ran.
pub fn short_run(target: &Target, mutations: usize, seed: u64) -> std::io::Result<usize> {
    let seeds = corpus(target.name)?;
    for input in &seeds {
        (target.run)(input);
    }
    let mut mutator = Mutator::new(seed, target.dictionary);
    for _ in 0..mutations {
        let input = mutator.next_input(&seeds);
        (target.run)(&input);
    }
    Ok(seeds.len() + mutations)
}
