//! Cloud Storage notifications on one machine: Google's Pub/Sub emulator,
//! a topic and a subscription made as a user makes them (REST, as `gcloud
//! pubsub` does), and fake-gcs-server publishing its object events there.

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::fake_gcs::FakeGcs;

pub const PROJECT: &str = "local";
pub const TOPIC: &str = "spec-changes";
pub const SUBSCRIPTION: &str = "ccd-specs";

/// The emulator, the bucket server publishing to it, and the subscription.
#[derive(Debug)]
pub struct Notified {
    /// `host:port`, as `PUBSUB_EMULATOR_HOST` takes it.
    pub pubsub: String,
    pub gcs: FakeGcs,
    /// `projects/PROJECT/subscriptions/SUBSCRIPTION`.
    pub subscription: String,
}

impl Notified {
    pub async fn start() -> Result<Self> {
        let pubsub = tokio::task::spawn_blocking(|| ccd_bus::emulator::host().to_owned()).await?;
        let http = reqwest::Client::new();
        let topic = format!("projects/{PROJECT}/topics/{TOPIC}");
        let subscription = format!("projects/{PROJECT}/subscriptions/{SUBSCRIPTION}");
        let made = http
            .put(format!("http://{pubsub}/v1/{topic}"))
            .json(&json!({}))
            .send()
            .await
            .context("the Pub/Sub emulator makes the topic")?;
        ensure!(made.status().is_success(), "topic: {}", made.status());
        let made = http
            .put(format!("http://{pubsub}/v1/{subscription}"))
            .json(&json!({ "topic": topic, "ackDeadlineSeconds": 10 }))
            .send()
            .await
            .context("the Pub/Sub emulator makes the subscription")?;
        ensure!(
            made.status().is_success(),
            "subscription: {}",
            made.status()
        );
        let flags = [
            "-event.pubsub-project-id",
            PROJECT,
            "-event.pubsub-topic",
            TOPIC,
            "-event.list",
            "finalize,delete",
        ]
        .map(str::to_owned);
        let gcs = FakeGcs::start_with(&flags, &[("PUBSUB_EMULATOR_HOST", pubsub.as_str())]).await?;
        Ok(Self {
            pubsub,
            gcs,
            subscription,
        })
    }

    /// Publishes a message of its own on the notifications' topic: what a
    /// misconfigured publisher, or a forged notification, would send.
    pub async fn publish(&self, attributes: serde_json::Value) -> Result<()> {
        let url = format!(
            "http://{}/v1/projects/{PROJECT}/topics/{TOPIC}:publish",
            self.pubsub
        );
        // "{}" in base64.
        let body = json!({ "messages": [{ "data": "e30=", "attributes": attributes }] });
        let answer = reqwest::Client::new().post(url).json(&body).send().await?;
        ensure!(answer.status().is_success(), "publish: {}", answer.status());
        Ok(())
    }
}
