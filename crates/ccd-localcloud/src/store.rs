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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

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
    durable: watch::Sender<u64>,
    changes: broadcast::Sender<Change>,
    db: Option<Database>,
    closing: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Pending {
    seq: u64,
    writes: BTreeMap<Key, Option<Vec<u8>>>,
}

/// A write's place in the commit order; wait on it with [`Store::durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seq(u64);

impl Store {
    /// A store kept only in memory (tests, simulations).
    pub fn in_memory() -> Self {
        Self::with_db(None, BTreeMap::new())
    }

    /// Opens (or creates) the database in `dir` and loads every resource.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("localcloud.redb");
        // Every value lives in memory already and the file is read only at
        // start-up, so redb's page cache would hold a second copy for nothing.
        let db = redb::Builder::new()
            .set_cache_size(1 << 20)
            .create(&path)
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
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
        Ok(Self::with_db(Some(db), map))
    }

    fn with_db(db: Option<Database>, map: BTreeMap<Key, Box<[u8]>>) -> Self {
        let (changes, _) = broadcast::channel(8192);
        let inner = Arc::new(Inner {
            map: RwLock::new(map),
            pending: Mutex::new(Pending::default()),
            wake_writer: tokio::sync::Notify::new(),
            durable: watch::channel(0).0,
            changes,
            db,
            closing: Default::default(),
        });
        Store { inner }
    }

    /// Starts the task that commits writes to disk. Call once, inside a runtime.
    pub fn spawn_writer(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            loop {
                inner.wake_writer.notified().await;
                let (seq, writes) = {
                    let mut p = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                    (p.seq, std::mem::take(&mut p.writes))
                };
                if !writes.is_empty() {
                    let inner2 = inner.clone();
                    let result = tokio::task::spawn_blocking(move || inner2.commit(writes)).await;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "cannot persist local cloud state")
                        }
                        Err(e) => tracing::error!(error = %e, "the state writer panicked"),
                    }
                }
                inner.durable.send_replace(seq);
                let drained = inner
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .writes
                    .is_empty();
                if drained && inner.closing.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
            }
        })
    }

    /// Asks the writer to commit what is pending and end; the database
    /// closes when the last handle to the store goes.
    pub fn close(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
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
        match &bytes {
            Some(b) => map.insert(key.to_owned(), b.clone().into_boxed_slice()),
            None => map.remove(key),
        };
        let seq = {
            let mut p = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.seq += 1;
            p.writes.insert(key.to_owned(), bytes);
            p.seq
        };
        drop(map);
        self.inner.wake_writer.notify_one();
        let _ = self.inner.changes.send(Change {
            key: key.to_owned(),
        });
        Ok(Seq(seq))
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

    /// Waits until the write `seq` is on disk (at once for an in-memory store
    /// or when no writer runs).
    pub async fn durable(&self, seq: Seq) {
        if self.inner.db.is_none() {
            return;
        }
        let mut rx = self.inner.durable.subscribe();
        let _ = rx.wait_for(|done| *done >= seq.0).await;
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
    fn commit(&self, writes: BTreeMap<Key, Option<Vec<u8>>>) -> Result<(), StoreError> {
        let Some(db) = &self.db else { return Ok(()) };
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(RESOURCES).map_err(db_err)?;
            for (key, value) in &writes {
                match value {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn writes_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("ccd-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
            store.durable(last).await;
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
    fn a_refused_update_changes_nothing() {
        let store = Store::in_memory();
        store.put("k", json!(1));
        let r: Result<Seq, &str> = store.update("k", |_| Err("no"));
        assert!(r.is_err());
        assert_eq!(*store.get("k").unwrap(), json!(1));
    }
}
