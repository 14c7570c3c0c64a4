//! Either bus, chosen at run time: in-process under `ccd up`, Pub/Sub when
//! reconcilers and agents run as separate processes.

use crate::{Bus, BusError, InProcessBus, Payload, PubSubBus, Subscription, Topic};

#[derive(Debug)]
pub enum AnyBus {
    InProcess(InProcessBus),
    PubSub(PubSubBus),
}

impl Bus for AnyBus {
    async fn publish(&self, topic: Topic, payload: Payload) -> Result<(), BusError> {
        match self {
            AnyBus::InProcess(b) => b.publish(topic, payload).await,
            AnyBus::PubSub(b) => b.publish(topic, payload).await,
        }
    }

    async fn subscribe(&self, topic: Topic, subscription: &str) -> Result<Subscription, BusError> {
        match self {
            AnyBus::InProcess(b) => b.subscribe(topic, subscription).await,
            AnyBus::PubSub(b) => b.subscribe(topic, subscription).await,
        }
    }
}
