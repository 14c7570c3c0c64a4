//! Cloud Storage's Pub/Sub notifications of the spec bucket, as change hints
//! for the controller (`bucketNotifications` in its configuration).
//!
//! The bucket's notification configuration and the subscription are the
//! user's (deploy/README.md says how to make them); ccd only consumes. Every
//! message is acknowledged once judged: a hint is not work, the reconcile it
//! leads to reads the spec again, and the store's poller and the periodic
//! list repair whatever a lost message would have said.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use ccd_bus::{PubSubBus, PubSubConfig};
use ccd_runtime::Changes;
use ccd_store::{Notice, Notices};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// `bucketNotifications` in the controller's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketNotifications {
    /// `projects/PROJECT/subscriptions/NAME`: a subscription of the topic the
    /// bucket's notifications go to (`PUBSUB_EMULATOR_HOST` for an emulator).
    pub subscription: String,
    /// How often the bucket is still listed for changes, as a backstop for
    /// lost messages (default 60; 10 without notifications).
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
}

fn default_poll_seconds() -> u64 {
    60
}

impl BucketNotifications {
    /// The project of the subscription, checking the name's shape.
    pub fn project(&self) -> Result<&str, String> {
        let parts: Vec<&str> = self.subscription.split('/').collect();
        match parts.as_slice() {
            ["projects", project, "subscriptions", name]
                if !project.is_empty() && !name.is_empty() =>
            {
                Ok(project)
            }
            _ => Err(format!(
                "bucketNotifications.subscription: {:?} is not a subscription's full name; write \
                 projects/PROJECT/subscriptions/NAME",
                self.subscription
            )),
        }
    }
}

/// What the notifications came to, for `/metrics`: a count per
/// [`Notice::kind`].
#[derive(Debug)]
pub struct NoticeCounts([(&'static str, AtomicU64); 4]);

impl Default for NoticeCounts {
    fn default() -> Self {
        Self(["hint", "seen", "elsewhere", "malformed"].map(|kind| (kind, AtomicU64::new(0))))
    }
}

impl NoticeCounts {
    fn count(&self, notice: &Notice) {
        if let Some((_, n)) = self.0.iter().find(|(kind, _)| *kind == notice.kind()) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP ccd_bucket_notifications_total Cloud Storage notifications of the spec bucket: \
             hints given, generations already seen, other objects, and messages that are not \
             notifications.\n# TYPE ccd_bucket_notifications_total counter"
        );
        for (result, n) in &self.0 {
            let _ = writeln!(
                out,
                "ccd_bucket_notifications_total{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

/// Consumes the subscription until `stop`; the hints it gives, for
/// [`ccd_controller::SpecSource::with_hints`].
pub async fn hints(
    settings: &BucketNotifications,
    mut notices: Notices,
    counts: Arc<NoticeCounts>,
    stop: CancellationToken,
) -> anyhow::Result<Changes> {
    let project = settings.project().map_err(anyhow::Error::msg)?;
    let bus = PubSubBus::new(PubSubConfig::from_env(project))
        .await
        .context("bucketNotifications: cannot connect to Pub/Sub")?;
    let mut subscription = bus
        .consume(&settings.subscription)
        .await
        .context("bucketNotifications")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        // Kept for as long as the subscription is consumed.
        let _bus = bus;
        loop {
            let delivery = tokio::select! {
                () = stop.cancelled() => return,
                next = subscription.next() => match next {
                    Some(d) => d,
                    None => return,
                },
            };
            let notice = notices.admit(&delivery.payload.attributes);
            counts.count(&notice);
            match notice {
                Notice::Hint(hint) => {
                    tracing::debug!(%hint, "bucket notification");
                    if tx.send(hint).is_err() {
                        // The controller is gone; the message is judged all the same.
                        delivery.ack();
                        return;
                    }
                }
                Notice::Malformed(why) => {
                    tracing::warn!(
                        why,
                        "a message on the bucket's notification subscription is not a Cloud \
                         Storage notification; ignored"
                    );
                }
                Notice::Seen | Notice::Elsewhere => {}
            }
            delivery.ack();
        }
    });
    Ok(Box::pin(futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(subscription: &str) -> BucketNotifications {
        BucketNotifications {
            subscription: subscription.to_owned(),
            poll_seconds: 60,
        }
    }

    #[test]
    fn the_subscription_is_a_full_name() {
        assert_eq!(
            settings("projects/p1/subscriptions/specs").project(),
            Ok("p1")
        );
        for bad in [
            "specs",
            "projects/p1/topics/specs",
            "projects//subscriptions/specs",
            "projects/p1/subscriptions/",
        ] {
            let err = settings(bad).project().unwrap_err();
            assert!(err.contains("projects/PROJECT/subscriptions/NAME"), "{err}");
        }
    }
}
