//! The checks of the apps' services on Google Cloud (the configuration's
//! `services`): the Cloud SQL instance and the buckets, read only, through
//! ccd-services-gcp's `inspect.rs`; the judgements are in `judge.rs`. The
//! APIs are among `cloud.rs`'s, the permissions in the role.

use std::time::Duration;

use ccd_services_gcp::GcpServiceError;

use super::Report;
use super::judge::{self, Needs};
use crate::controller::ControllerConfig;

pub(super) async fn checks(config: &ControllerConfig, needs: &Needs, r: &mut Report) {
    // A local cloud has no services of Google's (`ccd up` provides them).
    if config.local_cloud() {
        return;
    }
    let default = crate::gcp_services::ServicesSettings::default();
    let settings = match &config.services {
        Some(s) => s,
        None if needs.services.is_empty() => return,
        None => &default,
    };
    let (p, region) = (&config.project, &config.region);
    let gcp = match ccd_services_gcp::GcpServices::new(settings.config(p, region)).await {
        Ok(g) => g,
        Err(e) => return r.fail("services", format!("{e}")),
    };
    let asking = |kind: &str| needs.services.get(kind).map(|apps| apps.join(", "));

    match (&settings.sql, asking("sql")) {
        (Some(sql), _) => match within(gcp.sql_instance_facts()).await {
            Ok(facts) => match judge::sql_instance(&sql.instance, p, region, facts.as_ref()) {
                Ok(seen) => r.ok("sql instance", seen),
                Err(fix) => r.fail("sql instance", fix),
            },
            Err(e) => r.fail("sql instance", failed(&e)),
        },
        (None, Some(apps)) => r.fail(
            "sql instance",
            format!(
                "apps {apps} ask for services.sql and the configuration names no instance: set \
                 \"services\": {{\"sql\": {{\"instance\": \"NAME\"}}}} to a PostgreSQL instance \
                 in {p}"
            ),
        ),
        (None, None) => {}
    }

    // The files' buckets: the configured default and each a spec names;
    // then the logs bucket.
    let mut buckets: Vec<(String, &str, bool)> = Vec::new();
    if let Some(s) = &settings.storage {
        buckets.push((s.bucket.clone(), "services.storage.bucket", true));
    } else if let Some(apps) = asking("storage") {
        let unnamed = needs.spec_buckets.is_empty();
        if unnamed {
            r.warn(
                "bucket",
                format!(
                    "apps {apps} ask for services.storage; those naming no bucket in their spec \
                     need \"services\": {{\"storage\": {{\"bucket\": \"NAME\"}}}} in the \
                     configuration"
                ),
            );
        }
    }
    for b in &needs.spec_buckets {
        if !buckets.iter().any(|(name, _, _)| name == b) {
            buckets.push((b.clone(), "a spec's services.storage.bucket", true));
        }
    }
    match (&settings.logs, asking("logs")) {
        (Some(l), _) => buckets.push((l.bucket.clone(), "services.logs.bucket", false)),
        (None, Some(apps)) => r.fail(
            "bucket",
            format!(
                "apps {apps} ask for services.logs and the configuration names no logs bucket: \
                 set \"services\": {{\"logs\": {{\"bucket\": \"NAME\"}}}}"
            ),
        ),
        (None, None) => {}
    }
    for (name, field, folders) in &buckets {
        match within(gcp.bucket_facts(name)).await {
            Ok(facts) => match judge::bucket(field, name, region, *folders, facts.as_ref()) {
                Ok(seen) => r.ok("bucket", seen),
                Err(fix) => r.fail("bucket", fix),
            },
            Err(e) => r.fail("bucket", format!("gs://{name} ({field}): {}", failed(&e))),
        }
    }
}

/// How long one read may take, retries included.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

async fn within<T>(
    read: impl Future<Output = Result<T, GcpServiceError>>,
) -> Result<T, GcpServiceError> {
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(GcpServiceError::Config(format!(
                "no answer within {}s: check the network path to Google's APIs",
                READ_TIMEOUT.as_secs()
            )))
        })
}

/// A failed read and its fix: a refusal is the role's (bootstrap updates it).
fn failed(e: &GcpServiceError) -> String {
    match e {
        GcpServiceError::Denied { .. } => format!(
            "{e}; run deploy/bootstrap.sh (it updates role ccdController), or: ccd doctor \
             --print-role > role.yaml && gcloud iam roles update ccdController --project PROJECT \
             --file role.yaml"
        ),
        other => other.to_string(),
    }
}
