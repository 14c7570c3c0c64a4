//! Which resources this adapter last saw existing, by path
//! (`global/instanceTemplates/web-1a2b`): a hint, never a fact to act on.
//! A create-or-correct can go two ways, both correct: read, then insert
//! what is missing; or insert, and read what turns out to exist (409). The
//! first costs a read for what is new, the second a failed insert for what
//! exists. So a resource this adapter saw exist is read first, anything
//! else is inserted first; a wrong guess costs one call, never a check:
//! whatever exists is read and checked for ccd's mark before it is changed.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub(crate) struct Seen(Mutex<HashSet<String>>);

impl Seen {
    /// Whether the resource was there when last read, created or listed.
    pub(crate) fn exists(&self, resource: &str) -> bool {
        self.lock().contains(resource)
    }

    /// What a read, a create, a list or a delete just showed.
    pub(crate) fn saw(&self, resource: &str, exists: bool) {
        let mut set = self.lock();
        if exists {
            if !set.contains(resource) {
                set.insert(resource.to_owned());
            }
        } else {
            set.remove(resource);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Nothing panics while holding the lock.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
