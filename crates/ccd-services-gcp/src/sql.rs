//! Cloud SQL for PostgreSQL (Cloud SQL Admin API v1): each app's database
//! on the instance the controller's configuration names, and an IAM
//! database user for its service account, so the app logs in with its own
//! identity and ccd keeps no password. Users made through the API as
//! built-in (password) users join `cloudsqlsuperuser`; an IAM user gets
//! nothing beyond logging in.
//!
//! The account is granted, on the project but under a condition naming the
//! instance, what it needs to connect and log in ([`login_grants`]).
//!
//! Making the user own only its database, with `CONNECT` revoked from
//! `PUBLIC`, takes SQL on the instance ([`ccd_services::sql::provision_iam`],
//! defined once beside `ccd up`'s): [`crate::sql_exec`] runs it through
//! the Admin API's `executeSql` as the controller's own IAM database user,
//! whenever the database or the user was made, and once per process.

use google_cloud_sql_v1::model::operation::SqlOperationStatus;
use google_cloud_sql_v1::model::settings::DataApiAccess;
use google_cloud_sql_v1::model::user::SqlUserType;
use google_cloud_sql_v1::model::{Database, Operation, SqlIpAddressType, User};

use ccd_services::sql::SqlGrant;
use google_cloud_gax::error::Error as ApiError;
use google_cloud_type::model::Expr;

use crate::error::{GcpServiceError, not_found};
use crate::iam::ConditionalGrant;
use crate::{GcpServices, OnDelete};

/// The instance flag that lets IAM principals log in.
pub const IAM_AUTH_FLAG: &str = "cloudsql.iam_authentication";

/// What the app's account needs on the instance: connecting through Cloud
/// SQL's connectors and Auth Proxy (`cloudsql.instances.connect`) and
/// logging in as its IAM user (`cloudsql.instances.login`).
pub const LOGIN_ROLES: [&str; 2] = ["roles/cloudsql.client", "roles/cloudsql.instanceUser"];

/// [`LOGIN_ROLES`] on the project for the app's account, each under a
/// condition that holds on the configured instance alone.
pub fn login_grants(project: &str, instance: &str, account_email: &str) -> Vec<ConditionalGrant> {
    let expression = format!(
        "resource.type == \"sqladmin.googleapis.com/Instance\" && \
         resource.name == \"projects/{project}/instances/{instance}\""
    );
    LOGIN_ROLES
        .iter()
        .map(|role| ConditionalGrant {
            role: (*role).to_owned(),
            member: format!("serviceAccount:{account_email}"),
            condition: Expr::new()
                .set_title(format!("ccd: Cloud SQL instance {instance} only"))
                .set_expression(&expression),
        })
        .collect()
}

/// Whether a `get` found nothing (`true`) or something (`false`).
fn missing<T>(
    resource: &str,
    permission: &'static str,
    got: Result<T, ApiError>,
) -> Result<bool, GcpServiceError> {
    match got {
        Ok(_) => Ok(false),
        Err(e) if not_found(&e) => Ok(true),
        Err(e) => Err(GcpServiceError::api(resource, permission, e)),
    }
}

/// What [`GcpServices::ensure_sql`] made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlProvisioned {
    /// The instance's connection name, `PROJECT:REGION:INSTANCE`.
    pub connection_name: String,
    /// The address apps reach it at: its private IP, else its public one.
    pub host: Option<String>,
    pub database: String,
    /// The IAM database user the app logs in as.
    pub user: String,
    pub created_database: bool,
    pub created_user: bool,
    /// What makes the user own only its database.
    pub statements: String,
    /// Whether [`statements`](Self::statements) ran in this call.
    pub ran_statements: bool,
}

/// What [`GcpServices::ensure_sql`] needs of the instance.
#[derive(Debug, Clone)]
struct Instance {
    connection_name: String,
    host: Option<String>,
}

impl GcpServices {
    fn sql_instance(&self) -> Result<&str, GcpServiceError> {
        self.config.sql_instance.as_deref().ok_or_else(|| {
            GcpServiceError::Config(
                "services.sql: no Cloud SQL instance is configured: name a PostgreSQL instance \
                 in the controller's configuration `services.sql.instance`"
                    .to_owned(),
            )
        })
    }

    /// The app's database (the spec's `database`, or the app's name) and its
    /// service account's IAM database user, each made only when missing, and
    /// the account's grants to connect to the instance and log in.
    pub async fn ensure_sql(
        &self,
        app: &str,
        database: Option<&str>,
        account_email: &str,
    ) -> Result<SqlProvisioned, GcpServiceError> {
        let instance = self.sql_instance()?;
        let grant = ccd_services::sql::iam_grant(app, database, account_email)?;
        let at = self.check_instance(instance).await?;
        let (db, user) = self.sql_resources(instance, &grant);

        let (c, project) = (&self.c, self.project());
        let found = c
            .sql_databases
            .get()
            .set_project(project)
            .set_instance(instance)
            .set_database(&grant.database)
            .send()
            .await;
        let created_database = missing(&db, "cloudsql.databases.get", found)?;
        if created_database {
            let op = c
                .sql_databases
                .insert()
                .set_project(project)
                .set_instance(instance)
                .set_body(
                    Database::new()
                        .set_project(project)
                        .set_instance(instance)
                        .set_name(&grant.database),
                )
                .send()
                .await
                .map_err(|e| GcpServiceError::api(&db, "cloudsql.databases.create", e))?;
            self.wait_sql(&db, op).await?;
            tracing::info!(resource = db, "created");
        }

        let found = c
            .sql_users
            .get()
            .set_project(project)
            .set_instance(instance)
            .set_name(&grant.role)
            .send()
            .await;
        let created_user = missing(&user, "cloudsql.users.get", found)?;
        if created_user {
            let op = c
                .sql_users
                .insert()
                .set_project(project)
                .set_instance(instance)
                .set_body(
                    User::new()
                        .set_name(&grant.role)
                        .set_type(SqlUserType::CloudIamServiceAccount),
                )
                .send()
                .await
                .map_err(|e| GcpServiceError::api(&user, "cloudsql.users.create", e))?;
            self.wait_sql(&user, op).await?;
            tracing::info!(resource = user, "created");
        }
        self.grant_on_project(&login_grants(project, instance, account_email))
            .await?;

        let statements = ccd_services::sql::provision_iam(&grant);
        let done = format!("{instance} {}", grant.database);
        let run = created_database || created_user || !self.applied("sql", app, &done);
        if run {
            self.execute_sql(instance, &statements).await?;
            self.remember("sql", app, done);
        }
        Ok(SqlProvisioned {
            connection_name: at.connection_name,
            host: at.host,
            statements,
            ran_statements: run,
            database: grant.database,
            user: grant.role,
            created_database,
            created_user,
        })
    }

    /// Takes the account's grants on the instance away (the app is gone,
    /// whatever becomes of its data); deletes the app's database, then its
    /// user (a role that owns a database cannot be dropped), only for
    /// [`OnDelete::Delete`]: with [`OnDelete::Retain`] the database keeps its
    /// data and its owner.
    pub async fn remove_sql(
        &self,
        app: &str,
        database: Option<&str>,
        account_email: &str,
        on_delete: OnDelete,
    ) -> Result<(), GcpServiceError> {
        let grant = ccd_services::sql::iam_grant(app, database, account_email)?;
        let instance = self.sql_instance()?;
        self.revoke_on_project(&login_grants(self.project(), instance, account_email))
            .await?;
        if on_delete != OnDelete::Delete {
            tracing::info!(
                app,
                database = grant.database,
                "onDelete retain: database kept"
            );
            return Ok(());
        }
        let (db, user) = self.sql_resources(instance, &grant);
        let (c, project) = (&self.c, self.project());
        let delete = c
            .sql_databases
            .delete()
            .set_project(project)
            .set_instance(instance);
        match delete.set_database(&grant.database).send().await {
            Ok(op) => self.wait_sql(&db, op).await?,
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(GcpServiceError::api(&db, "cloudsql.databases.delete", e)),
        }
        let delete = c
            .sql_users
            .delete()
            .set_project(project)
            .set_instance(instance);
        match delete.set_name(&grant.role).send().await {
            Ok(op) => self.wait_sql(&user, op).await?,
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(GcpServiceError::api(&user, "cloudsql.users.delete", e)),
        }
        tracing::info!(app, database = grant.database, "deleted with its user");
        Ok(())
    }

    /// The grant's database and user, as resource names for messages.
    fn sql_resources(&self, instance: &str, grant: &SqlGrant) -> (String, String) {
        let at = self.instance_resource(instance);
        (
            format!("{at}/databases/{}", grant.database),
            format!("{at}/users/{}", grant.role),
        )
    }

    fn instance_resource(&self, instance: &str) -> String {
        format!("projects/{}/instances/{instance}", self.project())
    }

    /// The configured instance exists, runs PostgreSQL, lets IAM
    /// principals log in and takes SQL through the Admin API; its
    /// connection name and address.
    async fn check_instance(&self, instance: &str) -> Result<Instance, GcpServiceError> {
        let resource = self.instance_resource(instance);
        let found = self
            .c
            .sql_instances
            .get()
            .set_project(self.project())
            .set_instance(instance)
            .send()
            .await
            .map_err(|e| match not_found(&e) {
                true => GcpServiceError::Config(format!(
                    "{resource}: no such Cloud SQL instance: name an existing PostgreSQL \
                     instance in the controller's configuration `services.sql.instance`"
                )),
                false => GcpServiceError::api(&resource, "cloudsql.instances.get", e),
            })?;
        let version = found.database_version.name().unwrap_or("unknown");
        if !version.starts_with("POSTGRES") {
            return Err(GcpServiceError::Config(format!(
                "{resource} runs {version}; ccd's SQL service needs PostgreSQL: name a \
                 PostgreSQL instance in the controller's configuration `services.sql.instance`"
            )));
        }
        let iam_on = found.settings.as_ref().is_some_and(|s| {
            s.database_flags
                .iter()
                .any(|f| f.name == IAM_AUTH_FLAG && f.value.eq_ignore_ascii_case("on"))
        });
        if !iam_on {
            return Err(GcpServiceError::Config(format!(
                "{resource}: IAM database authentication is off, so apps cannot log in as \
                 their service accounts: set the flag {IAM_AUTH_FLAG}=on (gcloud sql instances \
                 patch {instance} --database-flags={IAM_AUTH_FLAG}=on, listing the instance's \
                 other flags too: the command replaces them)"
            )));
        }
        let data_api = found
            .settings
            .as_ref()
            .and_then(|s| s.data_api_access.as_ref());
        if data_api != Some(&DataApiAccess::AllowDataApi) {
            return Err(GcpServiceError::Config(format!(
                "{resource}: the Data API is not allowed, so ccd cannot run the SQL that makes \
                 each app's user own its database: set the instance's dataApiAccess to \
                 ALLOW_DATA_API (console: the instance's Connections, Networking, Allow Data API)"
            )));
        }
        let address = |kind: SqlIpAddressType| {
            found
                .ip_addresses
                .iter()
                .find(|ip| ip.r#type == kind)
                .map(|ip| ip.ip_address.clone())
        };
        Ok(Instance {
            host: address(SqlIpAddressType::Private).or_else(|| address(SqlIpAddressType::Primary)),
            connection_name: found.connection_name,
        })
    }

    /// Waits for a Cloud SQL operation (its own kind, not a long-running
    /// operation) and reports its error.
    async fn wait_sql(&self, resource: &str, mut op: Operation) -> Result<(), GcpServiceError> {
        let wait = async {
            loop {
                if op.status == SqlOperationStatus::Done {
                    return Ok::<_, GcpServiceError>(op);
                }
                tokio::time::sleep(self.config.poll_interval).await;
                op = self
                    .c
                    .sql_operations
                    .get()
                    .set_project(self.project())
                    .set_operation(&op.name)
                    .send()
                    .await
                    .map_err(|e| GcpServiceError::api(resource, "cloudsql.instances.get", e))?;
            }
        };
        let op = tokio::time::timeout(self.config.operation_timeout, wait)
            .await
            .map_err(|_| GcpServiceError::Operation {
                resource: resource.to_owned(),
                message: format!(
                    "still running after {:?}; the next pass looks again",
                    self.config.operation_timeout
                ),
            })??;
        match op.error.as_ref().and_then(|e| e.errors.first()) {
            None => Ok(()),
            Some(e) => Err(GcpServiceError::Operation {
                resource: resource.to_owned(),
                message: format!("{}: {}", e.code, e.message),
            }),
        }
    }
}
