//! The reflector's cache: the last known state of every object in the source.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

/// A read-only view of every object the controller knows, shared by cheap
/// clones (the REST API and reconcilers read it; only the reflector writes).
///
/// It never serves partial state: it stays empty and not ready until the
/// first full list succeeded, and that list replaces it in one step.
pub struct Cache<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    objects: RwLock<BTreeMap<String, Arc<T>>>,
    // A watch channel (not a flag) so callers can await readiness.
    ready: watch::Sender<bool>,
}

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("ready", &self.is_ready())
            .field("len", &self.len())
            .finish()
    }
}

impl<T> Cache<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                objects: RwLock::new(BTreeMap::new()),
                ready: watch::Sender::new(false),
            }),
        }
    }

    /// The object under `key`, if known.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.read(|objects| objects.get(key).cloned())
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.read(|objects| objects.keys().cloned().collect())
    }

    /// A consistent snapshot of every object, sorted by key.
    pub fn state(&self) -> BTreeMap<String, Arc<T>> {
        self.read(BTreeMap::clone)
    }

    /// How many objects are known.
    pub fn len(&self) -> usize {
        self.read(BTreeMap::len)
    }

    /// Whether no object is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first full list has filled the cache.
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Resolves once the first full list has filled the cache.
    pub async fn wait_ready(&self) {
        let mut ready = self.inner.ready.subscribe();
        // The sender lives in `self`, so this only fails if it were dropped,
        // and then there is nothing left to wait for.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    fn read<R>(&self, f: impl FnOnce(&BTreeMap<String, Arc<T>>) -> R) -> R {
        // Writers never panic while holding the lock, so a poisoned lock
        // still holds a consistent map.
        let objects = self
            .inner
            .objects
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&objects)
    }
}

impl<T: PartialEq> Cache<T> {
    /// Replaces everything with a full list, marks the cache ready, and
    /// returns the keys that were added, changed or removed.
    pub(crate) fn replace_all(&self, list: Vec<(String, T)>) -> Vec<String> {
        let mut fresh: BTreeMap<String, Arc<T>> = BTreeMap::new();
        for (key, object) in list {
            fresh.insert(key, Arc::new(object));
        }
        let mut objects = self
            .inner
            .objects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut changed: Vec<String> = fresh
            .iter()
            .filter(|(key, object)| objects.get(*key) != Some(*object))
            .map(|(key, _)| key.clone())
            .collect();
        changed.extend(
            objects
                .keys()
                .filter(|key| !fresh.contains_key(*key))
                .cloned(),
        );
        *objects = fresh;
        drop(objects);
        self.inner.ready.send_replace(true);
        changed
    }

    /// Stores what a single read returned (`None`: gone) and says whether
    /// that changed anything.
    pub(crate) fn apply(&self, key: &str, object: Option<T>) -> bool {
        let mut objects = self
            .inner
            .objects
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match object {
            Some(object) => {
                if objects.get(key).is_some_and(|known| **known == object) {
                    return false;
                }
                objects.insert(key.to_owned(), Arc::new(object));
                true
            }
            None => objects.remove(key).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_all_reports_added_changed_and_removed_keys_only() {
        let cache = Cache::new();
        assert!(!cache.is_ready());
        let changed = cache.replace_all(vec![("a".into(), 1), ("b".into(), 2)]);
        assert_eq!(changed, ["a", "b"]);
        assert!(cache.is_ready());

        let mut changed =
            cache.replace_all(vec![("a".into(), 1), ("b".into(), 3), ("c".into(), 4)]);
        changed.sort();
        assert_eq!(changed, ["b", "c"]);

        let changed = cache.replace_all(vec![("c".into(), 4)]);
        assert_eq!(changed, ["a", "b"]);
        assert_eq!(cache.keys(), ["c"]);
    }

    #[test]
    fn apply_reports_only_real_changes() {
        let cache = Cache::new();
        assert!(cache.apply("a", Some(1)));
        assert!(!cache.apply("a", Some(1)));
        assert!(cache.apply("a", Some(2)));
        assert_eq!(cache.get("a").as_deref(), Some(&2));
        assert!(cache.apply("a", None));
        assert!(!cache.apply("a", None));
        assert!(cache.is_empty());
    }
}
