//! The `notifications` check: the subscription `bucketNotifications` names
//! can be read with these credentials. Whether the bucket's notification
//! configuration sends to its topic is the bucket owner's to see (Cloud
//! Storage's notification API is not the objects' API the controller uses),
//! so the line says how to look.

use ccd_bus::{PubSubBus, PubSubConfig};
use ccd_store::StoreUrl;

use super::Report;
use crate::controller::ControllerConfig;

pub(super) async fn check(config: &ControllerConfig, r: &mut Report) {
    let Some(settings) = &config.bucket_notifications else {
        return;
    };
    let project = match settings.project() {
        Ok(p) => p,
        Err(e) => return r.fail("notifications", e),
    };
    let bus = match PubSubBus::new(PubSubConfig::from_env(project)).await {
        Ok(bus) => bus,
        Err(e) => return r.fail("notifications", e),
    };
    match bus.subscription_topic(&settings.subscription).await {
        Ok(topic) => r.ok(
            "notifications",
            format!(
                "{} reads {topic}; the bucket must notify it: `gcloud storage buckets \
                 notifications list {}` lists it (deploy/bootstrap.sh makes it)",
                settings.subscription,
                bucket_of(&config.store)
            ),
        ),
        Err(e) => r.fail(
            "notifications",
            format!("bucketNotifications: {e}; or remove bucketNotifications to poll the bucket"),
        ),
    }
}

/// `gs://BUCKET` of the store `gs://BUCKET/PREFIX`.
fn bucket_of(store: &str) -> String {
    match store.parse::<StoreUrl>() {
        Ok(StoreUrl::Bucket { bucket, .. }) => format!("gs://{bucket}"),
        _ => store.to_owned(),
    }
}
