//! The `ccd` binary as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

mod common;

use common::git;
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

#[test]
fn sync_mistakes_name_the_fix_and_touch_nothing() {
    let dir = std::env::temp_dir().join(format!("ccd-cli-sync-{}", std::process::id()));
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let store_arg = store.to_str().unwrap();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let out = ccd(&[
        "sync",
        "/nonexistent/ops",
        "--path",
        "deploy",
        "--to",
        store_arg,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"/nonexistent/ops\" is not a repository: there is no such folder"),
        "{}",
        stderr(&out)
    );
    assert!(!store.join("specs").exists(), "the store was touched");

    let out = ccd(&[
        "sync",
        ".",
        "--path",
        "deploy",
        "--to",
        "/nonexistent/store",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--to /nonexistent/store: there is no such folder"),
        "{}",
        stderr(&out)
    );

    let out = ccd(&["sync", ".", "--path", "../up", "--to", store_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--path \"../up\": it leaves the repository"),
        "{}",
        stderr(&out)
    );

    // --force only makes sense with --prune.
    let out = ccd(&[
        "sync", ".", "--path", "deploy", "--to", store_arg, "--force",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--prune"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `check` every 100 ms for up to `seconds`.
fn wait_for(what: &str, seconds: u64, check: impl Fn() -> bool) {
    for _ in 0..seconds * 10 {
        if check() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("gave up waiting for {what} after {seconds} s");
}

/// A git repository with `deploy/web.yaml`, and an empty store folder, under a fresh
/// `ccd-cli-TAG-PID` folder.
struct SyncedRepo {
    dir: PathBuf,
    repo: PathBuf,
    store: PathBuf,
}

impl SyncedRepo {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ccd-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (repo, store) = (dir.join("repo"), dir.join("store"));
        std::fs::create_dir_all(repo.join("deploy")).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        git(&repo, &["init", "--quiet"]);
        Self { dir, repo, store }
    }

    fn spec(v: &str) -> String {
        format!(
            "apiVersion: ccd/v1\nkind: App\nmetadata: {{name: web}}\nspec:\n  image: example/web:{v}\n  version: \"{v}\"\n  port: 8080\n"
        )
    }

    /// Commits version `v` of the spec; the commit's id.
    fn commit(&self, v: &str) -> String {
        std::fs::write(self.repo.join("deploy/web.yaml"), Self::spec(v)).unwrap();
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "--quiet", "-m", v]);
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    /// `ccd sync REPO --path deploy --to STORE --watch` with `extra`, its
    /// output in `DIR/watch.out` and its log in `DIR/watch.log`.
    fn watch(&self, extra: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_ccd"))
            .args(["sync", self.repo.to_str().unwrap(), "--path", "deploy"])
            .args(["--to", self.store.to_str().unwrap(), "--watch"])
            .args(extra)
            .stdout(std::fs::File::create(self.dir.join("watch.out")).unwrap())
            .stderr(std::fs::File::create(self.dir.join("watch.log")).unwrap())
            .spawn()
            .unwrap()
    }

    /// Whether the store holds version `v`.
    fn synced(&self, v: &str) -> bool {
        std::fs::read_to_string(self.store.join("specs/web.yaml")).is_ok_and(|s| s == Self::spec(v))
    }
}

#[test]
fn sync_watch_follows_commits_and_outlives_a_broken_repository() {
    let r = SyncedRepo::new("watch");
    let (dir, repo) = (&r.dir, &r.repo);
    let commit = |v: &str| {
        r.commit(v);
    };
    let synced = |v: &str| r.synced(v);
    commit("1");
    let log = dir.join("watch.log");
    let mut watch = r.watch(&["--interval", "1s"]);
    wait_for("the first commit in the store", 30, || synced("1"));
    commit("2");
    wait_for("the second commit in the store", 30, || synced("2"));

    // The repository goes away for a while: each tick logs the error, the loop goes on.
    std::fs::rename(repo.join(".git"), dir.join("git-away")).unwrap();
    wait_for("a failed sync in the log", 30, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("sync failed"))
    });
    std::fs::rename(dir.join("git-away"), repo.join(".git")).unwrap();
    commit("3");
    wait_for("the third commit in the store", 30, || synced("3"));
    // The file lands before the sync ends (the marker, then its report): a
    // stop in between would cut the report short, as CI once saw.
    let reported = || {
        std::fs::read_to_string(dir.join("watch.out"))
            .is_ok_and(|out| out.matches("uploaded specs/web.yaml").count() >= 3)
    };
    wait_for("the third sync reported", 30, reported);

    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    let status = watch.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let out = std::fs::read_to_string(dir.join("watch.out")).unwrap();
    assert_eq!(out.matches("uploaded specs/web.yaml").count(), 3, "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// POSTs `body` to the webhook at `addr` with `headers`; the answer's status code.
fn post(addr: &str, headers: &[(&str, String)], body: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "POST /hooks/git HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

#[test]
fn sync_watch_syncs_at_once_on_a_signed_push_and_refuses_an_unsigned_one() {
    use hmac::{KeyInit as _, Mac as _};
    let r = SyncedRepo::new("webhook");
    let dir = &r.dir;
    let commit = |v: &str| r.commit(v);
    let synced = |v: &str| r.synced(v);
    commit("1");
    let secret = dir.join("hook-secret");
    std::fs::write(&secret, "s3cret-of-the-hook\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = dir.join("watch.out");
    // Polling once an hour: only the webhook can bring the next commit in time.
    let secret = secret.to_str().unwrap();
    let mut watch = r.watch(&[
        "--interval",
        "1h",
        "--listen",
        &addr,
        "--secret-file",
        secret,
    ]);
    wait_for("the first commit in the store", 30, || synced("1"));
    let printed = std::fs::read_to_string(&out).unwrap();
    assert!(
        printed.contains(&format!("webhook: listening on http://{addr}/hooks/git")),
        "{printed}"
    );
    let head = commit("2");
    let body = format!(r#"{{"ref": "refs/heads/main", "after": "{head}"}}"#);
    let unsigned = post(&addr, &[("X-GitHub-Event", "push".to_owned())], &body);
    let forged = post(
        &addr,
        &[
            ("X-GitHub-Event", "push".to_owned()),
            ("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64))),
        ],
        &body,
    );
    assert_eq!((unsigned, forged), (401, 401));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(synced("1"), "a refused push syncs nothing");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-of-the-hook").unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let signed = post(
        &addr,
        &[
            ("X-GitHub-Event", "push".to_owned()),
            ("X-Hub-Signature-256", signature),
        ],
        &body,
    );
    assert_eq!(signed, 202);
    wait_for("the pushed commit in the store", 30, || synced("2"));
    Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(watch.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(dir);
}
