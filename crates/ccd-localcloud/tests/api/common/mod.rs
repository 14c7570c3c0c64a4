//! Shared helpers for the conformance tests: a local cloud per test, the
//! official SDK's clients pointed at it, operations waited on the way a
//! controller does, and errors classified the way the SDK exposes them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod raw;

use std::future::Future;
use std::time::Duration;

use ccd_localcloud::{Config, FaultConfig, LocalCloud};
use google_cloud_compute_v1::model;
use google_cloud_gax::error::rpc::StatusDetails;
use google_cloud_lro::Poller;

pub const PROJECT: &str = "ccd-test";
pub const ZONE: &str = "europe-west1-b";
pub const REGION: &str = "europe-west1";

/// Limit for anything that converges in the background (groups, operations);
/// generous because the machine may be loaded.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A local cloud with every instance simulated and every response checked
/// against the discovery document.
pub async fn start() -> LocalCloud {
    start_with(FaultConfig::default()).await
}

pub async fn start_with(faults: FaultConfig) -> LocalCloud {
    LocalCloud::start(Config {
        faults,
        check_responses: true,
        ..Config::default()
    })
    .await
    .expect("the local cloud starts")
}

/// Every test ends here: no response strayed from the discovery document.
pub async fn finish(cloud: LocalCloud) {
    let violations = cloud.conformance_violations();
    cloud.shutdown().await;
    assert!(
        violations.is_empty(),
        "responses strayed from the discovery document:\n{}",
        violations.join("\n")
    );
}

/// The local cloud's token as credentials for the official SDK: the same
/// `Authorization: Bearer TOKEN` on every call.
#[derive(Clone)]
pub struct Bearer {
    headers: http::HeaderMap,
    tag: google_cloud_auth::credentials::EntityTag,
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl google_cloud_auth::credentials::CredentialsProvider for Bearer {
    async fn headers(
        &self,
        extensions: http::Extensions,
    ) -> Result<
        google_cloud_auth::credentials::CacheableResource<http::HeaderMap>,
        google_cloud_auth::errors::CredentialsError,
    > {
        use google_cloud_auth::credentials::{CacheableResource, EntityTag};
        Ok(match extensions.get::<EntityTag>() {
            Some(tag) if *tag == self.tag => CacheableResource::NotModified,
            _ => CacheableResource::New {
                entity_tag: self.tag.clone(),
                data: self.headers.clone(),
            },
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

pub fn credentials(cloud: &LocalCloud) -> google_cloud_auth::credentials::Credentials {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, bearer(cloud));
    google_cloud_auth::credentials::Credentials::from(Bearer {
        headers,
        tag: google_cloud_auth::credentials::EntityTag::new(),
    })
}

/// `Bearer TOKEN`, marked sensitive.
pub fn bearer(cloud: &LocalCloud) -> http::HeaderValue {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {}", cloud.token())).unwrap();
    value.set_sensitive(true);
    value
}

/// A plain HTTP client that sends the local cloud's token on every request.
pub fn http(cloud: &LocalCloud) -> reqwest::Client {
    authorized(cloud, reqwest::Client::builder())
}

/// `builder` with the local cloud's token on every request.
pub fn authorized(cloud: &LocalCloud, builder: reqwest::ClientBuilder) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, bearer(cloud));
    builder.default_headers(headers).build().unwrap()
}

/// A client of the official SDK on the local cloud, with its token and
/// quick operation polling (Compute's default starts at 1 s).
#[macro_export]
macro_rules! client {
    ($client:ty, $cloud:expr) => {
        <$client>::builder()
            .with_endpoint($cloud.endpoint())
            .with_credentials(common::credentials(&$cloud))
            .with_polling_backoff_policy(
                google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder::new()
                    .with_initial_delay(std::time::Duration::from_millis(50))
                    .with_maximum_delay(std::time::Duration::from_millis(500))
                    .build()
                    .expect("a valid backoff"),
            )
            .build()
            .await
            .expect("the SDK client builds")
    };
}

/// Runs a mutation's poller to the end and insists the operation succeeded
/// (`until_done` is Ok for a failed operation: `to_result` tells).
pub async fn done<P>(poller: P) -> model::Operation
where
    P: Poller<model::Operation, model::Operation>,
{
    let op = tokio::time::timeout(CONVERGE, poller.until_done())
        .await
        .expect("the operation finishes in time")
        .expect("polling the operation works");
    assert_eq!(op.status, Some(model::operation::Status::Done), "{op:?}");
    op.to_result().expect("the operation succeeded")
}

/// How the SDK exposes a failed call: the HTTP status and the first
/// `ErrorInfo.reason` (Compute's `errors[].reason`).
pub fn classify(e: &google_cloud_compute_v1::Error) -> (Option<u16>, Option<String>) {
    let reason = e.status().and_then(|s| {
        s.details.iter().find_map(|d| match d {
            StatusDetails::ErrorInfo(info) => Some(info.reason.clone()),
            _ => None,
        })
    });
    (e.http_status_code(), reason)
}

/// Asserts a call failed with `status` and `reason`.
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, google_cloud_compute_v1::Error>,
    status: u16,
    reason: &str,
) {
    let e = result.expect_err(&format!("expected {status} {reason}"));
    assert_eq!(
        classify(&e),
        (Some(status), Some(reason.to_owned())),
        "{e:?}"
    );
}

/// Polls `probe` until it returns `Some`, or panics after [`CONVERGE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A unique, valid request id (a random-enough UUID v4 without a crate).
pub fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = ccd_clock::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let a = nanos ^ (u64::from(std::process::id()) << 32);
    let b = N
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ nanos.rotate_left(29);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// An instance template whose instances are simulated (no process).
pub fn simulated_template(name: &str) -> model::InstanceTemplate {
    model::InstanceTemplate::new()
        .set_name(name)
        .set_properties(
            model::InstanceProperties::new()
                .set_machine_type("e2-small")
                .set_tags(model::Tags::new().set_items(["web"]))
                .set_network_interfaces([
                    model::NetworkInterface::new().set_network("global/networks/default")
                ])
                .set_disks([model::AttachedDisk::new()
                    .set_boot(true)
                    .set_auto_delete(true)
                    .set_initialize_params(
                        model::AttachedDiskInitializeParams::new()
                            .set_source_image("projects/cos-cloud/global/images/family/cos-stable"),
                    )])
                .set_metadata(
                    model::Metadata::new().set_items([model::metadata::Items::new()
                        .set_key(ccd_localcloud::LOCAL_RUN_METADATA_KEY)
                        .set_value(r#"{"simulated": true}"#)]),
                ),
        )
}

/// The name at the end of a link.
pub fn name_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap_or(link)
}
