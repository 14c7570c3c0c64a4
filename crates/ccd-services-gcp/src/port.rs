//! [`GcpServices`] behind the deploy reconciler's port
//! ([`ccd_services::Services`]), with the local adapter's semantics: each
//! asked service is provided (or Failed, naming the field and the fix, or
//! NotProvided when ccd does not build it on Google Cloud), its variables
//! written as Secret Manager secrets named by `names::secret_of`, and a
//! deleted app's services released as each one's `onDelete` says, never
//! failing the deletion.
//!
//! SQL is IAM database login (see `sql.rs`): there is no password, so the
//! app receives `DATABASE_URL` (no password in it), `PGHOST`, `PGPORT`,
//! `PGUSER` and `PGDATABASE`, and not `PGPASSWORD`: its password is the
//! account's OAuth access token, short-lived, which the app (or Cloud SQL's
//! connectors and Auth Proxy, given the connection name the status shows)
//! fetches from the metadata server.

use std::future::Future;
use std::pin::Pin;

use ccd_services::{Provisioned, Released, ServiceState, ServiceStatus, Services, names};

use crate::{GcpServiceError, GcpServices, OnDelete};

/// PostgreSQL's port on Cloud SQL.
const PG_PORT: u16 = 5432;

/// Why the cache is not provided here (decisions.md: a Memorystore for
/// Redis Cluster with an ACL user per app is the plan, not built).
pub const CACHE_NOT_PROVIDED: &str = "services.cache: not provided on Google Cloud yet: \
     Memorystore for Redis has one password per instance, so it cannot keep apps' keys apart, \
     and ccd's per-app ACL users on Memorystore for Redis Cluster are not built; the app \
     receives no REDIS_URL. Remove services.cache, or run the app under `ccd up`";

/// A service provided: its status and the variables the app receives.
struct Provided {
    status: ServiceStatus,
    values: Vec<(&'static str, String)>,
}

/// The account an app runs as: the spec's `machine.serviceAccount`, else
/// the one ccd-cloud makes for it.
pub fn account_of(app: &ccd_spec::App, project: &str) -> String {
    app.spec
        .machine
        .service_account
        .clone()
        .unwrap_or_else(|| ccd_cloud::identity::account_email(&app.metadata.name, project))
}

/// The message of a failed service: it names the service.
fn failure(kind: &str, e: &GcpServiceError) -> String {
    let said = e.to_string();
    match said.starts_with("services.") {
        true => said,
        false => format!("services.{kind}: {said}"),
    }
}

impl GcpServices {
    async fn provide(
        &self,
        app: &ccd_spec::App,
        kind: &str,
        email: &str,
    ) -> Result<Provided, GcpServiceError> {
        let name = app.metadata.name.as_str();
        let asked = &app.spec.services;
        match kind {
            "sql" => {
                let database = asked.sql.as_ref().and_then(|s| s.database.as_deref());
                if asked
                    .sql
                    .as_ref()
                    .is_some_and(|s| s.engine != ccd_spec::SqlEngine::Postgres)
                {
                    return Err(GcpServiceError::Invalid(
                        "services.sql.engine: ccd provides PostgreSQL on Cloud SQL; use engine: \
                         postgres"
                            .to_owned(),
                    ));
                }
                let made = self.ensure_sql(name, database, email).await?;
                let Some(host) = made.host.clone() else {
                    return Err(GcpServiceError::Config(format!(
                        "services.sql: the instance {} has no private or public IP address \
                         apps can reach: give it one (a private IP in the instances' network)",
                        made.connection_name
                    )));
                };
                let user_in_url = made.user.replace('@', "%40");
                let url = format!(
                    "postgresql://{user_in_url}@{host}:{PG_PORT}/{}?sslmode=require",
                    made.database
                );
                let values = vec![
                    ("DATABASE_URL", url),
                    ("PGHOST", host.clone()),
                    ("PGPORT", PG_PORT.to_string()),
                    ("PGUSER", made.user.clone()),
                    ("PGDATABASE", made.database.clone()),
                ];
                let status = ServiceStatus {
                    endpoint: Some(format!("{host}:{PG_PORT}")),
                    user: Some(made.user.clone()),
                    scope: Some(format!(
                        "database {} on {} (IAM login: the password is the account's access token)",
                        made.database, made.connection_name
                    )),
                    name: Some(made.database),
                    ..ServiceStatus::ready("sql")
                };
                Ok(Provided { status, values })
            }
            "nosql" => {
                let database = asked.nosql.as_ref().and_then(|n| n.database.as_deref());
                let made = self.ensure_firestore(name, database, email).await?;
                let id = made
                    .database
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let values = vec![
                    ("FIRESTORE_PROJECT_ID", self.project().to_owned()),
                    ("FIRESTORE_DATABASE_ID", id.clone()),
                ];
                let status = ServiceStatus {
                    user: Some(email.to_owned()),
                    scope: Some(format!("{} only", made.database)),
                    name: Some(id),
                    ..ServiceStatus::ready("nosql")
                };
                Ok(Provided { status, values })
            }
            "storage" => {
                let bucket = asked.storage.as_ref().and_then(|s| s.bucket.as_deref());
                let made = self.ensure_storage(name, bucket, email).await?;
                let values = vec![
                    ("STORAGE_BUCKET", made.bucket.clone()),
                    ("STORAGE_PREFIX", made.prefix.clone()),
                ];
                let status = ServiceStatus {
                    user: Some(email.to_owned()),
                    scope: Some(format!(
                        "gs://{}/{} (managed folder)",
                        made.bucket, made.prefix
                    )),
                    name: Some(format!("{}/{}", made.bucket, made.prefix)),
                    ..ServiceStatus::ready("storage")
                };
                Ok(Provided { status, values })
            }
            other => Err(GcpServiceError::Invalid(format!(
                "{other} is not a service"
            ))),
        }
    }

    /// The app's log sink, and its writer's right to create objects in the
    /// logs bucket.
    async fn provide_logs(
        &self,
        app: &str,
        retention: &str,
    ) -> Result<ServiceStatus, GcpServiceError> {
        let sink = self.ensure_log_sink(app).await?;
        let bucket = self.logs_bucket()?.to_owned();
        if !sink.writer_identity.is_empty() {
            self.grant_on_bucket(&bucket, crate::storage::SINK_ROLE, &sink.writer_identity)
                .await?;
        }
        Ok(ServiceStatus {
            scope: Some(format!(
                "container output to gs://{bucket} (asked to keep {retention}: the bucket's \
                 lifecycle rules decide)"
            )),
            name: Some(names::log_sink(app)),
            ..ServiceStatus::ready("logs")
        })
    }

    /// Releases one service of a deleted app; what was kept, `Ok(false)`.
    async fn release_one(
        &self,
        app: &str,
        service: &ServiceStatus,
    ) -> Result<bool, GcpServiceError> {
        let on_delete = match service.on_delete.as_deref() {
            Some("delete") => OnDelete::Delete,
            Some("snapshot") => OnDelete::Snapshot,
            _ => OnDelete::Retain,
        };
        let delete = on_delete == OnDelete::Delete;
        let email = released_account(app, self.project(), service);
        let name = service.name.as_deref();
        match service.kind.as_str() {
            "sql" => {
                self.remove_sql(app, name, &email, on_delete).await?;
                self.forget("sql", app);
            }
            "nosql" => self.remove_firestore(app, name, &email, on_delete).await?,
            "storage" => {
                let bucket = name
                    .and_then(|n| n.split_once('/'))
                    .map(|(b, _)| b.to_owned())
                    .map_or_else(|| self.storage_bucket(None), Ok)?;
                self.remove_storage(app, &bucket, &email, delete).await?;
            }
            // A sink holds no data: it goes whatever onDelete says; what it
            // shipped stays in the bucket, under the bucket's own rules.
            "logs" => {
                self.remove_log_sink(app).await?;
                return Ok(true);
            }
            _ => return Ok(!delete),
        }
        if delete {
            self.undeliver(app, &service.kind).await?;
        }
        Ok(delete)
    }
}

/// The account a released service was granted to: the one its status
/// recorded, else the one ccd-cloud makes for the app.
fn released_account(app: &str, project: &str, service: &ServiceStatus) -> String {
    match (service.kind.as_str(), service.user.as_deref()) {
        // The IAM database user is the email without `.gserviceaccount.com`.
        ("sql", Some(user)) if !user.ends_with(".gserviceaccount.com") => {
            format!("{user}.gserviceaccount.com")
        }
        (_, Some(user)) if user.contains('@') => user.to_owned(),
        _ => ccd_cloud::identity::account_email(app, project),
    }
}

impl Services for GcpServices {
    fn ensure<'a>(
        &'a self,
        app: &'a ccd_spec::App,
    ) -> Pin<Box<dyn Future<Output = Provisioned> + Send + 'a>> {
        Box::pin(async move {
            let name = app.metadata.name.as_str();
            let asked = &app.spec.services;
            let email = account_of(app, self.project());
            let mut out = Provisioned::default();
            for (kind, _) in asked.variables() {
                if kind == "cache" {
                    out.services.push(ServiceStatus {
                        state: ServiceState::NotProvided,
                        message: CACHE_NOT_PROVIDED.to_owned(),
                        ..ServiceStatus::ready("cache")
                    });
                    continue;
                }
                let provided = match self.provide(app, kind, &email).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(app = name, kind, error = %e, "service not provided");
                        out.failed(kind, failure(kind, &e));
                        continue;
                    }
                };
                match self.deliver(name, kind, &provided.values).await {
                    Ok(_) => {
                        let variables: Vec<&str> =
                            provided.values.iter().map(|(v, _)| *v).collect();
                        out.ready(name, kind, &variables, provided.status);
                    }
                    Err(e) => out.failed(kind, failure(kind, &e)),
                }
            }
            if let Some(logs) = &asked.logs {
                match self.provide_logs(name, &logs.retention.to_string()).await {
                    Ok(status) => out.services.push(status),
                    Err(e) => out.failed("logs", failure("logs", &e)),
                }
            }
            out
        })
    }

    fn release<'a>(
        &'a self,
        app: &'a str,
        services: &'a [ServiceStatus],
    ) -> Pin<Box<dyn Future<Output = Released> + Send + 'a>> {
        Box::pin(async move {
            let mut released = Released::default();
            for service in services.iter().filter(|s| s.state == ServiceState::Ready) {
                match self.release_one(app, service).await {
                    Ok(true) => released.deleted.push(service.kind.clone()),
                    Ok(false) => released.retained.push(service.kind.clone()),
                    Err(e) => {
                        tracing::warn!(app, kind = service.kind, error = %e, "release failed");
                        released.problems.push(format!(
                            "{}: kept, because releasing it failed ({e}); delete it by hand \
                             or put the spec back and delete it again",
                            service.kind
                        ));
                    }
                }
                if service.kind == "sql" && service.on_delete.as_deref() == Some("snapshot") {
                    released.problems.push(
                        "sql: onDelete: snapshot takes no snapshot on Google Cloud yet: the \
                         database is kept as with retain; export it (gcloud sql export sql) and \
                         delete it by hand"
                            .to_owned(),
                    );
                }
            }
            released
        })
    }
}
