#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One writer, readers beside it: in one process with two handles (redb's locks are per open
//! file, so they exclude each other as two processes do), and across real processes, by running
//! this test binary again as a child that plays the other side.

use ccd_clock::Instant;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use ccd_events::{Event, EventLog, EventsError, Kind};

/// Set in a child process: the log to open. Its role is chosen by the test name it is run with.
const CHILD_DB: &str = "CCD_EVENTS_TEST_CHILD_DB";
/// Set in a child process: where it writes what it read, or its readiness marker.
const CHILD_OUT: &str = "CCD_EVENTS_TEST_CHILD_OUT";

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn child(test: &str, db: &Path, out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--quiet"])
        .env(CHILD_DB, db)
        .env(CHILD_OUT, out)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn child_env() -> Option<(PathBuf, PathBuf)> {
    Some((
        std::env::var_os(CHILD_DB)?.into(),
        std::env::var_os(CHILD_OUT)?.into(),
    ))
}

#[test]
fn reader_handle_follows_a_writer_while_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let writer = EventLog::open(&path).unwrap();
    // Opened before anything is written: it must still see what comes later.
    let reader = EventLog::open_read_only(&path).unwrap();
    assert!(reader.is_read_only());
    assert!(reader.list(None, 10).unwrap().is_empty());

    const N: usize = 200;
    let write = thread::spawn(move || {
        for i in 0..N {
            let app = if i % 2 == 0 { "hello" } else { "world" };
            writer
                .record(app, Kind::Normal, "Step", &format!("step {i}"), None)
                .unwrap();
        }
        writer
    });

    // Read while the writer writes: every snapshot is a whole prefix of what is written.
    let mut snapshots = 0;
    let mut last_len = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = reader.list(None, usize::MAX).unwrap();
        let expected: Vec<String> = (0..seen.len()).map(|i| format!("step {i}")).collect();
        assert_eq!(
            seen.iter().map(|e| &e.message).collect::<Vec<_>>(),
            expected.iter().collect::<Vec<_>>()
        );
        assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
        assert!(seen.len() >= last_len, "a reader never goes back in time");
        last_len = seen.len();
        snapshots += 1;
        if seen.len() == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reader saw only {} of {N}",
            seen.len()
        );
    }
    assert!(
        snapshots > 1,
        "the reader should have read during the writes"
    );
    assert_eq!(reader.list(Some("world"), usize::MAX).unwrap().len(), N / 2);

    // Reading does not block writing, and a reader cannot write.
    let writer = write.join().unwrap();
    writer
        .record("hello", Kind::Normal, "Done", "done", None)
        .unwrap();
    assert_eq!(reader.list(None, 1).unwrap()[0].message, "done");
    let err = reader
        .record("hello", Kind::Normal, "Done", "done", None)
        .unwrap_err();
    assert!(matches!(err, EventsError::ReadOnly), "{err}");
}

#[test]
fn a_second_writer_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let writer = EventLog::open(&path).unwrap();
    let err = EventLog::open(&path).unwrap_err();
    assert!(matches!(err, EventsError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    // Once the writer is gone, another may open it.
    drop(writer);
    EventLog::open(&path).unwrap();
}

#[test]
fn read_only_open_of_a_missing_log_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = EventLog::open_read_only(dir.path().join("nope.redb")).unwrap_err();
    assert!(matches!(err, EventsError::NotFound { .. }), "{err}");
}

#[test]
fn reader_works_without_a_writer_and_does_not_block_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    EventLog::open(&path)
        .unwrap()
        .record("hello", Kind::Normal, "RolledOut", "rolled out 1.2.1", None)
        .unwrap();
    let reader = EventLog::open_read_only(&path).unwrap();
    assert_eq!(reader.list(None, 10).unwrap().len(), 1);
    // `ccd up` starting while `ccd events` has the file open.
    let writer = EventLog::open(&path).unwrap();
    writer
        .record(
            "hello",
            Kind::Normal,
            "RolloutStarted",
            "rolling out 1.2.2",
            None,
        )
        .unwrap();
    assert_eq!(reader.list(None, 10).unwrap().len(), 2);
}

/// Child side of [`reader_in_another_process_sees_the_writers_events`]: reads the log and
/// writes what it saw as JSON. Does nothing in a normal test run.
#[test]
fn child_reads_the_log() {
    let Some((db, out)) = child_env() else { return };
    let events = EventLog::open_read_only(&db)
        .unwrap()
        .list(None, usize::MAX)
        .unwrap();
    std::fs::write(out, serde_json::to_vec(&events).unwrap()).unwrap();
}

fn read_in_child(db: &Path, out: &Path) -> Vec<Event> {
    let status = child("child_reads_the_log", db, out).wait().unwrap();
    assert!(status.success(), "child reader failed: {status}");
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// `ccd events` (a child process) beside `ccd up` (this process, writing).
#[test]
fn reader_in_another_process_sees_the_writers_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.redb");
    let out = dir.path().join("seen.json");
    let writer = EventLog::open(&db).unwrap();
    let first = writer
        .record(
            "hello",
            Kind::Normal,
            "TemplateCreated",
            "created hello-3fa2c1d9e0",
            Some("1.2.0"),
        )
        .unwrap();
    assert_eq!(read_in_child(&db, &out), vec![first.clone()]);

    let second = writer
        .record(
            "hello",
            Kind::Normal,
            "RolledOut",
            "rolled out 1.2.0",
            Some("1.2.0"),
        )
        .unwrap();
    let folded = writer
        .record(
            "hello",
            Kind::Normal,
            "RolledOut",
            "rolled out 1.2.0",
            Some("1.2.0"),
        )
        .unwrap();
    assert_eq!(folded.count, 2);
    assert!(second.seq < folded.seq);
    assert_eq!(read_in_child(&db, &out), vec![first, folded]);
}

/// Child side of [`reader_beside_a_writer_in_another_process_and_after_it_dies`]: records events,
/// then says so, then keeps the log open (as `ccd up` does) until killed, at most 60 s.
#[test]
fn child_writes_the_log_then_waits() {
    let Some((db, ready)) = child_env() else {
        return;
    };
    let log = EventLog::open(&db).unwrap();
    for i in 0..3 {
        log.record("hello", Kind::Normal, "Step", &format!("step {i}"), None)
            .unwrap();
    }
    std::fs::write(ready, b"ready").unwrap();
    thread::sleep(Duration::from_secs(60));
}

/// `ccd events` (this process) beside `ccd up` (a child process), then after `ccd up` is killed
/// without closing the log.
#[test]
fn reader_beside_a_writer_in_another_process_and_after_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.redb");
    let ready = dir.path().join("ready");
    let mut writer = child("child_writes_the_log_then_waits", &db, &ready);
    wait_for("the child writer", Duration::from_secs(60), || {
        ready.exists() || writer.try_wait().unwrap().is_some()
    });
    assert!(
        writer.try_wait().unwrap().is_none(),
        "child writer exited early"
    );

    let messages = |log: &EventLog| {
        log.list(None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
    };
    let reader = EventLog::open_read_only(&db).unwrap();
    assert_eq!(messages(&reader), ["step 0", "step 1", "step 2"]);
    let err = EventLog::open(&db).unwrap_err();
    assert!(matches!(err, EventsError::Busy { .. }), "{err}");

    writer.kill().unwrap();
    writer.wait().unwrap();

    // The writer died without closing. A reader that was open still reads what it committed,
    // and so does a new one (which recovers the file first, no writer being there).
    assert_eq!(messages(&reader), ["step 0", "step 1", "step 2"]);
    let late_reader = EventLog::open_read_only(&db).unwrap();
    assert_eq!(messages(&late_reader), ["step 0", "step 1", "step 2"]);

    // A new writer (the restarted controller) takes over beside both readers and carries on.
    let writer = EventLog::open(&db).unwrap();
    let next = writer
        .record("hello", Kind::Normal, "Step", "step 3", None)
        .unwrap();
    assert_eq!(next.seq, 4);
    for r in [&reader, &late_reader] {
        assert_eq!(messages(r), ["step 0", "step 1", "step 2", "step 3"]);
    }
}

/// `ccd up` restarted after a crash, without any reader in between: it recovers the log itself.
#[test]
fn writer_reopens_a_log_whose_writer_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.redb");
    let ready = dir.path().join("ready");
    let mut child_writer = child("child_writes_the_log_then_waits", &db, &ready);
    wait_for("the child writer", Duration::from_secs(60), || {
        ready.exists() || child_writer.try_wait().unwrap().is_some()
    });
    child_writer.kill().unwrap();
    child_writer.wait().unwrap();

    let writer = EventLog::open(&db).unwrap();
    assert_eq!(writer.list(None, 10).unwrap().len(), 3);
    let folded = writer
        .record("hello", Kind::Normal, "Step", "step 2", None)
        .unwrap();
    assert_eq!((folded.seq, folded.count), (4, 2));
}
