//! From deliveries back to messages: each message once, in order per source.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::{Envelope, Message, Subscription};

/// Why a delivery was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not an envelope of JSON.
    Malformed,
    /// An envelope of another schema or version than the consumer reads.
    UnknownSchema,
    /// Delivered before (at-least-once delivery).
    Duplicate,
    /// Older than a message of the same source already handled (reordered).
    Stale,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::Malformed,
        DropReason::UnknownSchema,
        DropReason::Duplicate,
        DropReason::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownSchema => "unknown_schema",
            DropReason::Duplicate => "duplicate",
            DropReason::Stale => "stale",
        }
    }
}

/// Dropped deliveries by reason, for `/metrics`; shared by a process's inboxes.
#[derive(Debug, Default)]
pub struct Drops {
    counts: [AtomicU64; 4],
}

impl Drops {
    pub fn count(&self, reason: DropReason) {
        self.counts[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }
}

/// What [`Dedup`] makes of a message's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    New,
    Duplicate,
    Stale,
}

/// The highest sequence handled per (source, run). Runs not heard from for
/// `forget_after` are forgotten, so memory follows the live sources.
#[derive(Debug)]
pub struct Dedup {
    last: HashMap<(String, String), (u64, Instant)>,
    forget_after: Duration,
    last_sweep: Instant,
}

impl Dedup {
    pub fn new(forget_after: Duration) -> Self {
        Dedup {
            last: HashMap::new(),
            forget_after,
            last_sweep: Instant::now(),
        }
    }

    pub fn admit(&mut self, source: &str, run: &str, seq: u64) -> Admit {
        let now = Instant::now();
        if now.duration_since(self.last_sweep) >= self.forget_after {
            let forget_after = self.forget_after;
            self.last
                .retain(|_, (_, seen)| now.duration_since(*seen) < forget_after);
            self.last_sweep = now;
        }
        let key = (source.to_owned(), run.to_owned());
        match self.last.get_mut(&key) {
            Some((last, _)) if seq == *last => Admit::Duplicate,
            Some((last, _)) if seq < *last => Admit::Stale,
            Some((last, seen)) => {
                *last = seq;
                *seen = now;
                Admit::New
            }
            None => {
                self.last.insert(key, (seq, now));
                Admit::New
            }
        }
    }
}

/// The messages of one subscription, each once and in order per source.
///
/// A delivery is acknowledged when it is handed out: consumers are
/// level-triggered and every source reports again at its interval, so a
/// message lost to a crash is made good by the next one, while one that
/// could not be handled and came back would be a duplicate anyway.
#[derive(Debug)]
pub struct Inbox<T> {
    subscription: Subscription,
    name: String,
    dedup: Dedup,
    drops: Arc<Drops>,
    kind: PhantomData<fn() -> T>,
}

impl<T: Message> Inbox<T> {
    /// `name` is the subscription's, for log lines.
    pub fn new(subscription: Subscription, name: impl Into<String>, drops: Arc<Drops>) -> Self {
        Inbox {
            subscription,
            name: name.into(),
            dedup: Dedup::new(Duration::from_secs(600)),
            drops,
            kind: PhantomData,
        }
    }

    /// The next message worth handling; `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Envelope<T>> {
        loop {
            let delivery = self.subscription.next().await?;
            let judged = self.judge(&delivery.payload.data);
            delivery.ack();
            match judged {
                Ok(envelope) => return Some(envelope),
                Err((reason, detail)) => {
                    self.drops.count(reason);
                    tracing::warn!(
                        subscription = %self.name,
                        reason = reason.as_str(),
                        %detail,
                        "bus message dropped"
                    );
                }
            }
        }
    }

    fn judge(&mut self, data: &[u8]) -> Result<Envelope<T>, (DropReason, String)> {
        #[derive(serde::Deserialize)]
        struct Head {
            schema: String,
        }
        let head: Head = serde_json::from_slice(data)
            .map_err(|e| (DropReason::Malformed, format!("not an envelope: {e}")))?;
        if head.schema != T::SCHEMA {
            return Err((
                DropReason::UnknownSchema,
                format!(
                    "schema {:?}, this consumer reads {}",
                    head.schema,
                    T::SCHEMA
                ),
            ));
        }
        let envelope: Envelope<T> = serde_json::from_slice(data).map_err(|e| {
            (
                DropReason::Malformed,
                format!("a {} that does not parse: {e}", T::SCHEMA),
            )
        })?;
        match self
            .dedup
            .admit(&envelope.source, &envelope.run, envelope.seq)
        {
            Admit::New => Ok(envelope),
            Admit::Duplicate => Err((
                DropReason::Duplicate,
                format!("{} #{} seen before", envelope.source, envelope.seq),
            )),
            Admit::Stale => Err((
                DropReason::Stale,
                format!(
                    "{} #{} older than one handled",
                    envelope.source, envelope.seq
                ),
            )),
        }
    }
}
