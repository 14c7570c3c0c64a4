//! Per-thread shards, so that frontend workers do not contend on shared cache lines for every
//! request (counters, idle connection stacks).

use std::sync::atomic::{AtomicU64, Ordering};

/// Number of shards; a frontend rarely has more workers than this.
const SHARDS: usize = 8;

/// A number unique to the calling thread, cheaper to get and compare than a `ThreadId`.
pub(crate) fn thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEY: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    KEY.with(|key| *key)
}

/// One `T` per shard, each on its own cache lines.
#[derive(Debug, Default)]
pub(crate) struct Sharded<T> {
    shards: [Padded<T>; SHARDS],
}

/// Aligned to two cache lines: adjacent-line prefetching pairs lines on x86.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Sharded<T> {
    /// Index of the calling thread's shard.
    pub(crate) fn index() -> usize {
        (thread_key() % SHARDS as u64) as usize
    }

    /// The calling thread's shard.
    pub(crate) fn local(&self) -> &T {
        &self.shards[Self::index()].0
    }

    /// A given shard, e.g. the one a guard was counted on.
    pub(crate) fn get(&self, index: usize) -> &T {
        &self.shards[index % SHARDS].0
    }

    /// All shards, to add them up.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|padded| &padded.0)
    }
}
