//! Messages on the wire: a JSON envelope naming the schema, the source and
//! its sequence, around the message itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Bus, BusError, Payload, Topic};

/// A kind of message, with its schema's name and version. A consumer drops
/// a message of any other schema (a newer version it does not know) with a
/// log line and a count instead of misreading it.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// `name/vN`, e.g. `ccd.agent.report/v1`.
    const SCHEMA: &'static str;
    /// The topic messages of this kind travel on.
    const TOPIC: Topic;
}

/// What travels on the bus: the message and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// [`Message::SCHEMA`] of the body.
    pub schema: String,
    /// Who sent it (an instance's name, a reconciler): for logs and order.
    pub source: String,
    /// One run of the source (a new one at every start), so that a
    /// restarted source's sequence, which starts again at 1, is not stale.
    pub run: String,
    /// Increases by one with every message of the run.
    pub seq: u64,
    /// When it was sent, milliseconds since the Unix epoch, by the sender's
    /// clock: shown, never compared with the receiver's clock.
    pub sent_ms: u64,
    pub body: T,
}

impl<T: Message> Envelope<T> {
    pub fn encode(&self) -> Result<Payload, BusError> {
        let data = serde_json::to_vec(self).map_err(|source| BusError::Encode {
            schema: T::SCHEMA,
            source,
        })?;
        let attributes = [("schema".to_owned(), self.schema.clone())].into();
        Ok(Payload { data, attributes })
    }
}

/// Publishes one source's messages of one kind, numbering them.
#[derive(Debug)]
pub struct Outbox<B> {
    bus: Arc<B>,
    source: String,
    run: String,
    seq: AtomicU64,
}

impl<B: Bus> Outbox<B> {
    /// `source` names the sender; every outbox is a new run of it.
    pub fn new(bus: Arc<B>, source: impl Into<String>) -> Self {
        Outbox {
            bus,
            source: source.into(),
            run: new_run(),
            seq: AtomicU64::new(0),
        }
    }

    /// Publishes the message; the bus has it when this returns `Ok`.
    pub async fn publish<T: Message>(&self, body: T) -> Result<(), BusError> {
        let envelope = Envelope {
            schema: T::SCHEMA.to_owned(),
            source: self.source.clone(),
            run: self.run.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            sent_ms: now_ms(),
            body,
        };
        self.bus.publish(T::TOPIC, envelope.encode()?).await
    }
}

fn now_ms() -> u64 {
    ccd_clock::wall()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A run ID unique enough between starts of one source: the start time in
/// nanoseconds and the process ID.
fn new_run() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = ccd_clock::wall()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:x}-{:x}-{}",
        nanos,
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}
