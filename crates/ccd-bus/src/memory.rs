//! The bus inside one process (`ccd up`): channels, with Pub/Sub's
//! semantics where reconcilers could notice them (fan-out to subscriptions,
//! redelivery of what was not acknowledged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::{Acker, Bus, BusError, Delivery, Payload, Subscription, Topic};

/// How long a delivery that was not acknowledged waits before it comes
/// again, so that a consumer that cannot handle it does not spin.
const REDELIVERY_DELAY: Duration = Duration::from_millis(100);

type Subscriptions = HashMap<Topic, HashMap<String, UnboundedSender<Delivery>>>;

/// Channels between the agents and reconcilers of one process.
#[derive(Debug, Clone, Default)]
pub struct InProcessBus {
    subscriptions: Arc<Mutex<Subscriptions>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Bus for InProcessBus {
    async fn publish(&self, topic: Topic, payload: Payload) -> Result<(), BusError> {
        let mut subscriptions = self.lock();
        let Some(of_topic) = subscriptions.get_mut(&topic) else {
            return Ok(());
        };
        // A subscription whose consumer is gone is gone too: in one process
        // nobody comes back for its messages.
        of_topic.retain(|_, tx| !tx.is_closed());
        for tx in of_topic.values() {
            let acker = Redeliver {
                tx: tx.clone(),
                payload: payload.clone(),
            };
            // A consumer gone since the retain: nothing to deliver to.
            let _ = tx.send(Delivery::new(payload.clone(), Box::new(acker)));
        }
        Ok(())
    }

    async fn subscribe(&self, topic: Topic, subscription: &str) -> Result<Subscription, BusError> {
        let mut subscriptions = self.lock();
        let of_topic = subscriptions.entry(topic).or_default();
        if of_topic.get(subscription).is_some_and(|tx| !tx.is_closed()) {
            return Err(BusError::AlreadySubscribed(subscription.to_owned()));
        }
        let (tx, rx) = unbounded_channel();
        of_topic.insert(subscription.to_owned(), tx);
        Ok(Subscription::new(rx))
    }
}

/// Sends a delivery again when it is not acknowledged.
#[derive(Debug)]
struct Redeliver {
    tx: UnboundedSender<Delivery>,
    payload: Payload,
}

impl Acker for Redeliver {
    fn ack(&self) {}

    fn nack(&self) {
        // Nobody left to deliver to (the consumer is gone, or the process
        // is shutting down): nothing to do.
        if self.tx.is_closed() {
            return;
        }
        // The task holds the payload, not a delivery: a task dropped
        // unrun (runtime shutdown) must not nack again from its drop.
        let (tx, payload) = (self.tx.clone(), self.payload.clone());
        let send = move || {
            let acker = Redeliver {
                tx: tx.clone(),
                payload: payload.clone(),
            };
            let _ = tx.send(Delivery::new(payload, Box::new(acker)));
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(REDELIVERY_DELAY).await;
                    send();
                });
            }
            // Outside a runtime: at once.
            Err(_) => send(),
        }
    }
}
