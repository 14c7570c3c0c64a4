//! What `ccd doctor` reads of the services' places: facts, not judgements
//! (the binary judges them). Reads only; every call has its row in
//! ccd-cloud's permission table `SERVICES`, as the steps' calls do.

use google_cloud_sql_v1::model::settings::DataApiAccess;

use crate::GcpServices;
use crate::error::{GcpServiceError, not_found};
use crate::sql::IAM_AUTH_FLAG;
use crate::storage::bucket_resource;

/// The configured Cloud SQL instance, as far as ccd cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlInstanceFacts {
    /// `projects/P/instances/I`.
    pub resource: String,
    /// `POSTGRES_16`, `MYSQL_8_0`...
    pub database_version: String,
    /// The flag `cloudsql.iam_authentication` is `on`.
    pub iam_authentication: bool,
    /// `settings.dataApiAccess` is `ALLOW_DATA_API` (executeSql allowed).
    pub data_api: bool,
}

/// A bucket, as far as ccd cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketFacts {
    pub name: String,
    /// Uniform bucket-level access: managed folders exist only there.
    pub uniform_access: bool,
}

impl GcpServices {
    /// The configured instance (`services.sql.instance`); `None` when it
    /// does not exist, or none is configured.
    pub async fn sql_instance_facts(&self) -> Result<Option<SqlInstanceFacts>, GcpServiceError> {
        let Some(instance) = self.config.sql_instance.as_deref() else {
            return Ok(None);
        };
        let resource = format!("projects/{}/instances/{instance}", self.project());
        let got = self
            .c
            .sql_instances
            .get()
            .set_project(self.project())
            .set_instance(instance)
            .send()
            .await;
        let found = match got {
            Ok(found) => found,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(GcpServiceError::api(&resource, "cloudsql.instances.get", e)),
        };
        let settings = found.settings.as_ref();
        Ok(Some(SqlInstanceFacts {
            resource,
            database_version: found
                .database_version
                .name()
                .unwrap_or("unknown")
                .to_owned(),
            iam_authentication: settings.is_some_and(|s| {
                s.database_flags
                    .iter()
                    .any(|f| f.name == IAM_AUTH_FLAG && f.value.eq_ignore_ascii_case("on"))
            }),
            data_api: settings.and_then(|s| s.data_api_access.as_ref())
                == Some(&DataApiAccess::AllowDataApi),
        }))
    }

    /// The bucket `name`; `None` when it does not exist.
    pub async fn bucket_facts(&self, name: &str) -> Result<Option<BucketFacts>, GcpServiceError> {
        let resource = bucket_resource(name);
        let got = self.c.storage.get_bucket().set_name(&resource).send().await;
        let bucket = match got {
            Ok(b) => b,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(GcpServiceError::api(&resource, "storage.buckets.get", e)),
        };
        Ok(Some(BucketFacts {
            name: name.to_owned(),
            uniform_access: bucket
                .iam_config
                .as_ref()
                .and_then(|c| c.uniform_bucket_level_access.as_ref())
                .is_some_and(|u| u.enabled),
        }))
    }
}
