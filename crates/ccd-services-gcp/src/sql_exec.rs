//! Running SQL on the Cloud SQL instance through the Admin API's
//! `instances.executeSql` (the "Data API"), so the controller needs no
//! network path to the instance, no driver and no password.
//!
//! Google runs the statements as the caller's own IAM database user
//! (`autoIamAuthn`): the controller's service account must be an IAM user
//! of the instance, a member of `cloudsqlsuperuser` (granted once by an
//! administrator), and hold `cloudsql.instances.executeSql`; the instance
//! must allow the Data API. A statement's failure comes back in the
//! answer's `status` (HTTP 200), not as an HTTP error, and is reported as
//! one. Google bounds a call to 30 s and 10 MB of results: ccd's statements
//! are a handful of grants, far within both.

use google_cloud_sql_v1::model::ExecuteSqlPayload;

use crate::GcpServices;
use crate::error::GcpServiceError;

/// The database the statements connect to: every PostgreSQL instance of
/// Cloud SQL has it, and ccd's statements act on the cluster's catalogue.
pub const ADMIN_DATABASE: &str = "postgres";

/// How ccd names itself to Cloud SQL's telemetry.
const APPLICATION: &str = "ccd";

impl GcpServices {
    /// Runs `statements` on `instance` as the controller's IAM database
    /// user; an error names the failing statement's message and the fix.
    pub async fn execute_sql(
        &self,
        instance: &str,
        statements: &str,
    ) -> Result<(), GcpServiceError> {
        let resource = format!("projects/{}/instances/{instance}", self.project());
        let answer = self
            .c
            .sql_instances
            .execute_sql()
            .set_project(self.project())
            .set_instance(instance)
            .set_body(
                ExecuteSqlPayload::new()
                    .set_database(ADMIN_DATABASE)
                    .set_sql_statement(statements)
                    .set_application(APPLICATION)
                    .set_auto_iam_authn(true),
            )
            .send()
            .await
            .map_err(|e| GcpServiceError::api(&resource, "cloudsql.instances.executeSql", e))?;
        let failed = answer
            .status
            .iter()
            .chain(answer.results.iter().filter_map(|r| r.status.as_ref()))
            .find(|s| s.code != 0);
        match failed {
            None => Ok(()),
            Some(status) => Err(GcpServiceError::Operation {
                resource,
                message: format!(
                    "the SQL that makes the app's user own its database failed ({}): the \
                     controller's service account must be an IAM database user of the \
                     instance and a member of cloudsqlsuperuser (as postgres: GRANT \
                     cloudsqlsuperuser TO \"CONTROLLER@PROJECT.iam\")",
                    status.message
                ),
            }),
        }
    }
}
