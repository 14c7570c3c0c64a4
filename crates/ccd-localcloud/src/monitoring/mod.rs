//! A subset of Cloud Monitoring's API v3: `projects.timeSeries.list` for the
//! load balancers' `request_count`, so that ccd can judge a canary here as
//! on Compute Engine. The counts come from the real proxies (ccd-lb), read
//! every second into a bounded [`history::History`] and once more when a
//! query comes in, so an answer is complete up to the moment it was asked.
//!
//! The proxies count answers as 5xx or not: the local cloud reports those as
//! `response_code_class` 500 and 200 (4xx and 3xx answers are in 200).

pub mod history;
pub mod query;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cloud::Cloud;
use crate::paths;
use history::{History, Totals};
use query::{Field, MonitoringError, Query, Reducer};

const INTERNAL_METRIC: &str = "loadbalancing.googleapis.com/https/internal/request_count";
const EXTERNAL_METRIC: &str = "loadbalancing.googleapis.com/https/request_count";
const INTERNAL_RESOURCE: &str = "internal_http_lb_rule";
const EXTERNAL_RESOURCE: &str = "https_lb_rule";
/// The response classes the proxies tell apart.
const CLASSES: [u32; 2] = [200, 500];

pub fn router(cloud: Arc<Cloud>) -> axum::Router {
    axum::Router::new()
        .route(
            "/v3/projects/{project}/timeSeries",
            axum::routing::get(list_time_series),
        )
        .with_state(cloud)
}

/// Samples the load balancers' counters every [`history::SAMPLE_PERIOD`] until `stop`.
pub async fn sample(cloud: Arc<Cloud>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(history::SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => cloud.balancers.sample_traffic(ccd_clock::wall()),
        }
    }
}

async fn list_time_series(
    State(cloud): State<Arc<Cloud>>,
    Path(project): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let answer = query::parse(raw.as_deref().unwrap_or("")).and_then(|q| {
        // Read the proxies now: what was answered until this query is in the answer.
        cloud.balancers.sample_traffic(ccd_clock::wall());
        let sources = sources(&cloud, &project);
        cloud
            .balancers
            .with_traffic(|history| time_series(&q, &sources, history))
    });
    match answer {
        Ok(body) => (axum::http::StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => {
            tracing::debug!(project, error = %e.message, "monitoring query refused");
            e.into_response()
        }
    }
}

/// One backend service behind one load balancer: what its series are about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub resource_type: &'static str,
    pub resource_labels: BTreeMap<String, String>,
    /// The backend service's store key, as the history knows it.
    pub service: String,
}

/// Every backend service each of the project's load balancers routes to,
/// with the labels Monitoring puts on its series.
fn sources(cloud: &Cloud, project: &str) -> Vec<Source> {
    let prefix = format!("projects/{project}/");
    let mut out = Vec::new();
    for key in cloud
        .store
        .keys(&prefix, |k| k.contains("/forwardingRules/"))
    {
        let Some(rule) = cloud.store.get(&key) else {
            continue;
        };
        let resource_type = match rule["loadBalancingScheme"].as_str() {
            Some("INTERNAL_MANAGED") => INTERNAL_RESOURCE,
            Some("EXTERNAL_MANAGED" | "EXTERNAL") if key.contains("/global/") => EXTERNAL_RESOURCE,
            _ => continue,
        };
        let Some(proxy_link) = rule["target"].as_str() else {
            continue;
        };
        let proxy_key = cloud.key_of(proxy_link);
        let Some(map_key) = cloud
            .store
            .get(&proxy_key)
            .and_then(|p| p["urlMap"].as_str().map(|l| cloud.key_of(l)))
        else {
            continue;
        };
        let Some(map) = cloud.store.get(&map_key) else {
            continue;
        };
        let region = region_of(&key).unwrap_or("global");
        let mut labels = BTreeMap::from([
            ("project_id".to_owned(), project.to_owned()),
            ("region".to_owned(), region.to_owned()),
            (
                "forwarding_rule_name".to_owned(),
                paths::name_of(&key).to_owned(),
            ),
            (
                "target_proxy_name".to_owned(),
                paths::name_of(&proxy_key).to_owned(),
            ),
            (
                "url_map_name".to_owned(),
                paths::name_of(&map_key).to_owned(),
            ),
            (
                "backend_target_type".to_owned(),
                "BACKEND_SERVICE".to_owned(),
            ),
        ]);
        if resource_type == INTERNAL_RESOURCE
            && let Some(network) = rule["network"].as_str()
        {
            labels.insert(
                "network_name".to_owned(),
                paths::name_of(network).to_owned(),
            );
        }
        let mut services = Vec::new();
        service_links(&map, &mut services);
        services.sort();
        services.dedup();
        for link in services {
            let service = cloud.key_of(&link);
            let mut resource_labels = labels.clone();
            resource_labels.insert(
                "backend_target_name".to_owned(),
                paths::name_of(&service).to_owned(),
            );
            out.push(Source {
                resource_type,
                resource_labels,
                service,
            });
        }
    }
    out
}

/// `projects/p/regions/r/...` → `r`.
fn region_of(key: &str) -> Option<&str> {
    key.split_once("/regions/")?.1.split('/').next()
}

/// Every backend service a URL map names, wherever it names it.
fn service_links(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(fields) => {
            for (k, v) in fields {
                match (k.as_str(), v.as_str()) {
                    ("service" | "defaultService" | "backendService", Some(link))
                        if link.contains("/backendServices/") =>
                    {
                        out.push(link.to_owned());
                    }
                    _ => service_links(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| service_links(i, out)),
        _ => {}
    }
}

/// The count of one response class in a backend service's totals.
fn of_class(totals: Totals, class: u32) -> u64 {
    if class == 500 {
        totals.server_errors
    } else {
        totals.requests.saturating_sub(totals.server_errors)
    }
}

/// One series before reduction: a source's class.
struct Raw<'a> {
    source: &'a Source,
    class: u32,
}

impl Raw<'_> {
    fn value_of(&self, field: &Field) -> Option<String> {
        match field {
            Field::MetricType => Some(metric_of(self.source.resource_type).to_owned()),
            Field::ResourceType => Some(self.source.resource_type.to_owned()),
            Field::ResourceLabel(l) => self.source.resource_labels.get(l).cloned(),
            Field::MetricLabel(l) => (l == "response_code_class").then(|| self.class.to_string()),
        }
    }
}

fn metric_of(resource_type: &str) -> &'static str {
    if resource_type == INTERNAL_RESOURCE {
        INTERNAL_METRIC
    } else {
        EXTERNAL_METRIC
    }
}

/// The alignment periods of a query, newest first: each ends a whole number
/// of periods before the interval's end, clipped to the interval.
fn periods(q: &Query) -> Vec<(SystemTime, SystemTime, SystemTime)> {
    let mut out = Vec::new();
    let mut end = q.end;
    loop {
        let start = end.checked_sub(q.alignment).unwrap_or(UNIX_EPOCH);
        // (reported start, counted from, end)
        out.push((start, start.max(q.start), end));
        if start <= q.start || out.len() >= 10_000 {
            return out;
        }
        end = start;
    }
}

/// The answer to `q` over `sources`: Monitoring's `ListTimeSeriesResponse`.
pub fn time_series(
    q: &Query,
    sources: &[Source],
    history: &History,
) -> Result<Value, MonitoringError> {
    if q.metric_type != INTERNAL_METRIC && q.metric_type != EXTERNAL_METRIC {
        return Err(MonitoringError::invalid(format!(
            "The local cloud serves the metrics {INTERNAL_METRIC} and {EXTERNAL_METRIC}, not {}",
            q.metric_type
        )));
    }
    let raws: Vec<Raw<'_>> = sources
        .iter()
        .filter(|s| metric_of(s.resource_type) == q.metric_type)
        .flat_map(|source| CLASSES.map(|class| Raw { source, class }))
        .filter(|r| {
            q.conditions
                .iter()
                .all(|(f, v)| r.value_of(f).as_ref() == Some(v))
        })
        .collect();
    // The series after reduction, keyed by the labels they keep.
    let mut groups: BTreeMap<Vec<(String, Option<String>)>, Vec<&Raw<'_>>> = BTreeMap::new();
    for raw in &raws {
        let key = match q.reducer {
            Reducer::Sum => q
                .group_by
                .iter()
                .map(|f| (field_name(f), raw.value_of(f)))
                .collect(),
            Reducer::None => {
                let mut all: Vec<(String, Option<String>)> = raw
                    .source
                    .resource_labels
                    .iter()
                    .map(|(k, v)| (format!("resource.label.{k}"), Some(v.clone())))
                    .collect();
                all.push((
                    "metric.label.response_code_class".to_owned(),
                    Some(raw.class.to_string()),
                ));
                all.push((
                    "resource.type".to_owned(),
                    Some(raw.source.resource_type.to_owned()),
                ));
                all
            }
        };
        groups.entry(key).or_default().push(raw);
    }
    let periods = periods(q);
    let mut series = Vec::new();
    for (labels, members) in groups {
        let mut points = Vec::new();
        for (reported_start, from, to) in &periods {
            let count: u64 = members
                .iter()
                .filter_map(|r| {
                    // The last period ends with the sample this query took.
                    let counts = if *to == q.end {
                        history.window(&r.source.service, *from, *to)
                    } else {
                        history.window_before(&r.source.service, *from, *to)
                    };
                    counts.map(|t| of_class(t, r.class))
                })
                .sum();
            if count > 0 {
                points.push(json!({
                    "interval": {"startTime": timestamp(*reported_start), "endTime": timestamp(*to)},
                    "value": {"int64Value": count.to_string()},
                }));
            }
        }
        if points.is_empty() {
            continue;
        }
        let (mut resource_labels, mut metric_labels) = (json!({}), json!({}));
        for (name, value) in labels {
            let Some(value) = value else { continue };
            if let Some(l) = name.strip_prefix("resource.label.") {
                resource_labels[l] = value.into();
            } else if let Some(l) = name.strip_prefix("metric.label.") {
                metric_labels[l] = value.into();
            }
        }
        let resource_type = members.first().map_or("", |r| r.source.resource_type);
        let mut s = json!({
            "metric": {"type": q.metric_type, "labels": metric_labels},
            "resource": {"type": resource_type, "labels": resource_labels},
            "metricKind": "DELTA",
            "valueType": "INT64",
            "unit": "1",
        });
        if !q.headers_only {
            s["points"] = Value::Array(points);
        }
        series.push(s);
    }
    let mut body = json!({"unit": "1"});
    if !series.is_empty() {
        body["timeSeries"] = Value::Array(series);
    }
    Ok(body)
}

/// A field's canonical name, as labels are kept under after reduction.
fn field_name(f: &Field) -> String {
    match f {
        Field::MetricType => "metric.type".to_owned(),
        Field::ResourceType => "resource.type".to_owned(),
        Field::ResourceLabel(l) => format!("resource.label.{l}"),
        Field::MetricLabel(l) => format!("metric.label.{l}"),
    }
}

/// RFC 3339 in UTC with nanoseconds, as Monitoring writes a Timestamp.
pub fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let text = crate::clock::rfc3339(since.as_secs(), 0);
    // `...T12:00:00.000-00:00` → `...T12:00:00.123456789Z`
    let seconds = text.split('.').next().unwrap_or_default();
    format!("{seconds}.{:09}Z", since.subsec_nanos())
}
