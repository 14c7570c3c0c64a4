//! The GCS bucket store: `object_store`'s GCS client (XML API) for everything, and a list
//! poller for change hints.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
use object_store::path::Path;
use object_store::{ClientOptions, RetryConfig, StaticCredentialProvider};
use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, warn};

use crate::emulator::FakeGcsConnector;
use crate::names;
use crate::objects::{Lister, Objects, Record, UpdateCheck, spec_stamps};
use crate::{Generation, Marker, SpecFile, SpecListing, SpecStore, StoreError};

/// Names a storage emulator to use instead of Google's endpoint, as in Google's client libraries.
pub const EMULATOR_HOST_VAR: &str = "STORAGE_EMULATOR_HOST";

/// The emulator's base URL from `STORAGE_EMULATOR_HOST`: `host:port` means plain http there.
fn emulator_endpoint(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    }
}

/// How the bucket store authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcsAuth {
    /// Application Default Credentials as object_store implements them: the JSON file named
    /// by `GOOGLE_APPLICATION_CREDENTIALS` (a `service_account` or `authorized_user` key), else
    /// gcloud's `~/.config/gcloud/application_default_credentials.json`, else the metadata
    /// server (`metadata.google.internal`, `GCE_METADATA_HOST` overrides). Workload identity
    /// federation files (`external_account`) and impersonation are not supported by it.
    #[default]
    ApplicationDefault,
    /// No credentials and no request signing: for emulators and public test buckets.
    Anonymous,
    /// A service account key file.
    ServiceAccountKey(PathBuf),
}

/// Where and how to reach a bucket store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketConfig {
    /// The bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; empty for the bucket root):
    /// specs live at `<prefix>/specs/`, status at `<prefix>/status/`.
    pub prefix: String,
    /// Base URL of the GCS XML API; `None` for Google's (`https://storage.googleapis.com`).
    pub endpoint: Option<String>,
    /// Credentials.
    pub auth: GcsAuth,
    /// Send uploads through fake-gcs-server's JSON upload endpoint: fake-gcs-server (1.54)
    /// does not implement the XML API's object PUT that object_store uses. Emulators only.
    pub fake_gcs_uploads: bool,
    /// How often `changes()` lists `specs/` to spot changed objects; `None` disables it.
    pub poll_interval: Option<Duration>,
}

impl BucketConfig {
    /// Google's endpoint, Application Default Credentials, a 10-second change poller.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
            endpoint: None,
            auth: GcsAuth::ApplicationDefault,
            fake_gcs_uploads: false,
            poll_interval: Some(Duration::from_secs(10)),
        }
    }

    /// A fake-gcs-server at `endpoint` (e.g. `http://127.0.0.1:4443`, started with
    /// `-scheme http -public-host 127.0.0.1:4443`): anonymous, uploads adapted, and fewer
    /// retries so a broken emulator fails fast.
    pub fn fake_gcs_server(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: Some(endpoint.into().trim_end_matches('/').to_owned()),
            auth: GcsAuth::Anonymous,
            fake_gcs_uploads: true,
            ..Self::new(bucket, prefix)
        }
    }

    /// What a command opens: Google's endpoint and Application Default Credentials, or,
    /// when `STORAGE_EMULATOR_HOST` is set (the variable Google's client libraries read,
    /// `host:port` or a URL), the fake-gcs-server there, as [`Self::fake_gcs_server`].
    pub fn from_env(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        match std::env::var(EMULATOR_HOST_VAR) {
            Ok(host) if !host.trim().is_empty() => {
                let endpoint = emulator_endpoint(&host);
                debug!(%endpoint, "{EMULATOR_HOST_VAR} is set: using the storage emulator");
                Self::fake_gcs_server(endpoint, bucket, prefix)
            }
            _ => Self::new(bucket, prefix),
        }
    }

    /// `gs://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("gs://{}", self.bucket),
            prefix => format!("gs://{}/{prefix}", self.bucket),
        }
    }
}

/// Specs and status in a GCS bucket: `<prefix>/specs/<app>.yaml`, `<prefix>/status/<app>.yaml`,
/// and operators' controls at `<prefix>/controls/<app>.yaml`.
///
/// Status and control writes are conditional on the generation just read
/// (`x-goog-if-generation-match`, or `0` to create), so a second writer makes the loser re-read
/// instead of overwriting.
#[derive(Debug)]
pub struct BucketStore {
    objects: Arc<Objects>,
    poll_interval: Option<Duration>,
    bucket: String,
    prefix: String,
}

impl BucketStore {
    /// The shared object machinery, for records kept in their own modules.
    pub(crate) fn objects(&self) -> &Objects {
        &self.objects
    }

    /// The filter for this store's Cloud Storage notifications ([`crate::Notices`]).
    pub fn notices(&self) -> crate::Notices {
        crate::Notices::new(&self.bucket, &self.prefix)
    }

    /// Builds the client; no request is made until the first operation.
    pub fn new(config: BucketConfig) -> Result<Self, StoreError> {
        let location = config.url();
        let open_error = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        let root = Path::parse(&config.prefix).map_err(|e| {
            open_error(format!("the prefix is not a valid object name prefix: {e}"))
        })?;
        let mut builder = GoogleCloudStorageBuilder::new().with_bucket_name(&config.bucket);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_base_url(endpoint);
            if endpoint.starts_with("http://") {
                builder = builder.with_client_options(ClientOptions::new().with_allow_http(true));
            }
        }
        if config.fake_gcs_uploads {
            let endpoint = config
                .endpoint
                .clone()
                .ok_or_else(|| open_error("fake_gcs_uploads needs an endpoint".to_owned()))?;
            builder = builder
                .with_http_connector(FakeGcsConnector::new(endpoint, config.bucket.clone()))
                .with_retry(RetryConfig {
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(10),
                    ..RetryConfig::default()
                });
        }
        builder = match &config.auth {
            GcsAuth::ApplicationDefault => match std::env::var("GOOGLE_APPLICATION_CREDENTIALS") {
                // object_store reads this variable only through `from_env`, which would also
                // pick up every other GOOGLE_* variable; take just this one.
                Ok(path) if !path.is_empty() => builder.with_application_credentials(path),
                _ => builder,
            },
            // object_store 0.14 still fetches a token for uploads when signing is skipped, so
            // an empty static token stands in for "no credentials" there.
            GcsAuth::Anonymous => builder.with_skip_signature(true).with_credentials(Arc::new(
                StaticCredentialProvider::new(GcpCredential {
                    bearer: String::new(),
                }),
            )),
            GcsAuth::ServiceAccountKey(path) => {
                builder.with_service_account_path(path.display().to_string())
            }
        };
        let store = builder.build().map_err(|e| open_error(e.to_string()))?;
        let objects = Objects::new(
            Arc::new(store),
            root,
            location,
            Lister::Objects,
            UpdateCheck::Version,
        );
        Ok(Self {
            objects: Arc::new(objects),
            poll_interval: config.poll_interval,
            bucket: config.bucket,
            prefix: config.prefix,
        })
    }
}

impl SpecStore for BucketStore {
    fn location(&self) -> &str {
        self.objects.location()
    }

    async fn list_specs(&self) -> Result<SpecListing, StoreError> {
        self.objects.list_specs().await
    }

    async fn get_spec(&self, name: &str) -> Result<Option<SpecFile>, StoreError> {
        self.objects.get_spec(name).await
    }

    /// A poller: one object listing of `specs/` per interval (a class A operation), hinting
    /// the apps whose objects appeared, disappeared or changed etag since the previous poll,
    /// or, for the first poll, since this store's last `list_specs` (with no listing yet, the
    /// first poll is only the baseline). Cloud Storage's Pub/Sub notifications are faster
    /// ([`crate::Notices`] turns them into the same hints); the controller merges them in.
    fn changes(&self) -> Option<BoxStream<'static, String>> {
        let interval = self.poll_interval?;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let poller = Poller {
            objects: Arc::clone(&self.objects),
            ticker,
            known: None,
            pending: VecDeque::new(),
        };
        Some(stream::unfold(poller, Poller::next_hint).boxed())
    }

    async fn read_status(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.read_record(Record::Status, app).await
    }

    async fn list_statuses(&self) -> Result<Vec<String>, StoreError> {
        self.objects.list_records(Record::Status).await
    }

    async fn write_status(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.objects.write_record(Record::Status, app, bytes).await
    }

    async fn write_status_fenced(
        &self,
        app: &str,
        bytes: &[u8],
        fence: crate::Fence,
    ) -> Result<bool, StoreError> {
        self.objects
            .write_record_fenced(Record::Status, app, bytes, Some(fence))
            .await
    }

    async fn delete_status(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_record(Record::Status, app).await
    }

    async fn read_control(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.read_record(Record::Control, app).await
    }

    async fn write_control(&self, app: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.objects
            .write_record(Record::Control, app, bytes)
            .await
            .map(drop)
    }

    async fn delete_control(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_record(Record::Control, app).await
    }

    async fn read_scaling(&self, app: &str) -> Result<Option<Bytes>, StoreError> {
        self.objects.read_record(Record::Scaling, app).await
    }

    async fn write_scaling(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.objects.write_record(Record::Scaling, app, bytes).await
    }

    async fn delete_scaling(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_record(Record::Scaling, app).await
    }

    async fn write_spec(&self, app: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        self.objects.write_spec(app, bytes).await
    }

    async fn delete_spec(&self, app: &str) -> Result<(), StoreError> {
        self.objects.delete_spec(app).await
    }

    async fn read_marker(&self) -> Result<Option<Marker>, StoreError> {
        self.objects.read_marker().await
    }

    async fn write_marker(
        &self,
        bytes: &[u8],
        expected: Option<&Generation>,
    ) -> Result<(), StoreError> {
        self.objects.write_marker(bytes, expected).await
    }
}

struct Poller {
    objects: Arc<Objects>,
    ticker: Interval,
    /// Stamp per spec file name at the last successful poll; `None` before the first.
    known: Option<HashMap<String, String>>,
    pending: VecDeque<String>,
}

impl Poller {
    async fn next_hint(mut self) -> Option<(String, Self)> {
        loop {
            if let Some(app) = self.pending.pop_front() {
                return Some((app, self));
            }
            self.ticker.tick().await;
            let listed = match self.objects.list_raw().await {
                Ok(listed) => listed,
                Err(e) => {
                    // The next tick tries again; the controller's relist covers the gap.
                    warn!(error = %e, "spec change poll failed");
                    continue;
                }
            };
            let now = spec_stamps(&listed);
            // First poll: start from what the caller last listed, so changes made between its
            // listing and this poll are hinted too; with no listing yet, this poll is the base.
            let known = self.known.take().or_else(|| self.objects.listed_stamps());
            if let Some(before) = &known {
                let changed = now
                    .iter()
                    .filter(|(file, stamp)| before.get(*file) != Some(*stamp))
                    .map(|(file, _)| file)
                    .chain(before.keys().filter(|file| !now.contains_key(*file)));
                for app in changed.filter_map(|file| names::hint_of(file)) {
                    if !self.pending.contains(&app) {
                        self.pending.push_back(app);
                    }
                }
                if !self.pending.is_empty() {
                    debug!(apps = ?self.pending, "spec objects changed");
                }
            }
            self.known = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_host_may_be_a_host_or_a_url() {
        assert_eq!(emulator_endpoint("127.0.0.1:4443"), "http://127.0.0.1:4443");
        assert_eq!(
            emulator_endpoint(" localhost:9023/ "),
            "http://localhost:9023"
        );
        assert_eq!(
            emulator_endpoint("https://gcs.test:443"),
            "https://gcs.test:443"
        );
    }
}
