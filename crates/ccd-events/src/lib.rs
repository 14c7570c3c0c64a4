//! ccd's event log: what the controller did and why ("created instance template
//! hello-3fa2c1d9e0 for revision 1.2.0", "spec rejected: specs/hello.yaml:7:9: ..."), kept in an
//! embedded [redb](https://docs.rs/redb) file and shown by `ccd events [APP]`.
//!
//! * [`EventLog::record`] appends an [`Event`]; an event identical to one recorded for the same
//!   app within the fold window is folded into it (its `count` goes up, its time moves on), as
//!   Kubernetes does, so a reconcile loop that retries does not flood the log.
//! * [`EventLog::list`] returns the newest events, oldest first, for one app or all.
//! * Retention keeps at most [`EventLogOptions::max_per_app`] events per app, dropping the oldest
//!   on write.
//! * [`render_table`] formats events for the CLI.
//!
//! # One writer, any number of readers
//!
//! redb locks its file. By default ([`redb::ConcurrencyMode::ExclusiveWriter`]) a writer locks
//! the whole file, so `ccd events` could not open the log while `ccd up` runs. Since redb 4.5 a
//! database opened in [`redb::ConcurrencyMode::SingleWriter`] mode lets one process write while any
//! number of processes open it read-only and follow its commits, coordinated by byte-range locks
//! (open-file-description locks on Linux, so two handles in one process exclude each other just
//! as two processes do). That is the simplest robust option: one file, no sidecar copy that can
//! drift from the database, no polling of a JSON file. So:
//!
//! * the controller opens the log with [`EventLog::open`] (the single writer; a second writer gets
//!   [`EventsError::Busy`]);
//! * the CLI opens it with [`EventLog::open_read_only`], which works whether or not the controller
//!   runs, and whose [`EventLog::list`] sees every event committed before the call;
//! * a writer killed without closing the file leaves it needing recovery, which redb does not do
//!   read-only: the next [`EventLog::open`] recovers it, and so does [`EventLog::open_read_only`]
//!   when no writer runs (it opens the file for writing for a moment; events are kept).
//!
//! Byte-range locks exist on Linux, macOS and Windows, ccd's platforms; elsewhere opening a file
//! fails (with [`EventsError::Open`]) rather than risking a torn read.
//!
//! # Async callers
//!
//! Every method is synchronous and short: one small redb transaction, committed durably (one
//! fsync) for writes. No lock or guard outlives a call, so calling from async code never holds a
//! lock across an `.await`; a caller that records in a tight loop may prefer `spawn_blocking`.

mod table;

use ccd_clock::Instant;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableError, WriteTransaction,
};
use serde::{Deserialize, Serialize};

pub use table::{format_age, render_table, render_table_at};

/// Events by sequence number, as JSON (so fields can be added with serde defaults).
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Index: (app, seq) for each event, for per-app listing, folding and retention.
const BY_APP: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_app");
/// Number of events kept per app, so retention needs no count over the index.
const APP_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("event_counts_by_app");
/// Counters; `next_seq` keeps sequence numbers increasing even after every row has been dropped.
const META: TableDefinition<&str, u64> = TableDefinition::new("events_meta");
const NEXT_SEQ: &str = "next_seq";

/// How long [`EventLog::open`] retries while the writer lock is taken.
const BUSY_GRACE: Duration = Duration::from_millis(500);

/// How many of an app's most recent events are compared with a new one for folding.
const FOLD_SCAN: usize = 32;

/// Whether an event reports normal progress or something that needs attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Normal,
    Warning,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the controller did, or refused to do, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the log, increasing. Folding a repeat into an event gives it a new `seq`, so
    /// the log stays ordered by last occurrence and a follower asking for `seq > last_seen`
    /// sees the update.
    pub seq: u64,
    /// When the event last occurred, unix milliseconds.
    pub at_ms: u64,
    /// When it first occurred (differs from `at_ms` once folded), unix milliseconds.
    pub first_at_ms: u64,
    pub app: String,
    pub kind: Kind,
    /// A CamelCase word: `TemplateCreated`, `RolloutStarted`, `SpecRejected`...
    pub reason: String,
    pub message: String,
    /// The spec revision the event is about, if any.
    pub revision: Option<String>,
    /// How many times the event occurred: repeats within the fold window are folded into one row.
    pub count: u64,
}

/// Tuning for an [`EventLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogOptions {
    /// A new event identical (app, kind, reason, message, revision) to one of the app's events
    /// last seen at most this long ago is folded into it.
    pub fold_window: Duration,
    /// Events kept per app; the oldest are dropped on write. At least 1.
    pub max_per_app: usize,
}

impl Default for EventLogOptions {
    fn default() -> Self {
        Self {
            fold_window: Duration::from_secs(10 * 60),
            max_per_app: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Another process (or handle) has the log open for writing.
    #[error(
        "event log {path} is already open for writing by another process (ccd up?); \
         open it read-only to read it beside the writer"
    )]
    Busy { path: PathBuf },
    /// A read-only open of a log that does not exist yet.
    #[error("event log {path} does not exist: no events recorded yet")]
    NotFound { path: PathBuf },
    #[error("cannot open event log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    /// The log's last writer stopped without closing it, and recovering it failed (for example
    /// for want of write permission).
    #[error(
        "event log {path} was left open by a writer that stopped, and could not be recovered \
         ({source}); starting the controller recovers it"
    )]
    NeedsRecovery {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    /// The file could not be created private to its owner.
    #[error("cannot create event log {path} readable only by its owner: {source}")]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("event log was opened read-only: cannot record events")]
    ReadOnly,
    #[error("invalid event app name {0:?}: must be non-empty, without control characters")]
    InvalidApp(String),
    #[error("invalid event reason {0:?}: must be one CamelCase word, like TemplateCreated")]
    InvalidReason(String),
    #[error("event log storage: {0}")]
    Storage(#[from] redb::Error),
    #[error("event log holds an undecodable event: {0}")]
    Decode(#[from] serde_json::Error),
}

fn storage(e: impl Into<redb::Error>) -> EventsError {
    EventsError::Storage(e.into())
}

enum Db {
    Writer(Database),
    Reader(ReadOnlyDatabase),
}

struct Inner {
    db: Db,
    options: EventLogOptions,
    /// `None` for an in-memory log.
    path: Option<PathBuf>,
}

/// The event log. Cheap to clone (an `Arc` inside); `Send + Sync`.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.inner.path)
            .field("read_only", &self.is_read_only())
            .field("options", &self.inner.options)
            .finish()
    }
}

impl EventLog {
    /// Opens (creating if needed) the log at `path` as its single writer, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<EventLog, EventsError> {
        Self::open_with(path, EventLogOptions::default())
    }

    /// Opens (creating if needed) the log at `path` as its single writer.
    ///
    /// Fails with [`EventsError::Busy`] while another writer has it open (after a grace period
    /// of half a second); readers opened with [`EventLog::open_read_only`] do not stop it.
    /// Blocks for at most that grace period: call it before starting, or in `spawn_blocking`.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: EventLogOptions,
    ) -> Result<EventLog, EventsError> {
        let path = path.as_ref();
        owner_only(path).map_err(|source| EventsError::Permissions {
            path: path.to_path_buf(),
            source,
        })?;
        let builder = single_writer();
        // A reader recovering the log after a crashed writer holds the writer lock for the few
        // milliseconds that takes (see `open_read_only`): wait that out before reporting `Busy`.
        let deadline = Instant::now() + BUSY_GRACE;
        let db = loop {
            match builder.create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(open_error(path, e)),
            }
        };
        Self::init_writer(db, options, Some(path.to_path_buf()))
    }

    /// An in-memory log, for tests.
    pub fn in_memory() -> EventLog {
        Self::in_memory_with(EventLogOptions::default())
    }

    /// An in-memory log with the given options, for tests.
    pub fn in_memory_with(options: EventLogOptions) -> EventLog {
        let built = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)
            .and_then(|db| Self::init_writer(db, options, None));
        match built {
            Ok(log) => log,
            // Creating tables in memory only fails on allocation failure, which aborts anyway.
            Err(e) => panic!("in-memory event log: {e}"),
        }
    }

    /// Opens an existing log for reading, beside its writer if one runs (see the crate docs).
    ///
    /// Each [`EventLog::list`] sees every event committed before it, including those the writer
    /// records after this open. [`EventLog::record`] fails with [`EventsError::ReadOnly`].
    ///
    /// A writer that died without closing the log (a killed `ccd up`) leaves it needing
    /// recovery, which redb does not do read-only. If no writer runs, this recovers it by
    /// opening it for writing for a moment (committed events are kept; only redb's allocator
    /// state is rebuilt), then opens it read-only. That needs write permission on the file.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<EventLog, EventsError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(EventsError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let builder = single_writer();
        let mut recovered = false;
        let db = loop {
            match builder.open_read_only(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::RepairAborted) if !recovered => {
                    recovered = true;
                    match builder.open(path) {
                        // Repaired on open; dropping it closes it cleanly.
                        Ok(db) => {
                            tracing::info!(path = %path.display(), "recovered event log left open by a writer that stopped");
                            drop(db);
                        }
                        // A writer started meanwhile: beside it, a read-only open needs no repair.
                        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {}
                        Err(source) => {
                            return Err(EventsError::NeedsRecovery {
                                path: path.to_path_buf(),
                                source,
                            });
                        }
                    }
                }
                Err(e) => return Err(open_error(path, e)),
            }
        };
        Ok(EventLog {
            inner: Arc::new(Inner {
                db: Db::Reader(db),
                options: EventLogOptions::default(),
                path: Some(path.to_path_buf()),
            }),
        })
    }

    fn init_writer(
        db: Database,
        mut options: EventLogOptions,
        path: Option<PathBuf>,
    ) -> Result<EventLog, EventsError> {
        options.max_per_app = options.max_per_app.max(1);
        // Create the tables up front, so readers never meet a log without them.
        let txn = db.begin_write().map_err(storage)?;
        {
            txn.open_table(EVENTS).map_err(storage)?;
            txn.open_table(BY_APP).map_err(storage)?;
            txn.open_table(APP_COUNTS).map_err(storage)?;
            txn.open_table(META).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                db: Db::Writer(db),
                options,
                path,
            }),
        })
    }

    pub fn is_read_only(&self) -> bool {
        matches!(self.inner.db, Db::Reader(_))
    }

    pub fn options(&self) -> &EventLogOptions {
        &self.inner.options
    }

    /// Records an event now. See [`EventLog::record_at`].
    pub fn record(
        &self,
        app: &str,
        kind: Kind,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) -> Result<Event, EventsError> {
        self.record_at(now_ms(), app, kind, reason, message, revision)
    }

    /// Records an event that occurred at `at_ms` (unix milliseconds), and returns the stored row.
    ///
    /// If one of the app's recent events is identical (same kind, reason, message and revision)
    /// and was last seen at most the fold window before `at_ms`, it is folded: that row's
    /// `count` goes up by one, its `at_ms` becomes `at_ms`, and it takes the next `seq` (so the
    /// log stays newest last). Otherwise a new row is added with `count` 1, and the app's oldest
    /// rows beyond [`EventLogOptions::max_per_app`] are dropped.
    pub fn record_at(
        &self,
        at_ms: u64,
        app: &str,
        kind: Kind,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) -> Result<Event, EventsError> {
        validate_app(app)?;
        validate_reason(reason)?;
        let Db::Writer(db) = &self.inner.db else {
            return Err(EventsError::ReadOnly);
        };
        let txn = db.begin_write().map_err(storage)?;
        let event = self.record_in(&txn, at_ms, app, kind, reason, message, revision)?;
        txn.commit().map_err(storage)?;
        Ok(event)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_in(
        &self,
        txn: &WriteTransaction,
        at_ms: u64,
        app: &str,
        kind: Kind,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) -> Result<Event, EventsError> {
        let mut events = txn.open_table(EVENTS).map_err(storage)?;
        let mut by_app = txn.open_table(BY_APP).map_err(storage)?;
        let mut counts = txn.open_table(APP_COUNTS).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;

        let seq = meta
            .get(NEXT_SEQ)
            .map_err(storage)?
            .map_or(1, |v| v.value());
        meta.insert(NEXT_SEQ, seq + 1).map_err(storage)?;

        // Look for an identical event among the app's most recent ones within the window.
        let window_start = at_ms.saturating_sub(duration_ms(self.inner.options.fold_window));
        let mut folded: Option<Event> = None;
        {
            let recent = by_app
                .range((app, 0)..=(app, u64::MAX))
                .map_err(storage)?
                .rev()
                .take(FOLD_SCAN);
            for entry in recent {
                let (key, _) = entry.map_err(storage)?;
                let old_seq = key.value().1;
                let Some(bytes) = events.get(old_seq).map_err(storage)? else {
                    continue;
                };
                let old: Event = serde_json::from_slice(bytes.value())?;
                if old.at_ms < window_start {
                    break; // older rows were last seen even earlier
                }
                if old.kind == kind
                    && old.reason == reason
                    && old.message == message
                    && old.revision.as_deref() == revision
                {
                    folded = Some(old);
                    break;
                }
            }
        }

        let event = match folded {
            Some(old) => {
                events.remove(old.seq).map_err(storage)?;
                by_app.remove((app, old.seq)).map_err(storage)?;
                tracing::debug!(app, reason, count = old.count + 1, "folded repeated event");
                Event {
                    seq,
                    at_ms: at_ms.max(old.at_ms),
                    count: old.count + 1,
                    ..old
                }
            }
            None => {
                let kept = counts.get(app).map_err(storage)?.map_or(0, |v| v.value()) + 1;
                let max = self.inner.options.max_per_app as u64;
                let excess = kept.saturating_sub(max);
                if excess > 0 {
                    let oldest: Vec<u64> = by_app
                        .range((app, 0)..=(app, u64::MAX))
                        .map_err(storage)?
                        .take(usize::try_from(excess).unwrap_or(usize::MAX))
                        .map(|entry| entry.map(|(key, _)| key.value().1))
                        .collect::<Result<_, _>>()
                        .map_err(storage)?;
                    for old_seq in &oldest {
                        events.remove(*old_seq).map_err(storage)?;
                        by_app.remove((app, *old_seq)).map_err(storage)?;
                    }
                    tracing::debug!(app, dropped = oldest.len(), "event retention");
                }
                counts.insert(app, kept.min(max)).map_err(storage)?;
                Event {
                    seq,
                    at_ms,
                    first_at_ms: at_ms,
                    app: app.to_owned(),
                    kind,
                    reason: reason.to_owned(),
                    message: message.to_owned(),
                    revision: revision.map(str::to_owned),
                    count: 1,
                }
            }
        };
        events
            .insert(seq, serde_json::to_vec(&event)?.as_slice())
            .map_err(storage)?;
        by_app.insert((app, seq), ()).map_err(storage)?;
        Ok(event)
    }

    /// The newest `limit` events, of `app` or of all apps, oldest first (newest last).
    pub fn list(&self, app: Option<&str>, limit: usize) -> Result<Vec<Event>, EventsError> {
        let txn = match &self.inner.db {
            Db::Writer(db) => db.begin_read(),
            Db::Reader(db) => db.begin_read(),
        }
        .map_err(storage)?;
        let mut out = list_in(&txn, app, limit)?;
        out.reverse();
        Ok(out)
    }
}

impl EventLog {
    /// Up to `limit` events after `seq` (of `app`, or of all apps), oldest
    /// first: what a follower that has seen `seq` has not. A folded event
    /// comes again, under its new `seq`.
    pub fn after(
        &self,
        app: Option<&str>,
        seq: u64,
        limit: usize,
    ) -> Result<Vec<Event>, EventsError> {
        let txn = match &self.inner.db {
            Db::Writer(db) => db.begin_read(),
            Db::Reader(db) => db.begin_read(),
        }
        .map_err(storage)?;
        let events = match txn.open_table(EVENTS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut out = Vec::new();
        let Some(from) = seq.checked_add(1) else {
            return Ok(out);
        };
        match app {
            None => {
                for entry in events.range(from..).map_err(storage)?.take(limit) {
                    let (_, bytes) = entry.map_err(storage)?;
                    out.push(serde_json::from_slice(bytes.value())?);
                }
            }
            Some(app) => {
                let by_app = match txn.open_table(BY_APP) {
                    Ok(t) => t,
                    Err(TableError::TableDoesNotExist(_)) => return Ok(out),
                    Err(e) => return Err(storage(e)),
                };
                let seqs = by_app
                    .range((app, from)..=(app, u64::MAX))
                    .map_err(storage)?
                    .take(limit);
                for entry in seqs {
                    let (key, _) = entry.map_err(storage)?;
                    if let Some(bytes) = events.get(key.value().1).map_err(storage)? {
                        out.push(serde_json::from_slice(bytes.value())?);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Newest first.
fn list_in(
    txn: &ReadTransaction,
    app: Option<&str>,
    limit: usize,
) -> Result<Vec<Event>, EventsError> {
    let events = match txn.open_table(EVENTS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let mut out = Vec::with_capacity(limit.min(events.len().map_err(storage)? as usize));
    if limit == 0 {
        return Ok(out);
    }
    match app {
        None => {
            for entry in events.iter().map_err(storage)?.rev().take(limit) {
                let (_, bytes) = entry.map_err(storage)?;
                out.push(serde_json::from_slice(bytes.value())?);
            }
        }
        Some(app) => {
            let by_app = match txn.open_table(BY_APP) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(storage(e)),
            };
            let seqs = by_app
                .range((app, 0)..=(app, u64::MAX))
                .map_err(storage)?
                .rev()
                .take(limit);
            for entry in seqs {
                let (key, _) = entry.map_err(storage)?;
                if let Some(bytes) = events.get(key.value().1).map_err(storage)? {
                    out.push(serde_json::from_slice(bytes.value())?);
                }
            }
        }
    }
    Ok(out)
}

/// Creates `path` readable and writable by its owner only, or takes group
/// and other access away from an existing file: events name apps, secrets
/// and instances, which other users of the machine have no business reading.
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

fn single_writer() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    builder
}

fn open_error(path: &Path, e: redb::DatabaseError) -> EventsError {
    let path = path.to_path_buf();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => EventsError::Busy { path },
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::NotFound =>
        {
            EventsError::NotFound { path }
        }
        source => EventsError::Open { path, source },
    }
}

fn validate_app(app: &str) -> Result<(), EventsError> {
    if app.is_empty() || app.chars().any(char::is_control) {
        return Err(EventsError::InvalidApp(app.to_owned()));
    }
    Ok(())
}

/// One CamelCase word: an ASCII capital, then ASCII letters and digits.
fn validate_reason(reason: &str) -> Result<(), EventsError> {
    let mut chars = reason.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(EventsError::InvalidReason(reason.to_owned()));
    }
    Ok(())
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The current time, unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    ccd_clock::wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ms)
}
