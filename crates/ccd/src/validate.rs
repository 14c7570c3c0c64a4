//! `ccd validate`: every problem in every file, located, then a summary.
#![allow(clippy::print_stdout, clippy::print_stderr)] // this module is the command's output

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ccd_spec::{App, Expose, Location, Problem, Strategy};

pub fn run(paths: &[PathBuf]) -> ExitCode {
    let mut files = Vec::new();
    let mut failed = false;
    for path in paths {
        match expand(path) {
            Ok(found) => files.extend(found),
            Err(message) => {
                println!("{}: {message}", path.display());
                failed = true;
            }
        }
    }
    let mut problems = 0;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        let shown = file.display().to_string();
        let result = match std::fs::read(file) {
            Ok(bytes) => ccd_spec::parse_bytes(&bytes).map_err(|p| p.0),
            Err(e) => {
                println!("{shown}: cannot read: {e}");
                failed = true;
                continue;
            }
        };
        let result = result.and_then(|app| match names.get(&app.metadata.name) {
            Some(first) => Err(vec![Problem::new(
                Location { line: 1, column: 1 },
                "metadata.name",
                format!(
                    "{:?} is already the name of the app in {first}; app names must be unique",
                    app.metadata.name
                ),
            )]),
            None => {
                names.insert(app.metadata.name.clone(), shown.clone());
                Ok(app)
            }
        });
        match result {
            Ok(app) => println!("{shown}: ok: {}", summary(&app)),
            Err(found) => {
                failed = true;
                problems += found.len();
                for p in &found {
                    println!("{}", p.display_in(&shown));
                }
            }
        }
    }
    eprintln!(
        "{} file(s) checked, {} problem(s){}",
        files.len(),
        problems,
        if failed { "" } else { ", all valid" }
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A file as given, or the spec files directly inside a folder, sorted.
fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(path).map_err(|e| format!("cannot list: {e}"))?;
    for entry in entries {
        let p = entry.map_err(|e| format!("cannot list: {e}"))?.path();
        if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err("no .yaml or .yml files in this folder".to_owned());
    }
    Ok(out)
}

fn summary(app: &App) -> String {
    let s = &app.spec;
    let strategy = match s.rollout.strategy {
        Strategy::Rolling => "rolling",
        Strategy::BlueGreen => "blue/green",
        Strategy::Canary => "canary",
    };
    let exposure = match &s.expose {
        Expose {
            external: Some(e), ..
        } => format!("https://{}", e.https.domains.join(", https://")),
        Expose {
            internal: Some(_), ..
        } => "internal load balancer".to_owned(),
        _ => "not exposed".to_owned(),
    };
    format!(
        "app {} version {}, {}-{} instances, {strategy} rollout, {exposure}",
        app.metadata.name, s.version, s.replicas.min, s.replicas.max
    )
}
