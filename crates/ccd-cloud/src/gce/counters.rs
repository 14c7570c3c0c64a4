//! How many calls the adapter sent, by kind: what a converged controller
//! costs in API quota, for `/metrics` and the benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: AtomicU64,
    mutations: AtomicU64,
    operation_polls: AtomicU64,
}

/// Calls sent since the adapter was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiCalls {
    /// get and list calls.
    pub reads: u64,
    /// insert, patch, delete and set* calls.
    pub mutations: u64,
    /// Polls of a mutation's operation until it is DONE.
    pub operation_polls: u64,
}

impl Counters {
    pub(crate) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The first poll of a mutation sends it; the others wait for it.
    pub(crate) fn poll(&self, first: bool) {
        let counter = if first {
            &self.mutations
        } else {
            &self.operation_polls
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ApiCalls {
        ApiCalls {
            reads: self.reads.load(Ordering::Relaxed),
            mutations: self.mutations.load(Ordering::Relaxed),
            operation_polls: self.operation_polls.load(Ordering::Relaxed),
        }
    }
}
