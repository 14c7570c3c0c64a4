//! `ccd status` and `ccd rollout status` read through the store: against a bucket on
//! fake-gcs-server (`--config`, `STORAGE_EMULATOR_HOST`), started by
//! `tests/scripts/fake-gcs.sh`, as a user runs them. No server, no pass: the test fails with
//! the script's message rather than skip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

mod common;

use common::git;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use tokio::time::Instant;

use ccd_store::{BucketConfig, BucketStore, SpecStore as _};

const BUCKET: &str = "ccd-status-test";
const PREFIX: &str = "env/dev";

/// A fake-gcs-server; the script execs it, so killing the child stops the server.
struct FakeGcs {
    child: Child,
    host: String,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FakeGcs {
    fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scripts/fake-gcs.sh");
        let mut child = Command::new("bash")
            .arg(script)
            .arg("start")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bash runs tests/scripts/fake-gcs.sh");
        let mut port = String::new();
        // The script prints the port first, or exits (closing stdout) with its message.
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut port);
        let fake = Self {
            child,
            host: format!("127.0.0.1:{}", port.trim()),
        };
        assert!(
            port.trim().parse::<u16>().is_ok(),
            "tests/scripts/fake-gcs.sh could not start fake-gcs-server (its message is above)"
        );
        fake
    }

    /// Creates a bucket through the JSON API, waiting for the server to answer.
    fn create_bucket(&self, name: &str) {
        let body = format!(r#"{{"name":"{name}"}}"#);
        let request = format!(
            "POST /storage/v1/b HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = std::net::TcpStream::connect(&self.host).and_then(|mut s| {
                s.write_all(request.as_bytes())?;
                let mut answer = String::new();
                s.read_to_string(&mut answer)?;
                Ok(answer)
            });
            match answer {
                Ok(a) if a.starts_with("HTTP/1.1 200") => return,
                other if Instant::now() > deadline => panic!("cannot create {name}: {other:?}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

fn ccd(args: &[&str], emulator: &str, dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccd"))
        .args(args)
        .current_dir(dir)
        .env("STORAGE_EMULATOR_HOST", emulator)
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccd-status-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(dir: &Path, file: &str, store: &str) {
    std::fs::write(
        dir.join(file),
        format!(r#"{{"store": "{store}", "project": "p", "region": "europe-west1"}}"#),
    )
    .unwrap();
}

#[test]
fn status_reads_a_bucket_through_the_controllers_configuration() {
    let fake = FakeGcs::start();
    fake.create_bucket(BUCKET);
    // What a controller would have written: the statuses (one app's spec is gone, which
    // changes nothing here), a scaling record, and an object a person broke.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint = format!("http://{}", fake.host);
        let store =
            BucketStore::new(BucketConfig::fake_gcs_server(&endpoint, BUCKET, PREFIX)).unwrap();
        let web = "app: web\nphase: Ready\nendpoints: [\"http://10.1.2.3\"]\n";
        store.write_status("web", web.as_bytes()).await.unwrap();
        let gone = "app: gone\nphase: Stalled\n";
        store.write_status("gone", gone.as_bytes()).await.unwrap();
        store
            .write_scaling("web", b"min: 1\nmax: 3\ntarget: CPU 60%\nsize: 2\n")
            .await
            .unwrap();
        store
            .write_status("broken", b"phase: [Ready\n")
            .await
            .unwrap();
    });
    let dir = scratch("bucket");
    config(&dir, "ccd.json", &format!("gs://{BUCKET}/{PREFIX}"));
    let host = fake.host.as_str();

    // Every app, as data: the broken one is a row saying so, and the command says it failed.
    let out = ccd(
        &["status", "--config", "ccd.json", "-o", "json"],
        host,
        &dir,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let apps: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["app"].as_str().unwrap(), r["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        apps,
        [
            ("broken", "Unreadable"),
            ("gone", "Stalled"),
            ("web", "Ready")
        ]
    );
    let object = format!("gs://{BUCKET}/{PREFIX}/status/broken.yaml");
    let problem = rows[0]["problems"][0].as_str().unwrap();
    assert!(
        problem.contains(&object) && problem.contains("writes it anew"),
        "{problem}"
    );
    assert!(stderr.contains(&object), "{stderr}");
    assert_eq!(rows[2]["endpoint"], "http://10.1.2.3");
    assert_eq!(rows[2]["scaling"]["size"], 2);
    assert!(rows[2].get("problems").is_none(), "{}", rows[2]);

    // One app, as the table.
    let out = ccd(&["status", "--config", "ccd.json", "web"], host, &dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("APP "), "{stdout}");
    assert!(
        lines[1].starts_with("web ")
            && lines[1].contains("Ready")
            && lines[1].contains("http://10.1.2.3"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("web: scaling: 2 instances"),
        "{stdout}"
    );

    // An app with no status names where it looked.
    let out = ccd(&["status", "--config", "ccd.json", "ghost"], host, &dir);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("no status for ghost in gs://{BUCKET}/{PREFIX}")),
        "{stderr}"
    );

    // `ccd rollout status` reads the same store.
    let out = ccd(
        &["rollout", "status", "web", "--config", "ccd.json"],
        host,
        &dir,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "web: no rollout yet\n");
    let out = ccd(
        &["rollout", "status", "broken", "--config", "ccd.json"],
        host,
        &dir,
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&object), "{stderr}");

    // A bucket that is not there: the listing fails, naming it and what to check.
    config(&dir, "missing.json", "gs://no-such-bucket/x");
    let out = ccd(&["status", "--config", "missing.json"], host, &dir);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("gs://no-such-bucket/x/status/")
            && stderr.contains("check that the bucket exists"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_folder_reads_as_before_and_errors_name_the_folder_or_file_and_the_fix() {
    let dir = scratch("folder");
    // `ccd up`'s data folder.
    for sub in ["specs", "status", "scaling"] {
        std::fs::create_dir_all(dir.join(".ccd").join(sub)).unwrap();
    }
    let status = dir.join(".ccd/status");
    std::fs::write(status.join("web.yaml"), "app: web\nphase: Ready\n").unwrap();
    std::fs::write(status.join("broken.yaml"), "phase: [Ready\n").unwrap();
    std::fs::write(status.join("web.yaml#2"), "a write's leftover").unwrap();
    let out = ccd(&["status", "-o", "json"], "", &dir);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["phase"], "Unreadable", "{rows}");
    assert_eq!(rows[1]["app"], "web", "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(
        stderr.contains("status/broken.yaml is not a status"),
        "{stderr}"
    );
    std::fs::remove_file(status.join("broken.yaml")).unwrap();
    let out = ccd(&["status", "--data", ".ccd", "-o", "yaml"], "", &dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "app: web\nphase: Ready\n");

    let out = ccd(&["status", "--data", "nowhere"], "", &dir);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("nowhere is not a folder") && stderr.contains("ccd up --data"),
        "{stderr}"
    );
    let out = ccd(&["status", "--config", "absent.json"], "", &dir);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read absent.json") && stderr.contains("ccd controller --config"),
        "{stderr}"
    );
    std::fs::write(dir.join("bad.json"), "{").unwrap();
    let out = ccd(&["status", "--config", "bad.json"], "", &dir);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("bad.json: not a controller configuration; write e.g."),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sync_puts_a_commit_into_a_bucket_with_its_marker() {
    let fake = FakeGcs::start();
    fake.create_bucket(BUCKET);
    let dir = scratch("sync");
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    git(&repo, &["init", "--quiet"]);
    let spec = "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: example/web:1\n  version: \"1\"\n  port: 8080\n";
    std::fs::write(repo.join("deploy/web.yaml"), spec).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "web"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let to = format!("gs://{BUCKET}/{PREFIX}");
    let args = ["sync", "repo", "--path", "deploy", "--to", to.as_str()];

    let out = ccd(&args, &fake.host, &dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("commit {commit} by Ada <ada@example.com>")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("-> {to}")), "{stdout}");
    assert!(
        stdout.contains("uploaded specs/web.yaml from deploy/web.yaml"),
        "{stdout}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let endpoint = format!("http://{}", fake.host);
    let store = BucketStore::new(BucketConfig::fake_gcs_server(&endpoint, BUCKET, PREFIX)).unwrap();
    let (web, marker) = runtime.block_on(async {
        (
            store.get_spec("web").await.unwrap().unwrap(),
            store.read_marker().await.unwrap().unwrap(),
        )
    });
    assert_eq!(web.bytes.as_ref(), spec.as_bytes());
    let read = ccd_sync::SyncMarker::parse(&marker.bytes).unwrap();
    assert_eq!(read.commit, commit);
    assert_eq!(
        read.origin("web", &web.version).unwrap().path,
        "deploy/web.yaml"
    );

    // Again: nothing to upload, and the marker keeps its generation.
    let out = ccd(&args, &fake.host, &dir);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("unchanged 1") && !stdout.contains("uploaded"),
        "{stdout}"
    );
    let again = runtime.block_on(async { store.read_marker().await.unwrap().unwrap() });
    assert_eq!(again.generation, marker.generation);
}
