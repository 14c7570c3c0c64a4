//! Cloud Logging (Logging API v2): a sink per app that copies its instances'
//! container output to the logs bucket, with a writer identity of its own
//! (`uniqueWriterIdentity`), so each sink can be granted the bucket apart
//! and removing one app's sink touches no other's; and reading an app's
//! entries for `ccd logs APP --since`.
//!
//! Entries are the app's by the label `ccd-app` = APP on the container
//! output of Compute Engine instances (`cos_containers`, the log COS's
//! agent writes); the filter names that one value with `=`, never a prefix
//! or substring match, so no other app's entries match.

use google_cloud_logging_v2::model::LogSink;
use google_cloud_wkt::FieldMask;

use crate::GcpServices;
use crate::error::{GcpServiceError, not_found};

/// The label that names the app an entry belongs to.
pub const APP_LABEL: &str = "ccd-app";

/// The log Container-Optimized OS writes containers' output to.
pub const CONTAINER_LOG: &str = "cos_containers";

/// Entries read per page.
const PAGE_SIZE: i32 = 1000;

/// `"text"` as the logging query language quotes a string.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The entries of `app`: its instances' container output, by its label.
pub fn app_filter(project: &str, app: &str) -> String {
    format!(
        "resource.type=\"gce_instance\" AND logName={} AND labels.{}={}",
        quoted(&format!("projects/{project}/logs/{CONTAINER_LOG}")),
        quoted(APP_LABEL),
        quoted(app)
    )
}

/// The app's entries from `since` on (RFC 3339).
pub fn entries_filter(project: &str, app: &str, since: &str) -> String {
    format!(
        "{} AND timestamp >= {}",
        app_filter(project, app),
        quoted(since)
    )
}

/// The destination of a sink writing to `bucket`.
pub fn destination(bucket: &str) -> String {
    format!("storage.googleapis.com/{bucket}")
}

/// What [`GcpServices::ensure_log_sink`] left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkState {
    /// `projects/P/sinks/ccd-APP-logs`.
    pub name: String,
    /// The sink's own account: the bucket must let it create objects
    /// (`roles/storage.objectCreator`), which is not granted here.
    pub writer_identity: String,
    pub created: bool,
    pub updated: bool,
}

/// One entry as `ccd logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339.
    pub timestamp: String,
    /// The instance (its ID, as Cloud Logging labels the entry).
    pub instance: String,
    pub text: String,
}

impl GcpServices {
    pub(crate) fn logs_bucket(&self) -> Result<&str, GcpServiceError> {
        self.config.logs_bucket.as_deref().ok_or_else(|| {
            GcpServiceError::Config(
                "services.logs: no logs bucket is configured: name one in the controller's \
                 configuration `services.logs.bucket`"
                    .to_owned(),
            )
        })
    }

    fn sink_name(&self, app: &str) -> String {
        format!(
            "projects/{}/sinks/{}",
            self.project(),
            ccd_services::names::log_sink(app)
        )
    }

    /// The app's sink, made when missing and put right when its filter or
    /// destination differ from what ccd would make.
    pub async fn ensure_log_sink(&self, app: &str) -> Result<SinkState, GcpServiceError> {
        let want = LogSink::new()
            .set_name(ccd_services::names::log_sink(app))
            .set_destination(destination(self.logs_bucket()?))
            .set_filter(app_filter(self.project(), app))
            .set_description(format!("ccd: the container output of app {app}"));
        let name = self.sink_name(app);
        let found = self.c.sinks.get_sink().set_sink_name(&name).send().await;
        let (sink, created, updated) = match found {
            Ok(found) if found.destination == want.destination && found.filter == want.filter => {
                (found, false, false)
            }
            Ok(_) => {
                let sink = self
                    .c
                    .sinks
                    .update_sink()
                    .set_sink_name(&name)
                    .set_sink(want)
                    .set_unique_writer_identity(true)
                    .set_update_mask(FieldMask::default().set_paths(["destination", "filter"]))
                    .send()
                    .await
                    .map_err(|e| GcpServiceError::api(&name, "logging.sinks.update", e))?;
                tracing::info!(resource = name, "sink put right");
                (sink, false, true)
            }
            Err(e) if not_found(&e) => {
                let sink = self
                    .c
                    .sinks
                    .create_sink()
                    .set_parent(format!("projects/{}", self.project()))
                    .set_sink(want)
                    .set_unique_writer_identity(true)
                    .send()
                    .await
                    .map_err(|e| GcpServiceError::api(&name, "logging.sinks.create", e))?;
                tracing::info!(resource = name, "sink created");
                (sink, true, false)
            }
            Err(e) => return Err(GcpServiceError::api(&name, "logging.sinks.get", e)),
        };
        Ok(SinkState {
            name,
            writer_identity: sink.writer_identity,
            created,
            updated,
        })
    }

    /// Deletes the app's sink. A sink holds no data (what it shipped stays
    /// in the bucket), so this does not wait for `onDelete`.
    pub async fn remove_log_sink(&self, app: &str) -> Result<(), GcpServiceError> {
        let name = self.sink_name(app);
        match self.c.sinks.delete_sink().set_sink_name(&name).send().await {
            Ok(()) => {
                tracing::info!(resource = name, "sink deleted");
                Ok(())
            }
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(GcpServiceError::api(&name, "logging.sinks.delete", e)),
        }
    }

    /// The app's entries from `since` (RFC 3339) on, oldest first, every
    /// page followed until `limit` entries.
    pub async fn read_logs(
        &self,
        app: &str,
        since: &str,
        limit: usize,
    ) -> Result<Vec<LogLine>, GcpServiceError> {
        google_cloud_wkt::Timestamp::try_from(since).map_err(|e| {
            GcpServiceError::Invalid(format!("--since {since:?} is not an RFC 3339 time: {e}"))
        })?;
        let resource = format!("projects/{}", self.project());
        let filter = entries_filter(self.project(), app, since);
        let mut lines = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .c
                .entries
                .list_log_entries()
                .set_resource_names([resource.clone()])
                .set_filter(&filter)
                .set_order_by("timestamp asc")
                .set_page_size(PAGE_SIZE)
                .set_page_token(&token)
                .send()
                .await
                .map_err(|e| GcpServiceError::api(&resource, "logging.logEntries.list", e))?;
            for entry in page.entries {
                if lines.len() == limit {
                    return Ok(lines);
                }
                let text = match (entry.text_payload(), entry.json_payload()) {
                    (Some(text), _) => text.clone(),
                    (None, Some(json)) => match json.get("message").and_then(|m| m.as_str()) {
                        Some(message) => message.to_owned(),
                        None => serde_json::Value::Object((**json).clone()).to_string(),
                    },
                    (None, None) => String::new(),
                };
                lines.push(LogLine {
                    timestamp: entry.timestamp.map(String::from).unwrap_or_default(),
                    instance: entry
                        .resource
                        .and_then(|r| r.labels.get("instance_id").cloned())
                        .unwrap_or_default(),
                    text,
                });
            }
            if page.next_page_token.is_empty() || lines.len() == limit {
                return Ok(lines);
            }
            token = page.next_page_token;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_names_the_apps_label_and_nothing_broader() {
        let f = app_filter("p", "web");
        assert_eq!(
            f,
            "resource.type=\"gce_instance\" AND logName=\"projects/p/logs/cos_containers\" \
             AND labels.\"ccd-app\"=\"web\""
        );
        assert!(!f.contains(" OR "), "one app, no alternatives");
        assert!(
            !f.contains("\":") && !f.contains("=~") && !f.contains('*'),
            "equality, no substring or pattern"
        );
        assert_eq!(
            app_filter("p", "we\"b"),
            "resource.type=\"gce_instance\" AND logName=\"projects/p/logs/cos_containers\" \
             AND labels.\"ccd-app\"=\"we\\\"b\""
        );
        assert!(
            entries_filter("p", "web", "2026-01-02T03:04:05Z")
                .ends_with(" AND timestamp >= \"2026-01-02T03:04:05Z\"")
        );
    }
}
