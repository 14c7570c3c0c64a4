//! The shared state of one local cloud: its store, its address, its faults.

use std::sync::Arc;

use crate::faults::Faults;
use crate::paths;
use crate::store::Store;

#[derive(Debug)]
pub struct Cloud {
    pub store: Store,
    /// `http://HOST:PORT/compute/v1/`: links name resources where they live.
    pub base: String,
    pub faults: Faults,
    pub health: crate::runtime::health::Health,
}

impl Cloud {
    pub fn new(store: Store, base: String) -> Arc<Self> {
        Arc::new(Cloud { store, base, faults: Faults::default(), health: Default::default() })
    }

    /// The full link of a key.
    pub fn link(&self, key: &str) -> String {
        format!("{}{key}", self.base)
    }

    /// The key of a link or partial reference.
    pub fn key_of(&self, reference: &str) -> String {
        paths::normalize(reference, "")
    }
}
