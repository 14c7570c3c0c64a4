//! The `ccd` binary as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ccd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccd"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_example_validates() {
    let examples: Vec<String> = std::fs::read_dir(repo().join("specs/examples"))
        .unwrap()
        .map(|e| {
            format!(
                "specs/examples/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    assert!(examples.len() >= 5);
    let args: Vec<&str> = std::iter::once("validate")
        .chain(examples.iter().map(String::as_str))
        .collect();
    let out = ccd(&args);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.contains(": ok: app "))
            .count(),
        examples.len()
    );
}

#[test]
fn five_mistakes_give_five_located_messages_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("ccd-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: ccd/v1\nkind: App\nmetadata: {name: My_App}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 8080\n  replicas: {min: 4, max: 2}\n  health: {http: {path: /healthz}, interval: 5 seconds}\n  expose:\n    external:\n      https: {domains: []}\n      allowFrom: [10.0.0.0/40]\n",
    )
    .unwrap();
    let shown = file.display().to_string();
    let out = ccd(&["validate", &shown]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let expected_places = [
        ("3:18:", "metadata.name"),
        ("8:27:", "spec.replicas.max"),
        ("9:46:", "spec.health.interval"),
        ("12:24:", "spec.expose.external.https.domains"),
        ("13:19:", "spec.expose.external.allowFrom[0]"),
    ];
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for (line, (place, field)) in lines.iter().zip(expected_places) {
        assert!(
            line.starts_with(&format!("{shown}:{place} {field}: ")),
            "{line}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_missing_file_fails_clearly() {
    let out = ccd(&["validate", "specs/examples/does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("does-not-exist.yaml: cannot read"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn duplicate_app_names_across_files_are_refused() {
    let out = ccd(&[
        "validate",
        "specs/examples/hello.yaml",
        "specs/examples/hello.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("is already the name of the app in specs/examples/hello.yaml"));
}

#[test]
fn schema_output_equals_the_committed_schema() {
    let out = ccd(&["schema"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo().join("specs/schema/app.v1.json")).unwrap();
    assert!(
        stdout(&out) == committed,
        "specs/schema/app.v1.json is stale; regenerate it with `cargo run -p ccd -- schema > specs/schema/app.v1.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(schema["properties"]["apiVersion"]["const"], "ccd/v1");
}
