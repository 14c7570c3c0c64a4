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
    pub balancers: crate::runtime::lb::Balancers,
    /// When set, every response is checked against its method's schema in
    /// the discovery document and each mismatch recorded here (tests).
    pub conformance: Option<std::sync::Mutex<Vec<String>>>,
    /// API calls answered, by reads and mutations (for the controller's benchmark).
    pub calls: CallCounts,
}

#[derive(Debug, Default)]
pub struct CallCounts {
    pub reads: std::sync::atomic::AtomicU64,
    pub mutations: std::sync::atomic::AtomicU64,
    /// Calls the fault injection failed before they did anything (counted
    /// in neither of the above).
    pub injected_faults: std::sync::atomic::AtomicU64,
}

impl Cloud {
    pub fn new(store: Store, base: String, check_responses: bool) -> Arc<Self> {
        let conformance = check_responses.then(Default::default);
        Arc::new(Cloud {
            store,
            base,
            faults: Faults::default(),
            health: Default::default(),
            balancers: Default::default(),
            conformance,
            calls: Default::default(),
        })
    }

    /// Records where a response strays from the discovery document.
    pub fn check_response(&self, method: &ccd_discovery::Method, body: &serde_json::Value) {
        let (Some(log), Some(schema)) = (&self.conformance, &method.response) else {
            return;
        };
        if let Err(errors) = ccd_discovery::Api::compute().check_response(schema, body) {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.extend(
                errors
                    .iter()
                    .map(|e| format!("{} ({schema}): {e}", method.id)),
            );
        }
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
