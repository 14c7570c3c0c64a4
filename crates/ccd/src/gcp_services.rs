//! The `services` section of `ccd controller`'s configuration: where the
//! apps' services live on Google Cloud, mapped onto
//! [`ccd_services_gcp::GcpConfig`]. Each field is optional: an app asking
//! for a service whose place is not configured is held back with a message
//! naming the field (`services.sql.instance`...), its other services and its
//! running revision untouched.

use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicesSettings {
    #[serde(default)]
    pub sql: Option<SqlSettings>,
    #[serde(default)]
    pub nosql: Option<NoSqlSettings>,
    #[serde(default)]
    pub storage: Option<BucketSettings>,
    #[serde(default)]
    pub logs: Option<BucketSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlSettings {
    /// The Cloud SQL for PostgreSQL instance (its ID, in the project and
    /// region) every app's database lives in.
    pub instance: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoSqlSettings {
    /// Where Firestore databases are made (`eur3`, `europe-west1`...); the
    /// region when absent.
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSettings {
    /// A bucket name, without `gs://`.
    pub bucket: String,
}

impl ServicesSettings {
    /// The adapter's configuration in `project` and `region`.
    pub fn config(&self, project: &str, region: &str) -> ccd_services_gcp::GcpConfig {
        let mut c = ccd_services_gcp::GcpConfig::new(project, region);
        c.sql_instance = self.sql.as_ref().map(|s| s.instance.clone());
        c.firestore_location = self.nosql.as_ref().and_then(|n| n.location.clone());
        c.storage_bucket = self.storage.as_ref().map(|s| s.bucket.clone());
        c.logs_bucket = self.logs.as_ref().map(|l| l.bucket.clone());
        c
    }

    /// The services this configuration places (`sql`, `nosql`, `storage`,
    /// `logs`), each a section present.
    pub fn placed(&self) -> std::collections::BTreeSet<&'static str> {
        [
            ("sql", self.sql.is_some()),
            ("nosql", self.nosql.is_some()),
            ("storage", self.storage.is_some()),
            ("logs", self.logs.is_some()),
        ]
        .into_iter()
        .filter_map(|(kind, on)| on.then_some(kind))
        .collect()
    }

    /// Names that cannot be Google's, refused at load with the field.
    pub fn check(&self) -> Result<(), String> {
        let named = [
            (
                "services.sql.instance",
                self.sql.as_ref().map(|s| &s.instance),
            ),
            (
                "services.storage.bucket",
                self.storage.as_ref().map(|s| &s.bucket),
            ),
            (
                "services.logs.bucket",
                self.logs.as_ref().map(|s| &s.bucket),
            ),
        ];
        for (field, value) in named {
            let Some(value) = value else { continue };
            if value.is_empty() || value.starts_with("gs://") || value.contains('/') {
                return Err(format!(
                    "{field}: {value:?} is not a name: give the bare name, e.g. \"ccd-apps\""
                ));
            }
        }
        Ok(())
    }
}

/// The services of apps on Google Cloud, for the deploy reconciler.
pub async fn open(
    settings: &ServicesSettings,
    project: &str,
    region: &str,
) -> anyhow::Result<Arc<dyn ccd_services::Services>> {
    let services = ccd_services_gcp::GcpServices::new(settings.config(project, region))
        .await
        .context("cannot set up the clients of the apps' services")?;
    Ok(Arc::new(services))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_maps_onto_the_adapter_and_unknown_ones_are_refused() {
        let s: ServicesSettings = serde_json::from_str(
            r#"{"sql": {"instance": "main"}, "nosql": {"location": "eur3"},
                "storage": {"bucket": "files"}, "logs": {"bucket": "logs"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = s.config("p", "europe-west1");
        assert_eq!(c.sql_instance.as_deref(), Some("main"));
        assert_eq!(c.firestore_location.as_deref(), Some("eur3"));
        assert_eq!(c.storage_bucket.as_deref(), Some("files"));
        assert_eq!(c.logs_bucket.as_deref(), Some("logs"));
        let typo = serde_json::from_str::<ServicesSettings>(r#"{"sql": {"instnce": "main"}}"#);
        assert!(typo.is_err_and(|e| e.to_string().contains("instnce")));
        let url: ServicesSettings =
            serde_json::from_str(r#"{"logs": {"bucket": "gs://logs"}}"#).unwrap_or_default();
        assert!(
            url.check()
                .is_err_and(|e| e.contains("services.logs.bucket"))
        );
    }
}
