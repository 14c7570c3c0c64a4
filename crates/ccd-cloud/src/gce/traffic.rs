//! Traffic per backend group, as the load balancer saw it: Cloud
//! Monitoring's `request_count` of the load balancer, summed per backend
//! service (`{group}-bs`) and response class, through Google's Monitoring
//! client (REST, so the local cloud can answer it too).
//!
//! `request_count` rather than `backend_request_count`: it counts every
//! response the clients got, including the 5xx the load balancer made up
//! for a backend service (no healthy instance, connection refused,
//! timeout), and each request once however often the proxy retried it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_gax::retry_policy::RetryPolicyExt as _;
use google_cloud_monitoring_v3::client::MetricService;
use google_cloud_monitoring_v3::model::aggregation::{Aligner, Reducer};
use google_cloud_monitoring_v3::model::{Aggregation, TimeInterval, TimeSeries};

use super::GceCloud;
use super::GceConfig;
use super::call::{ComputeRetry, Failure, Kind, Outcome};
use crate::CloudError;
use crate::model::{BackendTraffic, LbId, LbTraffic};

/// Where the counts are grouped: per backend service and response class.
const BACKEND_SERVICE_LABEL: &str = "resource.label.backend_target_name";
const RESPONSE_CLASS_LABEL: &str = "metric.label.response_code_class";

/// Monitoring's smallest alignment period.
const MIN_ALIGNMENT: Duration = Duration::from_secs(60);

/// How late the counts may be published: Compute Engine's load-balancer
/// metrics are sampled every 60 s and visible up to 90 s (internal) or
/// 210 s (global external) after that. The local cloud reads its proxies'
/// counters when it answers, so it has no delay.
fn publication_delay(local: bool, internal: bool) -> Duration {
    match (local, internal) {
        (true, _) => Duration::ZERO,
        (false, true) => Duration::from_secs(60 + 90),
        (false, false) => Duration::from_secs(60 + 210),
    }
}

/// The metric and monitored resource of a load balancer's kind.
fn metric_of(internal: bool) -> (&'static str, &'static str) {
    if internal {
        (
            "loadbalancing.googleapis.com/https/internal/request_count",
            "internal_http_lb_rule",
        )
    } else {
        (
            "loadbalancing.googleapis.com/https/request_count",
            "https_lb_rule",
        )
    }
}

/// The series of one load balancer: its URL map (`{name}-um`, as the
/// load-balancer module names it) and, for an internal one, its region.
pub(crate) fn filter(id: &LbId, region: &str) -> String {
    let (metric, resource) = metric_of(id.internal);
    let mut filter = format!(
        "metric.type = \"{metric}\" AND resource.type = \"{resource}\" AND resource.labels.url_map_name = \"{}-um\"",
        id.name
    );
    if id.internal {
        filter.push_str(&format!(" AND resource.labels.region = \"{region}\""));
    }
    filter
}

/// One point per series over the whole window: the window rounded up to
/// whole seconds, at least Monitoring's minimum.
pub(crate) fn aggregation(window: Duration) -> Aggregation {
    let secs = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    let period = Duration::from_secs(secs).max(MIN_ALIGNMENT);
    Aggregation::new()
        .set_alignment_period(google_cloud_wkt::Duration::clamp(
            i64::try_from(period.as_secs()).unwrap_or(i64::MAX),
            0,
        ))
        .set_per_series_aligner(Aligner::AlignDelta)
        .set_cross_series_reducer(Reducer::ReduceSum)
        .set_group_by_fields([BACKEND_SERVICE_LABEL, RESPONSE_CLASS_LABEL])
}

/// The group a backend service serves: `{group}-bs` → `{group}`. Backend
/// services not named so are not ccd's.
fn group_of(backend_service: &str) -> Option<&str> {
    backend_service
        .strip_suffix("-bs")
        .filter(|g| !g.is_empty())
}

/// Requests and server errors per group from Monitoring's series (any
/// number of points each, any response classes), sorted by group.
pub(crate) fn backends_of(series: &[TimeSeries]) -> Vec<BackendTraffic> {
    let mut per_group: BTreeMap<&str, BackendTraffic> = BTreeMap::new();
    for s in series {
        let service = s
            .resource
            .as_ref()
            .and_then(|r| r.labels.get("backend_target_name"))
            .map(String::as_str)
            .unwrap_or_default();
        let Some(group) = group_of(service) else {
            tracing::debug!(
                backend_service = service,
                "traffic of a backend service ccd does not name; ignored"
            );
            continue;
        };
        let class = s
            .metric
            .as_ref()
            .and_then(|m| m.labels.get("response_code_class"))
            .and_then(|c| c.parse::<u32>().ok());
        let count: u64 = s
            .points
            .iter()
            .filter_map(|p| p.value.as_ref()?.int64_value().copied())
            .map(|v| u64::try_from(v).unwrap_or(0))
            .sum();
        let entry = per_group.entry(group).or_insert_with(|| BackendTraffic {
            group: group.to_owned(),
            ..BackendTraffic::default()
        });
        entry.requests += count;
        if class == Some(500) {
            entry.server_errors += count;
        }
    }
    per_group.into_values().collect()
}

/// The Monitoring client, on the same credentials, retry and back-off as
/// the Compute clients; at the local cloud's endpoint when one is set.
pub(crate) async fn metric_client(
    config: &GceConfig,
    creds: &Credentials,
    throttle: &super::call::Throttle,
) -> Result<MetricService, CloudError> {
    let backoff = ExponentialBackoffBuilder::new()
        .with_initial_delay(config.initial_backoff)
        .with_maximum_delay(Duration::from_secs(65).max(config.initial_backoff))
        .build()
        .map_err(|e| CloudError::Invalid {
            resource: "GceConfig".to_owned(),
            message: format!("back-off: {e}"),
        })?;
    let mut b = MetricService::builder()
        .with_credentials(creds.clone())
        .with_retry_policy(
            ComputeRetry(throttle.clone())
                .with_attempt_limit(10)
                .with_time_limit(Duration::from_secs(180)),
        )
        .with_backoff_policy(backoff);
    if let Some(endpoint) = &config.endpoint {
        b = b.with_endpoint(endpoint.clone());
    }
    b.build().await.map_err(|e| CloudError::Other {
        resource: "monitoring client MetricService".to_owned(),
        message: e.to_string(),
    })
}

fn timestamp(resource: &str, t: SystemTime) -> Outcome<google_cloud_wkt::Timestamp> {
    google_cloud_wkt::Timestamp::try_from(t)
        .map_err(|e| Failure::new(Kind::Invalid, resource, format!("time {t:?}: {e}")))
}

impl GceCloud {
    #[tracing::instrument(skip_all, fields(app = %id.app, lb = %id.name))]
    pub(crate) async fn lb_traffic_impl(&self, id: &LbId, since: SystemTime) -> Outcome<LbTraffic> {
        let now = ccd_clock::wall();
        let local = self.config.endpoint.is_some();
        let complete_until = now.checked_sub(publication_delay(local, id.internal));
        let resource = format!(
            "projects/{}/timeSeries of load balancer {}",
            self.project(),
            id.name
        );
        let Ok(window) = now.duration_since(since) else {
            // A window that has not begun holds nothing yet.
            return Ok(LbTraffic {
                backends: Vec::new(),
                complete_until,
            });
        };
        let interval = TimeInterval::new()
            .set_start_time(timestamp(&resource, since)?)
            .set_end_time(timestamp(&resource, now)?);
        let mut series = Vec::new();
        let mut page_token = String::new();
        loop {
            let call = self
                .c
                .metrics
                .list_time_series()
                .set_name(format!("projects/{}", self.project()))
                .set_filter(filter(id, self.region()))
                .set_interval(interval.clone())
                .set_aggregation(aggregation(window))
                .set_page_token(&page_token)
                .send();
            let page = self.read(&resource, call).await?;
            series.extend(page.time_series);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(LbTraffic {
            backends: backends_of(&series),
            complete_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_monitoring_v3::model::ListTimeSeriesResponse;

    /// What Monitoring answers for a load balancer with a stable and a
    /// canary backend service (the JSON of `projects.timeSeries.list`).
    const TWO_BACKENDS: &str = r#"{
      "timeSeries": [
        {"metric": {"type": "loadbalancing.googleapis.com/https/internal/request_count",
                    "labels": {"response_code_class": "200"}},
         "resource": {"type": "internal_http_lb_rule",
                      "labels": {"backend_target_name": "web-stable-bs", "project_id": "p"}},
         "metricKind": "DELTA", "valueType": "INT64",
         "points": [
           {"interval": {"startTime": "2026-01-01T00:01:00Z", "endTime": "2026-01-01T00:02:00Z"},
            "value": {"int64Value": "900"}},
           {"interval": {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:01:00Z"},
            "value": {"int64Value": "880"}}]},
        {"metric": {"labels": {"response_code_class": "500"}},
         "resource": {"labels": {"backend_target_name": "web-stable-bs"}},
         "points": [{"value": {"int64Value": "2"}}]},
        {"metric": {"labels": {"response_code_class": "200"}},
         "resource": {"labels": {"backend_target_name": "web-canary-bs"}},
         "points": [{"value": {"int64Value": "95"}}]},
        {"metric": {"labels": {"response_code_class": "400"}},
         "resource": {"labels": {"backend_target_name": "web-canary-bs"}},
         "points": [{"value": {"int64Value": "3"}}]},
        {"metric": {"labels": {"response_code_class": "500"}},
         "resource": {"labels": {"backend_target_name": "web-canary-bs"}},
         "points": [{"value": {"int64Value": "12"}}]},
        {"metric": {"labels": {"response_code_class": "500"}},
         "resource": {"labels": {"backend_target_name": "someone-elses-service"}},
         "points": [{"value": {"int64Value": "7"}}]}
      ],
      "unit": "1"
    }"#;

    #[test]
    fn each_backend_service_is_its_groups_traffic() {
        let response: ListTimeSeriesResponse = serde_json::from_str(TWO_BACKENDS).unwrap();
        let backends = backends_of(&response.time_series);
        assert_eq!(
            backends,
            vec![
                BackendTraffic {
                    group: "web-canary".to_owned(),
                    requests: 95 + 3 + 12,
                    server_errors: 12,
                },
                BackendTraffic {
                    group: "web-stable".to_owned(),
                    requests: 900 + 880 + 2,
                    server_errors: 2,
                },
            ]
        );
    }

    #[test]
    fn no_series_is_no_traffic() {
        let response: ListTimeSeriesResponse = serde_json::from_str("{}").unwrap();
        assert!(backends_of(&response.time_series).is_empty());
    }

    #[test]
    fn the_query_names_the_load_balancers_url_map_and_kind() {
        let internal = LbId {
            app: "web".to_owned(),
            name: "web".to_owned(),
            internal: true,
        };
        assert_eq!(
            filter(&internal, "europe-west1"),
            "metric.type = \"loadbalancing.googleapis.com/https/internal/request_count\" AND resource.type = \"internal_http_lb_rule\" AND resource.labels.url_map_name = \"web-um\" AND resource.labels.region = \"europe-west1\""
        );
        let external = LbId {
            internal: false,
            ..internal
        };
        assert!(filter(&external, "europe-west1").starts_with(
            "metric.type = \"loadbalancing.googleapis.com/https/request_count\" AND resource.type = \"https_lb_rule\""
        ));
    }

    #[test]
    fn one_alignment_period_covers_the_window() {
        let period = |d| aggregation(d).alignment_period.map(|p| p.seconds());
        assert_eq!(period(Duration::from_secs(5)), Some(60));
        assert_eq!(period(Duration::from_millis(600_001)), Some(601));
        let a = aggregation(Duration::from_secs(300));
        assert_eq!(a.per_series_aligner, Aligner::AlignDelta);
        assert_eq!(a.cross_series_reducer, Reducer::ReduceSum);
        assert_eq!(
            a.group_by_fields,
            [BACKEND_SERVICE_LABEL, RESPONSE_CLASS_LABEL]
        );
    }

    #[test]
    fn compute_engines_counts_are_complete_minutes_later_the_local_clouds_at_once() {
        assert_eq!(publication_delay(true, true), Duration::ZERO);
        assert_eq!(publication_delay(false, true), Duration::from_secs(150));
        assert_eq!(publication_delay(false, false), Duration::from_secs(270));
    }
}
