//! The bus between ccd's agents and its reconcilers.
//!
//! A [`Bus`] carries opaque payloads on a [`Topic`] to named subscriptions,
//! at least once, with the semantics of Google Pub/Sub: every subscription
//! of a topic gets every message published after it exists; a message
//! delivered and not acknowledged is delivered again. Two adapters stand
//! behind it: [`InProcessBus`] (one daemon, `ccd up`) and Pub/Sub.
//!
//! Above it, [`Message`] types are what agents and reconcilers say to each
//! other, defined once here and used from both sides. They travel in an
//! [`Envelope`] naming their schema and version, the source and a sequence
//! number per source; [`Inbox`] turns deliveries back into messages,
//! dropping malformed, unknown, duplicated and stale ones with a log line
//! and a count ([`Drops`]), so consumers see each message once, in order
//! per source.

mod any;
#[cfg(feature = "emulator")]
pub mod emulator;
mod envelope;
mod inbox;
mod memory;
pub mod messages;
mod pubsub;

use std::collections::BTreeMap;
use std::future::Future;

pub use any::AnyBus;
pub use envelope::{Envelope, Message, Outbox};
pub use inbox::{Admit, Dedup, DropReason, Drops, Inbox};
pub use memory::InProcessBus;
pub use pubsub::{PubSubBus, PubSubConfig};

/// What the bus carries. Each topic has one kind of [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Agents' periodic reports: health and resource figures per instance.
    Reports,
    /// Agents' alerts: unhealthy, recovered, resource pressure.
    Alerts,
    /// Reconcilers' orders to agents (restart the app).
    Commands,
}

impl Topic {
    /// The topic's name on the bus (a Pub/Sub topic ID, after the bus's prefix).
    pub fn name(self) -> &'static str {
        match self {
            Topic::Reports => "agent-reports",
            Topic::Alerts => "agent-alerts",
            Topic::Commands => "agent-commands",
        }
    }
}

/// A message as the bus carries it: bytes and string attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is closed")]
    Closed,
    #[error("subscription {0} already has a consumer in this process")]
    AlreadySubscribed(String),
    #[error("{context}: {message}")]
    Transport { context: String, message: String },
    #[error("encoding a {schema} message: {source}")]
    Encode {
        schema: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// A bus: in-process channels or Google Pub/Sub. Reconcilers never know which.
pub trait Bus: Send + Sync + 'static {
    /// Publishes to the topic (created when missing); resolves once the bus
    /// has the message, so that it reaches every subscription.
    fn publish(
        &self,
        topic: Topic,
        payload: Payload,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Starts consuming `subscription` of the topic (both created when
    /// missing). Deliveries not acknowledged are delivered again.
    fn subscribe(
        &self,
        topic: Topic,
        subscription: &str,
    ) -> impl Future<Output = Result<Subscription, BusError>> + Send;
}

/// Acknowledges one delivery (or asks for it again) with its bus.
pub trait Acker: Send + Sync + std::fmt::Debug {
    fn ack(&self);
    fn nack(&self);
}

/// One delivery of a message. Acknowledge it once handled; one dropped
/// without an answer is delivered again, as with Pub/Sub's ack deadline.
#[derive(Debug)]
pub struct Delivery {
    pub payload: Payload,
    acker: Option<Box<dyn Acker>>,
}

impl Delivery {
    pub fn new(payload: Payload, acker: Box<dyn Acker>) -> Self {
        Delivery {
            payload,
            acker: Some(acker),
        }
    }

    /// Handled (or judged worthless): never delivered again.
    pub fn ack(mut self) {
        if let Some(a) = self.acker.take() {
            a.ack();
        }
    }

    /// Not handled: deliver it again.
    pub fn nack(mut self) {
        if let Some(a) = self.acker.take() {
            a.nack();
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(a) = self.acker.take() {
            a.nack();
        }
    }
}

/// The deliveries of one subscription, as they arrive.
#[derive(Debug)]
pub struct Subscription {
    rx: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
}

impl Subscription {
    pub fn new(rx: tokio::sync::mpsc::UnboundedReceiver<Delivery>) -> Self {
        Subscription { rx }
    }

    /// The next delivery; `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}
