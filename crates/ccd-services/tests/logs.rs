//! Log shipping from fake instance folders (as the local cloud and its
//! supervisor leave them), checked through what `ccd logs` reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ccd_services::ServiceError;
use ccd_services::logs::{self, CUT_MARK, Cursor, MAX_LINE, Shipper};

const DAY: u64 = 24 * 3600;
/// 2025-06-01T10:00:00Z.
const T0: u64 = 1_748_772_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

struct Data {
    _root: tempfile::TempDir,
    instances: PathBuf,
    logs: PathBuf,
}

impl Data {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        Data {
            instances: root.path().join("cloud/instances"),
            logs: root.path().join("logs"),
            _root: root,
        }
    }

    /// An instance's log folder, named for `app` as the local cloud does.
    fn instance(&self, name: &str, app: Option<&str>) -> PathBuf {
        let dir = self.instances.join("zone-a").join(name);
        fs::create_dir_all(&dir).unwrap();
        if let Some(app) = app {
            fs::write(dir.join(ccd_wire::INSTANCE_APP_FILE), app).unwrap();
        }
        dir
    }

    fn shipper(&self) -> Shipper {
        Shipper::new(&self.instances, &self.logs)
    }

    /// What `ccd logs APP` prints, without the time.
    async fn seen(&self, app: &str) -> Vec<String> {
        seen_since(&self.logs, app, UNIX_EPOCH).await
    }
}

async fn seen_since(logs: &Path, app: &str, since: SystemTime) -> Vec<String> {
    logs::read(logs, app, since)
        .await
        .unwrap()
        .into_iter()
        .map(|l| format!("{} {}: {}", l.instance, l.stream, l.line))
        .collect()
}

fn append(dir: &Path, file: &str, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn asks(apps: &[(&str, u64)]) -> BTreeMap<String, Duration> {
    apps.iter()
        .map(|(app, days)| ((*app).to_owned(), Duration::from_secs(days * DAY)))
        .collect()
}

#[tokio::test]
async fn lines_arrive_once_across_calls_and_restarts() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    append(&web, "stdout.log", "a\nb\n");
    append(&web, "stderr.log", "warning\n");
    let shipper = data.shipper();
    let report = shipper.ship_once(&asks, at(T0)).await.unwrap();
    assert_eq!(report.shipped, BTreeMap::from([("web".to_owned(), 3)]));
    append(&web, "stdout.log", "c\n");
    shipper.ship_once(&asks, at(T0 + 1)).await.unwrap();
    shipper.ship_once(&asks, at(T0 + 2)).await.unwrap();
    drop(shipper);
    // `ccd up` restarted: a new shipper goes on from the offsets.
    append(&web, "stdout.log", "d\n");
    let restarted = data.shipper();
    restarted.ship_once(&asks, at(T0 + 3)).await.unwrap();
    restarted.ship_once(&asks, at(T0 + 4)).await.unwrap();
    assert_eq!(
        data.seen("web").await,
        [
            "web-1 stdout: a",
            "web-1 stdout: b",
            "web-1 stderr: warning",
            "web-1 stdout: c",
            "web-1 stdout: d"
        ]
    );
}

#[tokio::test]
async fn a_partial_line_waits_for_its_newline() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    append(&web, "stdout.log", "one\ntw");
    data.shipper().ship_once(&asks, at(T0)).await.unwrap();
    assert_eq!(data.seen("web").await, ["web-1 stdout: one"]);
    append(&web, "stdout.log", "o\n");
    data.shipper().ship_once(&asks, at(T0 + 1)).await.unwrap();
    assert_eq!(
        data.seen("web").await,
        ["web-1 stdout: one", "web-1 stdout: two"]
    );
}

/// What the supervisor does at 10 MiB (`ccd-supervisor/src/logs.rs`).
fn rotate(dir: &Path, file: &str) {
    fs::rename(dir.join(file), dir.join(format!("{file}.1"))).unwrap();
    fs::write(dir.join(file), "").unwrap();
}

#[tokio::test]
async fn a_rotation_loses_nothing() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    let shipper = data.shipper();
    append(&web, "stdout.log", "1\n2\n");
    shipper.ship_once(&asks, at(T0)).await.unwrap();
    // Written, then rotated away before the next call.
    append(&web, "stdout.log", "3\n4-head");
    rotate(&web, "stdout.log");
    append(&web, "stdout.log", "5\n");
    shipper.ship_once(&asks, at(T0 + 1)).await.unwrap();
    // Rotated again, from a new shipper: the new file, then the next one.
    append(&web, "stdout.log", "6\n");
    rotate(&web, "stdout.log");
    append(&web, "stdout.log", "7\n");
    data.shipper().ship_once(&asks, at(T0 + 2)).await.unwrap();
    assert_eq!(
        data.seen("web").await,
        [
            "web-1 stdout: 1",
            "web-1 stdout: 2",
            "web-1 stdout: 3",
            // The rotated file's unfinished last line is shipped as it is.
            "web-1 stdout: 4-head",
            "web-1 stdout: 5",
            "web-1 stdout: 6",
            "web-1 stdout: 7"
        ]
    );
}

#[tokio::test]
async fn an_app_not_asked_for_is_not_shipped() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let api = data.instance("api-1", Some("api"));
    let unnamed = data.instance("standalone", None);
    for dir in [&web, &api, &unnamed] {
        append(dir, "stdout.log", "hello\n");
    }
    data.shipper()
        .ship_once(&asks(&[("web", 7)]), at(T0))
        .await
        .unwrap();
    assert_eq!(data.seen("web").await, ["web-1 stdout: hello"]);
    let error = logs::read(&data.logs, "api", UNIX_EPOCH).await.unwrap_err();
    assert!(matches!(error, ServiceError::NoLogs { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("api") && message.contains("services"),
        "{message}"
    );
    assert!(!data.logs.join("api").exists());
}

#[tokio::test]
async fn retention_deletes_old_hour_files_and_keeps_recent_ones() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    let shipper = data.shipper();
    append(&web, "stdout.log", "first day\n");
    shipper.ship_once(&asks, at(T0 + 60)).await.unwrap();
    append(&web, "stdout.log", "second day\n");
    shipper.ship_once(&asks, at(T0 + DAY)).await.unwrap();
    // Seven days after the end of the first line's hour.
    let report = shipper
        .ship_once(&asks, at(T0 + 3600 + 7 * DAY))
        .await
        .unwrap();
    assert_eq!(report.expired, [data.logs.join("web/2025-06-01T10.jsonl")]);
    assert_eq!(data.seen("web").await, ["web-1 stdout: second day"]);
    // An app whose spec no longer asks expires by the retention it last asked for.
    let report = shipper
        .ship_once(&BTreeMap::new(), at(T0 + 3600 + 8 * DAY))
        .await
        .unwrap();
    assert_eq!(report.expired, [data.logs.join("web/2025-06-02T10.jsonl")]);
    assert!(logs::read(&data.logs, "web", UNIX_EPOCH).await.is_err());
}

#[tokio::test]
async fn since_gives_only_later_lines_in_time_order() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let web2 = data.instance("web-2", Some("web"));
    let asks = asks(&[("web", 7)]);
    let shipper = data.shipper();
    for (secs, dir, text) in [
        (T0 + 300, &web, "early\n"),
        (T0 + 5400, &web2, "late\n"),
        (T0 + 6300, &web, "later\n"),
        (T0 + 2 * 3600 + 1, &web2, "next hour\n"),
    ] {
        append(dir, "stdout.log", text);
        shipper.ship_once(&asks, at(secs)).await.unwrap();
    }
    assert_eq!(
        seen_since(&data.logs, "web", at(T0 + 5400)).await,
        [
            "web-2 stdout: late",
            "web-1 stdout: later",
            "web-2 stdout: next hour"
        ]
    );
    assert_eq!(
        seen_since(&data.logs, "web", at(T0 + 3 * 3600)).await,
        Vec::<String>::new(),
        "logs exist, none after: empty, not an error"
    );
    let lines = logs::read(&data.logs, "web", at(T0 + 6300)).await.unwrap();
    assert_eq!(
        lines[0].to_string(),
        "2025-06-01T11:45:00.000Z web-1 stdout: later"
    );
}

#[tokio::test]
async fn a_line_longer_than_16_kib_is_cut_and_marked() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    let long = "x".repeat(MAX_LINE + 100);
    append(&web, "stdout.log", &format!("{long}\nshort\n"));
    data.shipper().ship_once(&asks, at(T0)).await.unwrap();
    let lines = logs::read(&data.logs, "web", UNIX_EPOCH).await.unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].line, format!("{}{CUT_MARK}", &long[..MAX_LINE]));
    assert_eq!(lines[1].line, "short");
}

#[tokio::test]
async fn follow_gives_each_line_once() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    let shipper = data.shipper();
    let mut cursor = Cursor::new(&data.logs, "web", at(T0));
    assert!(matches!(
        cursor.next_batch().await,
        Err(ServiceError::NoLogs { .. })
    ));
    append(&web, "stdout.log", "a\n");
    shipper.ship_once(&asks, at(T0 + 10)).await.unwrap();
    let texts = |lines: Vec<logs::LogLine>| lines.into_iter().map(|l| l.line).collect::<Vec<_>>();
    assert_eq!(texts(cursor.next_batch().await.unwrap()), ["a"]);
    assert_eq!(
        texts(cursor.next_batch().await.unwrap()),
        Vec::<String>::new()
    );
    append(&web, "stdout.log", "b\n");
    shipper.ship_once(&asks, at(T0 + 20)).await.unwrap();
    append(&web, "stdout.log", "c\n");
    // The next hour: a new file.
    shipper.ship_once(&asks, at(T0 + 3600)).await.unwrap();
    assert_eq!(texts(cursor.next_batch().await.unwrap()), ["b", "c"]);
}

#[tokio::test]
async fn a_ship_cut_short_is_shipped_once() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    append(&web, "stdout.log", "before\n");
    data.shipper().ship_once(&asks, at(T0)).await.unwrap();
    let offsets = data.logs.join(logs::OFFSETS_FILE);
    let hour = "web/2025-06-01T10.jsonl";
    let saved = fs::read_to_string(&offsets).unwrap();
    let len = fs::metadata(data.logs.join(hour)).unwrap().len();
    append(&web, "stdout.log", "during\n");
    data.shipper().ship_once(&asks, at(T0 + 1)).await.unwrap();
    // As if killed after appending: the offsets say what the call said first.
    let mut state: serde_json::Value = serde_json::from_str(&saved).unwrap();
    state["pending"] = serde_json::json!({ hour: len });
    fs::write(&offsets, state.to_string()).unwrap();
    data.shipper().ship_once(&asks, at(T0 + 2)).await.unwrap();
    assert_eq!(
        data.seen("web").await,
        ["web-1 stdout: before", "web-1 stdout: during"]
    );
}

#[tokio::test]
async fn shipped_logs_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    append(&web, "stdout.log", "secret\n");
    data.shipper()
        .ship_once(&asks(&[("web", 7)]), at(T0))
        .await
        .unwrap();
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.logs.clone()), 0o700);
    assert_eq!(mode(data.logs.join("web")), 0o700);
    assert_eq!(mode(data.logs.join("web/2025-06-01T10.jsonl")), 0o600);
    assert_eq!(mode(data.logs.join(logs::OFFSETS_FILE)), 0o600);
}

#[tokio::test]
async fn rotated_twice_between_calls_ships_what_is_still_there() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let asks = asks(&[("web", 7)]);
    append(&web, "stdout.log", "read\n");
    data.shipper().ship_once(&asks, at(T0)).await.unwrap();
    append(&web, "stdout.log", "lost with its file\n");
    rotate(&web, "stdout.log");
    append(&web, "stdout.log", "in the second file\n");
    rotate(&web, "stdout.log");
    append(&web, "stdout.log", "in the third file\n");
    data.shipper().ship_once(&asks, at(T0 + 1)).await.unwrap();
    assert_eq!(
        data.seen("web").await,
        [
            "web-1 stdout: read",
            "web-1 stdout: in the second file",
            "web-1 stdout: in the third file"
        ]
    );
}

#[tokio::test]
async fn the_loop_ships_what_the_specs_ask_and_once_more_when_stopped() {
    let data = Data::new();
    let web = data.instance("web-1", Some("web"));
    let (tell, asks) = tokio::sync::watch::channel(BTreeMap::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(
        data.shipper()
            .run(asks, Duration::from_millis(20), stop.clone()),
    );
    append(&web, "stdout.log", "first\n");
    tell.send_replace(self::asks(&[("web", 7)]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while logs::read(&data.logs, "web", UNIX_EPOCH).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "nothing shipped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    append(&web, "stdout.log", "last\n");
    stop.cancel();
    running.await.unwrap();
    assert_eq!(
        data.seen("web").await,
        ["web-1 stdout: first", "web-1 stdout: last"]
    );
}
