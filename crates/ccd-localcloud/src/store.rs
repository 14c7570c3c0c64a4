//! Every resource of the local cloud, in memory for speed and in an embedded
//! database (redb) so that state survives a restart.
//!
//! Values are held as compact JSON text and parsed on read: a parsed
//! `serde_json::Value` costs several times the bytes, and memory per
//! simulated instance is what bounds a scale test.
//!
//! Writes change memory at once, under one lock, so checks such as "already
//! exists" or "stale fingerprint" are atomic with the write. A writer task then
//! commits batches to disk (group commit); a mutating request waits for the
//! batch holding its write before it answers, so an acknowledged change is
//! durable without paying one disk sync per request.
//!
//! A failed commit undoes, in memory, every write not yet on disk (the failed
//! batch and those made since, which were checked against it), fails their
//! requests, and writes the undone keys' values again so the file matches
//! memory whatever the failed commit left in it. `docs/decisions.md` says why.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

const RESOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("resources");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state database {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("the state database failed: {0}")]
    Db(String),
    #[error("stored resource {key} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    /// The write, or one made since the caller's first, was undone because
    /// writing it to disk failed.
    #[error("the local cloud could not save the change to disk, so it was undone: {0}")]
    NotSaved(String),
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A resource key: its path below `/compute/v1/`, such as
/// `projects/p/zones/z/instances/web-1`.
pub type Key = String;

#[derive(Debug, Clone)]
pub struct Change {
    pub key: Key,
}

#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    map: RwLock<BTreeMap<Key, Box<[u8]>>>,
    pending: Mutex<Pending>,
    wake_writer: tokio::sync::Notify,
    progress: watch::Sender<Progress>,
    changes: broadcast::Sender<Change>,
    /// The database file; `None` keeps everything in memory only.
    file: Option<PathBuf>,
    /// `None` after a failed commit, until the next commit opens it again.
    db: Mutex<Option<Database>>,
    closing: AtomicBool,
}

#[derive(Debug, Default)]
struct Pending {
    seq: u64,
    /// How many times a failed commit undid the writes not on disk.
    epoch: u64,
    writes: Batch,
}

type Batch = BTreeMap<Key, Write>;

#[derive(Debug, Clone)]
struct Write {
    /// The new value; `None` deletes.
    value: Option<Vec<u8>>,
    /// What the key held before the batch's first write to it: what memory
    /// goes back to if the batch cannot be committed.
    prior: Option<Box<[u8]>>,
}

/// How far the writer got, for [`Store::durable`].
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every write of the current epoch up to this one is on disk.
    durable: u64,
    epoch: u64,
    /// `durable` when the last undo happened: writes up to it were kept.
    kept: u64,
    /// Why the last failed commit failed.
    cause: String,
}

/// A write's place in the commit order (or now's, [`Store::mark`]); wait on
/// it with [`Store::durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seq {
    n: u64,
    epoch: u64,
}

impl Seq {
    /// The writes from `self` to `last`, as one: durable only if none of
    /// them was undone. A request making several writes waits on
    /// `first.through(last)` (or `store.mark().through(last)`).
    pub fn through(self, last: Seq) -> Seq {
        Seq {
            n: self.n.max(last.n),
            epoch: self.epoch.min(last.epoch),
        }
    }
}

impl Store {
    /// A store kept only in memory (tests, simulations).
    pub fn in_memory() -> Self {
        Self::with_db(None, BTreeMap::new())
    }

    /// Opens (or creates) the database in `dir` and loads every resource.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("localcloud.redb");
        let db = open_db(&path)?;
        let mut map: BTreeMap<Key, Box<[u8]>> = BTreeMap::new();
        {
            let txn = db.begin_write().map_err(db_err)?;
            txn.open_table(RESOURCES).map_err(db_err)?;
            txn.commit().map_err(db_err)?;
            let txn = db.begin_read().map_err(db_err)?;
            let table = txn.open_table(RESOURCES).map_err(db_err)?;
            for row in table.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let key = k.value().to_owned();
                serde_json::from_slice::<serde::de::IgnoredAny>(v.value()).map_err(|source| {
                    StoreError::Corrupt {
                        key: key.clone(),
                        source,
                    }
                })?;
                map.insert(key, v.value().into());
            }
        }
        Ok(Self::with_db(Some((path, db)), map))
    }

    fn with_db(db: Option<(PathBuf, Database)>, map: BTreeMap<Key, Box<[u8]>>) -> Self {
        let (changes, _) = broadcast::channel(8192);
        let (file, db) = db.unzip();
        let inner = Arc::new(Inner {
            map: RwLock::new(map),
            pending: Mutex::new(Pending::default()),
            wake_writer: tokio::sync::Notify::new(),
            progress: watch::channel(Progress::default()).0,
            changes,
            file,
            db: Mutex::new(db),
            closing: Default::default(),
        });
        Store { inner }
    }

    /// Starts the task that commits writes to disk. Call once, inside a runtime.
    pub fn spawn_writer(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                let (through, batch) = {
                    let mut p = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                    (p.seq, std::mem::take(&mut p.writes))
                };
                if batch.is_empty() {
                    if inner.closing.load(Ordering::Acquire) {
                        break;
                    }
                    inner.wake_writer.notified().await;
                    continue;
                }
                let batch = Arc::new(batch);
                let job = {
                    let (inner, batch) = (inner.clone(), batch.clone());
                    move || inner.commit(&batch)
                };
                let result = match tokio::task::spawn_blocking(job).await {
                    Ok(result) => result,
                    Err(e) => Err(StoreError::Db(format!("the state writer panicked: {e}"))),
                };
                match result {
                    Ok(()) => {
                        failures = 0;
                        inner.progress.send_modify(|p| p.durable = through);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::error!(
                            error = %e,
                            writes = batch.len(),
                            "cannot persist local cloud state: undoing every write not on disk"
                        );
                        inner.undo(Arc::unwrap_or_clone(batch), &e);
                        // A disk that keeps failing does not hold shutdown for ever.
                        if failures >= 3 && inner.closing.load(Ordering::Acquire) {
                            tracing::error!("closing the store without saving what is left");
                            break;
                        }
                        // A failing disk is not hammered; what is written meanwhile waits.
                        tokio::time::sleep(retry_delay(failures)).await;
                    }
                }
            }
        })
    }

    /// Asks the writer to commit what is pending and end; the database
    /// closes when the last handle to the store goes.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.wake_writer.notify_one();
    }

    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.read().get(key).and_then(|b| parse(b))
    }

    /// Every resource whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Vec<(Key, Arc<Value>)> {
        self.scan(prefix, |_| true)
    }

    /// The resources under `prefix` whose keys pass `keep`; only those are parsed.
    pub fn scan(&self, prefix: &str, mut keep: impl FnMut(&str) -> bool) -> Vec<(Key, Arc<Value>)> {
        self.read()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| keep(k))
            .filter_map(|(k, v)| Some((k.clone(), parse(v)?)))
            .collect()
    }

    /// The keys under `prefix` that pass `keep`, without reading values.
    pub fn keys(&self, prefix: &str, mut keep: impl FnMut(&str) -> bool) -> Vec<Key> {
        self.read()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| keep(k))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Reads, decides and writes one key atomically. `decide` sees the current
    /// value and returns the new one (`None` deletes), or an error that
    /// leaves the store untouched.
    pub fn update<E>(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&Value>) -> Result<Option<Value>, E>,
    ) -> Result<Seq, E> {
        let mut map = self.inner.map.write().unwrap_or_else(|e| e.into_inner());
        let old = map.get(key).and_then(|b| parse(b));
        let next = decide(old.as_deref())?;
        let bytes = next
            .as_ref()
            .map(|v| serde_json::to_vec(v).unwrap_or_default());
        let prior = match &bytes {
            Some(b) => map.insert(key.to_owned(), b.clone().into_boxed_slice()),
            None => map.remove(key),
        };
        let seq = {
            let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.seq += 1;
            // A store in memory only has nothing to commit or undo.
            if self.inner.file.is_some() {
                match p.writes.entry(key.to_owned()) {
                    Entry::Occupied(mut e) => e.get_mut().value = bytes,
                    Entry::Vacant(e) => {
                        e.insert(Write {
                            value: bytes,
                            prior,
                        });
                    }
                }
            }
            Seq {
                n: p.seq,
                epoch: p.epoch,
            }
        };
        drop(map);
        self.inner.wake_writer.notify_one();
        let _ = self.inner.changes.send(Change {
            key: key.to_owned(),
        });
        Ok(seq)
    }

    pub fn put(&self, key: &str, value: Value) -> Seq {
        match self.update::<std::convert::Infallible>(key, |_| Ok(Some(value))) {
            Ok(seq) => seq,
            Err(never) => match never {},
        }
    }

    pub fn delete(&self, key: &str) -> Seq {
        match self.update::<std::convert::Infallible>(key, |_| Ok(None)) {
            Ok(seq) => seq,
            Err(never) => match never {},
        }
    }

    /// Now, in the commit order: a request that makes several writes takes
    /// it first and waits on `mark.through(last)`, so that it fails if any
    /// of them is undone, even one it did not keep the [`Seq`] of.
    pub fn mark(&self) -> Seq {
        let p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        Seq {
            n: p.seq,
            epoch: p.epoch,
        }
    }

    /// Waits until the write `seq` is on disk (at once for an in-memory
    /// store). Fails if a failed commit undid it, or may have: a waiter that
    /// wakes only after two undos is told so even if its write was kept (a
    /// retried success, never an acknowledged loss).
    pub async fn durable(&self, seq: Seq) -> Result<(), StoreError> {
        if self.inner.file.is_none() {
            return Ok(());
        }
        let mut rx = self.inner.progress.subscribe();
        let progress = rx
            .wait_for(|p| p.durable >= seq.n || p.epoch > seq.epoch)
            .await
            .map_err(|_| StoreError::NotSaved("the state writer stopped".to_owned()))?;
        let kept = progress.epoch == seq.epoch
            || (progress.epoch == seq.epoch + 1 && seq.n <= progress.kept);
        if kept {
            Ok(())
        } else {
            Err(StoreError::NotSaved(progress.cause.clone()))
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Key, Box<[u8]>>> {
        self.inner.map.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// 50 ms after the first failure, doubling up to 5 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(50 << failures.clamp(1, 8).saturating_sub(1)).min(Duration::from_secs(5))
}

/// Opens (or creates) the database file.
fn open_db(path: &Path) -> Result<Database, StoreError> {
    let open_error = |source: redb::DatabaseError| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    // Owner only: the state holds certificates' private keys and instances'
    // metadata. A file an older version left readable by others is tightened.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| open_error(e.into()))?;
    let mode = file
        .metadata()
        .map_err(|e| open_error(e.into()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| open_error(e.into()))?;
    }
    let backend = redb::backends::FileBackend::new(file).map_err(open_error)?;
    // Tests put a backend in between that fails on demand (`faulty`).
    #[cfg(test)]
    let backend = faulty::Faulty::wrap(path, backend);
    // Every value lives in memory already and the file is read only at
    // start-up, so redb's page cache would hold a second copy for nothing.
    redb::Builder::new()
        .set_cache_size(1 << 20)
        .create_with_backend(backend)
        .map_err(open_error)
}

/// Stored bytes were written by `update` from a `Value`, so they parse;
/// a failure would be a bug, reported rather than panicking.
fn parse(bytes: &[u8]) -> Option<Arc<Value>> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            tracing::error!(error = %e, "a stored resource does not parse");
            None
        }
    }
}

impl Inner {
    fn commit(&self, writes: &Batch) -> Result<(), StoreError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut slot = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let db = match &mut *slot {
            Some(db) => db,
            None => slot.insert(open_db(path)?),
        };
        let result = write_batch(db, writes);
        if result.is_err() {
            // redb refuses every call after an I/O error until the file is
            // opened again; only a fresh open trusts nothing from before it
            // (as PostgreSQL does not retry a failed fsync).
            *slot = None;
        }
        result
    }

    /// Puts memory back to what the last successful commit wrote, for the
    /// failed batch's keys and for every write made since it was taken: those
    /// were checked against values that never reached the disk (a resource
    /// may refer to one that was undone). Fails their waiters and tells
    /// watchers of each key that changed back.
    fn undo(&self, failed: Batch, cause: &StoreError) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut restore: BTreeMap<Key, Option<Box<[u8]>>> = std::mem::take(&mut p.writes)
            .into_iter()
            .map(|(key, w)| (key, w.prior))
            .collect();
        // The failed batch's priors are older than the later writes' ones.
        restore.extend(failed.into_iter().map(|(key, w)| (key, w.prior)));
        let mut changed = Vec::new();
        for (key, prior) in restore {
            let now = match &prior {
                Some(bytes) => map.insert(key.clone(), bytes.clone()),
                None => map.remove(&key),
            };
            if now != prior {
                changed.push(key.clone());
            }
            // A failed fsync may still have left the batch in the file, so
            // the undone values are written again for the file to match.
            let value = prior.as_deref().map(<[u8]>::to_vec);
            p.writes.insert(key, Write { value, prior });
        }
        tracing::warn!(
            keys = changed.len(),
            "undid the changes that could not be saved"
        );
        // Watchers hear of it before a failed request is answered.
        for key in changed {
            let _ = self.changes.send(Change { key });
        }
        p.epoch += 1;
        let epoch = p.epoch;
        // Under the lock, so no write of the new epoch is waited on before it.
        self.progress.send_modify(|s| {
            s.epoch = epoch;
            s.kept = s.durable;
            s.cause = cause.to_string();
        });
    }
}

fn write_batch(db: &Database, writes: &Batch) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(db_err)?;
    {
        let mut table = txn.open_table(RESOURCES).map_err(db_err)?;
        for (key, write) in writes {
            match &write.value {
                Some(bytes) => {
                    table
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(db_err)?;
                }
                None => {
                    table.remove(key.as_str()).map_err(db_err)?;
                }
            }
        }
    }
    txn.commit().map_err(db_err)
}

#[cfg(test)]
pub(crate) mod faulty {
    use std::collections::HashMap;
    use std::io;
    use std::ops::Bound;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::{Arc, LazyLock, Mutex};

    use redb::backends::FileBackend;
    use redb::{BackendError, StorageBackend};

    /// The faults of one database file; it outlives a reopen of the file.
    #[derive(Debug, Default)]
    pub struct Switch {
        /// How many of the next `fsync`s fail, after the data was written:
        /// the file may hold a commit that was reported as failed.
        pub failing_syncs: AtomicU32,
        /// Every write fails, as on a full disk, until cleared.
        pub full: AtomicBool,
        /// An `fsync` waits while this is set, counting itself in `held`.
        pub hold: AtomicBool,
        pub held: AtomicU32,
    }

    static SWITCHES: LazyLock<Mutex<HashMap<PathBuf, Arc<Switch>>>> =
        LazyLock::new(Default::default);

    /// The switch of the database file at `path`.
    pub fn switch(path: &Path) -> Arc<Switch> {
        let mut all = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(path.to_owned()).or_default().clone()
    }

    #[derive(Debug)]
    pub struct Faulty {
        file: FileBackend,
        switch: Arc<Switch>,
    }

    impl Faulty {
        pub fn wrap(path: &Path, file: FileBackend) -> Self {
            Faulty {
                file,
                switch: switch(path),
            }
        }

        fn check_full(&self) -> Result<(), io::Error> {
            if self.switch.full.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected: disk full",
                ));
            }
            Ok(())
        }
    }

    impl StorageBackend for Faulty {
        fn len(&self) -> Result<u64, io::Error> {
            self.file.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
            self.file.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), io::Error> {
            self.check_full()?;
            self.file.set_len(len)
        }
        fn sync_data(&self) -> Result<(), io::Error> {
            if self.switch.hold.load(Ordering::Acquire) {
                self.switch.held.fetch_add(1, Ordering::AcqRel);
                while self.switch.hold.load(Ordering::Acquire) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            let failing = &self.switch.failing_syncs;
            if failing
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(io::Error::other("injected: fsync failed"));
            }
            self.file.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
            self.check_full()?;
            self.file.write(offset, data)
        }
        fn close(&self) -> Result<(), io::Error> {
            self.file.close()
        }
        fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.file.try_lock_range(start, end)
        }
        fn try_lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.file.try_lock_shared_range(start, end)
        }
        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.file.lock_range(start, end)
        }
        fn lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), BackendError> {
            self.file.lock_shared_range(start, end)
        }
        fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.file.unlock_range(start, end)
        }
        fn query_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.file.query_lock_range(start, end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = scratch("reopen");
        {
            let store = Store::open(&dir).unwrap();
            let writer = store.spawn_writer();
            store.put("projects/p/global/firewalls/a", json!({"name": "a"}));
            let seq = store.put("projects/p/global/firewalls/b", json!({"name": "b"}));
            store.delete("projects/p/global/firewalls/a");
            let last = store.put(
                "projects/p/global/networks/default",
                json!({"name": "default"}),
            );
            assert!(last > seq);
            store.durable(last).await.unwrap();
            store.close();
            writer.await.unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let keys: Vec<_> = store
            .list("projects/p/global/")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "projects/p/global/firewalls/b",
                "projects/p/global/networks/default"
            ]
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_state_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch("mode");
        let file = dir.join("localcloud.redb");
        let mode = || std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        drop(Store::open(&dir).unwrap());
        assert_eq!(mode(), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(Store::open(&dir).unwrap());
        assert_eq!(mode(), 0o600, "a file left readable by others is tightened");
        std::fs::remove_dir_all(dir).ok();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ccd-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn keys_changed(changes: &mut broadcast::Receiver<Change>) -> Vec<Key> {
        std::iter::from_fn(|| changes.try_recv().ok())
            .map(|c| c.key)
            .collect()
    }

    /// Closes the store, waits for its writer and opens the file again.
    async fn reopen(store: Store, writer: tokio::task::JoinHandle<()>, dir: &Path) -> Store {
        store.close();
        writer.await.unwrap();
        drop(store);
        Store::open(dir).unwrap()
    }

    #[tokio::test]
    async fn a_failed_commit_fails_its_write_and_puts_memory_and_disk_back() {
        let dir = scratch("failed-commit");
        let switch = faulty::switch(&dir.join("localcloud.redb"));
        let store = Store::open(&dir).unwrap();
        let writer = store.spawn_writer();
        let before = store.put("k", json!(1));
        store.durable(before).await.unwrap();

        // The fsync fails after the data was written: the file may hold the
        // batch although the commit was reported as failed.
        switch.failing_syncs.store(1, Ordering::Release);
        let mut changes = store.subscribe();
        let since = store.mark();
        let failed = store.put("k", json!(2));
        let e = store.durable(failed).await.unwrap_err();
        assert!(e.to_string().contains("injected: fsync failed"), "{e}");
        assert_eq!(*store.get("k").unwrap(), json!(1));
        // Watchers saw 2 and learn it went back.
        assert_eq!(keys_changed(&mut changes), ["k", "k"]);
        // A write committed before the failure stays acknowledged.
        store.durable(before).await.unwrap();

        let later = store.put("other", json!(3));
        store.durable(later).await.unwrap();
        // A request whose writes straddle the undo is not acknowledged.
        assert!(store.durable(since.through(later)).await.is_err());

        let store = reopen(store, writer, &dir).await;
        assert_eq!(*store.get("k").unwrap(), json!(1));
        assert_eq!(*store.get("other").unwrap(), json!(3));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn writes_made_while_the_failed_batch_was_committed_are_undone_with_it() {
        let dir = scratch("dependent-writes");
        let switch = faulty::switch(&dir.join("localcloud.redb"));
        let store = Store::open(&dir).unwrap();
        let writer = store.spawn_writer();
        let kept = store.put("network", json!("old"));
        store.durable(kept).await.unwrap();

        switch.failing_syncs.store(1, Ordering::Release);
        switch.hold.store(true, Ordering::Release);
        let network = store.put("network", json!("new"));
        while switch.held.load(Ordering::Acquire) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Checked against the new network, which never reaches the disk.
        let instance = store.put("instance", json!({"network": "new"}));
        let again = store.put("network", json!("newer"));
        switch.hold.store(false, Ordering::Release);

        for seq in [network, instance, again] {
            assert!(store.durable(seq).await.is_err());
        }
        assert_eq!(*store.get("network").unwrap(), json!("old"));
        assert!(store.get("instance").is_none());
        store.durable(kept).await.unwrap();

        let store = reopen(store, writer, &dir).await;
        assert_eq!(*store.get("network").unwrap(), json!("old"));
        assert!(store.get("instance").is_none());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_full_disk_fails_every_write_until_it_has_room_again() {
        let dir = scratch("full-disk");
        let switch = faulty::switch(&dir.join("localcloud.redb"));
        let store = Store::open(&dir).unwrap();
        let writer = store.spawn_writer();
        switch.full.store(true, Ordering::Release);
        let a = store.put("a", json!(1));
        assert!(store.durable(a).await.is_err());
        // The database is opened again for the next batch, which fails as well.
        let b = store.put("b", json!(2));
        assert!(store.durable(b).await.is_err());
        assert_eq!(store.len(), 0);

        switch.full.store(false, Ordering::Release);
        let c = store.put("c", json!(3));
        store.durable(c).await.unwrap();
        let store = reopen(store, writer, &dir).await;
        let keys: Vec<_> = store.list("").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["c"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_refused_update_changes_nothing() {
        let store = Store::in_memory();
        store.put("k", json!(1));
        let r: Result<Seq, &str> = store.update("k", |_| Err("no"));
        assert!(r.is_err());
        assert_eq!(*store.get("k").unwrap(), json!(1));
    }
}
