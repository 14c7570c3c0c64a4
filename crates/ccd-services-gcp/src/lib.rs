//! App services on Google Cloud: the requests that give each app its Cloud
//! SQL database and IAM database user ([`sql`], the ownership SQL run by
//! [`sql_exec`]), its Firestore database and a grant limited to it
//! ([`firestore`], [`iam`]), a managed folder of a bucket that only its
//! account reaches ([`storage`]), its log sink and log reading
//! ([`logging`]), and its credentials as Secret Manager secrets
//! ([`secrets`]), through Google's official Rust SDKs.
//!
//! [`GcpServices`] builds one SDK client per API once and offers a method per
//! step; `port.rs` puts them behind the deploy reconciler's port
//! ([`ccd_services::Services`]). Every step takes the app's service account
//! by email, as ccd-cloud's identity derives it.

mod error;
pub mod firestore;
pub mod iam;
pub mod inspect;
pub mod logging;
mod port;
pub mod secrets;
pub mod sql;
pub mod sql_exec;
pub mod storage;

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt as _};

pub use error::GcpServiceError;

/// What a removed app's data comes to: the spec's `onDelete` (`Snapshot`
/// keeps the data here: the snapshot is taken before, by the backups).
pub use ccd_spec::OnDelete;

/// The controller's configuration of the services on Google Cloud.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    pub project: String,
    pub region: String,
    /// `services.sql.instance`: the Cloud SQL for PostgreSQL instance every
    /// app's database lives in.
    pub sql_instance: Option<String>,
    /// `services.nosql.location`: where Firestore databases are made; the
    /// region when unset.
    pub firestore_location: Option<String>,
    /// `services.logs.bucket`: the bucket the apps' log sinks write to.
    pub logs_bucket: Option<String>,
    /// `services.storage.bucket`: the bucket of the apps' managed folders
    /// when their spec names none.
    pub storage_bucket: Option<String>,
    /// A Storage control client already made (tests: one over a stub, as
    /// that client speaks gRPC); made from the options above when unset.
    pub storage_control: Option<google_cloud_storage::client::StorageControl>,
    /// Another endpoint for every API (tests); Google's own when unset.
    pub endpoint: Option<String>,
    /// Application Default Credentials when unset.
    pub credentials: Option<Credentials>,
    /// How often a running Cloud SQL operation is looked at.
    pub poll_interval: Duration,
    /// How long an operation may run before the step gives up (the next
    /// pass looks again).
    pub operation_timeout: Duration,
}

impl GcpConfig {
    /// A configuration with nothing but the project and region.
    pub fn new(project: &str, region: &str) -> Self {
        GcpConfig {
            project: project.to_owned(),
            region: region.to_owned(),
            sql_instance: None,
            firestore_location: None,
            logs_bucket: None,
            storage_bucket: None,
            storage_control: None,
            endpoint: None,
            credentials: None,
            poll_interval: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(600),
        }
    }
}

/// The SDK clients, one per Google service, built once.
#[derive(Debug)]
struct Clients {
    sql_instances: google_cloud_sql_v1::client::SqlInstancesService,
    sql_databases: google_cloud_sql_v1::client::SqlDatabasesService,
    sql_users: google_cloud_sql_v1::client::SqlUsersService,
    sql_operations: google_cloud_sql_v1::client::SqlOperationsService,
    firestore: google_cloud_firestore_admin_v1::client::FirestoreAdmin,
    projects: google_cloud_resourcemanager_v3::client::Projects,
    sinks: google_cloud_logging_v2::client::ConfigServiceV2,
    entries: google_cloud_logging_v2::client::LoggingServiceV2,
    secrets: google_cloud_secretmanager_v1::client::SecretManagerService,
    storage: google_cloud_storage::client::StorageControl,
}

/// App services on Google Cloud; see the crate's documentation.
#[derive(Debug)]
pub struct GcpServices {
    config: GcpConfig,
    c: Clients,
    /// What was applied in this process, per (kind, app): a fingerprint, so
    /// a step that needs doing once (the SQL) is not done every pass.
    applied: std::sync::Mutex<std::collections::HashMap<(&'static str, String), String>>,
}

// The same options on every client: credentials shared (one token source),
// Google's retry rules for idempotent calls (AIP-194), bounded.
macro_rules! client {
    ($ty:ty, $config:expr, $creds:expr) => {{
        let backoff = ExponentialBackoffBuilder::new()
            .with_initial_delay(Duration::from_millis(250))
            .with_maximum_delay(Duration::from_secs(30))
            .build()
            .map_err(|e| GcpServiceError::Config(format!("back-off: {e}")))?;
        let mut b = <$ty>::builder()
            .with_credentials($creds.clone())
            .with_retry_policy(
                Aip194Strict
                    .with_attempt_limit(5)
                    .with_time_limit(Duration::from_secs(60)),
            )
            .with_backoff_policy(backoff);
        if let Some(endpoint) = &$config.endpoint {
            b = b.with_endpoint(endpoint.clone());
        }
        b.build().await.map_err(|e| {
            GcpServiceError::Config(format!("cannot make the {} client: {e}", stringify!($ty)))
        })?
    }};
}

impl GcpServices {
    pub async fn new(config: GcpConfig) -> Result<Self, GcpServiceError> {
        if config.project.is_empty() || config.region.is_empty() {
            return Err(GcpServiceError::Config(
                "the controller's configuration names no project or region".to_owned(),
            ));
        }
        let creds = match &config.credentials {
            Some(c) => c.clone(),
            None => google_cloud_auth::credentials::Builder::default()
                .build()
                .map_err(|e| {
                    GcpServiceError::Config(format!("Application Default Credentials: {e}"))
                })?,
        };
        use google_cloud_sql_v1::client as sql;
        let c = Clients {
            sql_instances: client!(sql::SqlInstancesService, config, creds),
            sql_databases: client!(sql::SqlDatabasesService, config, creds),
            sql_users: client!(sql::SqlUsersService, config, creds),
            sql_operations: client!(sql::SqlOperationsService, config, creds),
            firestore: client!(
                google_cloud_firestore_admin_v1::client::FirestoreAdmin,
                config,
                creds
            ),
            projects: client!(
                google_cloud_resourcemanager_v3::client::Projects,
                config,
                creds
            ),
            sinks: client!(
                google_cloud_logging_v2::client::ConfigServiceV2,
                config,
                creds
            ),
            entries: client!(
                google_cloud_logging_v2::client::LoggingServiceV2,
                config,
                creds
            ),
            secrets: client!(
                google_cloud_secretmanager_v1::client::SecretManagerService,
                config,
                creds
            ),
            storage: match &config.storage_control {
                Some(made) => made.clone(),
                None => storage_control(&config, &creds).await?,
            },
        };
        Ok(GcpServices {
            config,
            c,
            applied: std::sync::Mutex::default(),
        })
    }

    pub fn config(&self) -> &GcpConfig {
        &self.config
    }

    fn project(&self) -> &str {
        &self.config.project
    }

    fn applied_map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(&'static str, String), String>> {
        // A panic elsewhere cannot leave the map half-written: use it as is.
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn applied(&self, kind: &'static str, app: &str, done: &str) -> bool {
        self.applied_map()
            .get(&(kind, app.to_owned()))
            .is_some_and(|d| d == done)
    }

    fn remember(&self, kind: &'static str, app: &str, done: String) {
        self.applied_map().insert((kind, app.to_owned()), done);
    }

    fn forget(&self, kind: &'static str, app: &str) {
        self.applied_map().remove(&(kind, app.to_owned()));
    }
}

/// Storage's control client (gRPC), with Storage's own retry rules (its
/// builder is not the generated clients' one).
async fn storage_control(
    config: &GcpConfig,
    creds: &Credentials,
) -> Result<google_cloud_storage::client::StorageControl, GcpServiceError> {
    let mut b =
        google_cloud_storage::client::StorageControl::builder().with_credentials(creds.clone());
    if let Some(endpoint) = &config.endpoint {
        b = b.with_endpoint(endpoint.clone());
    }
    b.build().await.map_err(|e| {
        GcpServiceError::Config(format!("cannot make the Cloud Storage control client: {e}"))
    })
}
