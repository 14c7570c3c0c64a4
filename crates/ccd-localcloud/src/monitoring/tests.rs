use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use ccd_lb::BackendStats;
use serde_json::json;

use super::history::{History, Totals};
use super::query::{self, Field, Reducer};
use super::{Source, time_series, timestamp};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn backend(id: &str, requests: u64, errors: u64) -> BackendStats {
    BackendStats {
        id: id.to_owned(),
        requests,
        responses_5xx: errors,
        ..BackendStats::default()
    }
}

fn totals(requests: u64, server_errors: u64) -> Option<Totals> {
    Some(Totals {
        requests,
        server_errors,
    })
}

const BS: &str = "projects/p/regions/r/backendServices/web-bs";

#[test]
fn a_window_is_the_difference_of_the_samples_that_close_it() {
    let mut h = History::default();
    h.record(at(10), vec![(BS.to_owned(), vec![backend("a", 0, 0)])]);
    h.record(at(11), vec![(BS.to_owned(), vec![backend("a", 10, 1)])]);
    h.record(at(12), vec![(BS.to_owned(), vec![backend("a", 25, 4)])]);
    h.record(at(13), vec![(BS.to_owned(), vec![backend("a", 25, 4)])]);
    // Requests counted by the sample at 11 happened in (10, 11].
    assert_eq!(h.window(BS, at(10), at(11)), totals(10, 1));
    // A window reaching into a sampling period counts all of it.
    assert_eq!(
        h.window(BS, at(11) + Duration::from_millis(500), at(12)),
        totals(15, 3)
    );
    assert_eq!(
        h.window_before(BS, at(10), at(12) - Duration::from_millis(1)),
        totals(10, 1)
    );
    assert_eq!(h.window(BS, at(10), at(13)), totals(25, 4));
    assert_eq!(h.window(BS, at(11), at(12)), totals(15, 3));
    // Ends between samples: the next sample closes them.
    assert_eq!(
        h.window(BS, UNIX_EPOCH, at(10) + Duration::from_millis(500)),
        totals(10, 1)
    );
    // After the requests: nothing.
    assert_eq!(h.window(BS, at(12), at(13)), totals(0, 0));
    assert_eq!(h.window(BS, at(13), at(20)), totals(0, 0));
    assert_eq!(
        h.window("projects/p/regions/r/backendServices/other", at(0), at(20)),
        None
    );
}

#[test]
fn traffic_before_a_services_first_sample_counts_from_its_start() {
    let mut h = History::default();
    h.record(at(10), vec![]);
    h.record(at(11), vec![(BS.to_owned(), vec![backend("a", 7, 0)])]);
    assert_eq!(h.window(BS, at(10), at(11)), totals(7, 0));
    assert_eq!(h.window(BS, at(11), at(12)), totals(0, 0));
}

#[test]
fn replaced_and_removed_backends_keep_the_services_totals_growing() {
    let mut h = History::default();
    h.record(
        at(1),
        vec![(BS.to_owned(), vec![backend("a", 0, 0), backend("b", 0, 0)])],
    );
    h.record(
        at(2),
        vec![(
            BS.to_owned(),
            vec![backend("a", 50, 5), backend("b", 40, 0)],
        )],
    );
    // `a` came back at another address (its counters restarted); `b` left.
    h.record(at(3), vec![(BS.to_owned(), vec![backend("a", 3, 1)])]);
    h.record(
        at(4),
        vec![(BS.to_owned(), vec![backend("a", 8, 1), backend("c", 2, 2)])],
    );
    assert_eq!(
        h.window(BS, at(1), at(4)),
        totals(50 + 40 + 3 + 5 + 2, 5 + 1 + 2)
    );
    assert_eq!(h.window(BS, at(2), at(3)), totals(3, 1));
}

#[test]
fn memory_is_bounded_by_age_and_count() {
    let mut h = History::new(Duration::from_secs(60), 1_000);
    for s in 0..600 {
        h.record(at(s), vec![(BS.to_owned(), vec![backend("a", s * 2, s)])]);
    }
    // The last minute, and a sample per second in it.
    assert!(h.len() <= 61, "{} samples kept", h.len());
    assert_eq!(h.window(BS, at(590), at(599)), totals(18, 9));
    // Older than the retention: counted from the oldest sample kept.
    assert_eq!(h.window(BS, at(0), at(599)), totals(120, 60));

    let mut h = History::new(Duration::from_secs(3600), 10);
    for s in 0..100 {
        h.record(at(s), vec![(BS.to_owned(), vec![backend("a", s, 0)])]);
    }
    assert_eq!(h.len(), 10);

    // A service gone for longer than the retention is forgotten.
    let mut h = History::new(Duration::from_secs(60), 1_000);
    h.record(at(0), vec![(BS.to_owned(), vec![backend("a", 1, 0)])]);
    h.record(at(100), vec![]);
    assert_eq!(h.len(), 0);
    assert_eq!(h.window(BS, at(0), at(100)), None);
}

const FILTER: &str = r#"metric.type = "loadbalancing.googleapis.com/https/internal/request_count" AND resource.type = "internal_http_lb_rule" AND resource.labels.url_map_name = "web-um""#;

fn raw_query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// The query as Google's Rust client sends it.
fn sdk_query(filter: &str, start: &str, end: &str) -> String {
    raw_query(&[
        ("filter", filter),
        ("interval.endTime", end),
        ("interval.startTime", start),
        ("aggregation.alignmentPeriod", "120s"),
        ("aggregation.perSeriesAligner", "ALIGN_DELTA"),
        ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
        (
            "aggregation.groupByFields",
            "resource.label.backend_target_name",
        ),
        (
            "aggregation.groupByFields",
            "metric.label.response_code_class",
        ),
        ("orderBy", ""),
        ("view", "FULL"),
        ("pageSize", "0"),
        ("pageToken", ""),
    ])
}

#[test]
fn the_clients_query_is_read() {
    let q = query::parse(&sdk_query(
        FILTER,
        "2027-01-15T08:00:00Z",
        "2027-01-15T08:01:30.25Z",
    ))
    .unwrap();
    assert_eq!(
        q.metric_type,
        "loadbalancing.googleapis.com/https/internal/request_count"
    );
    assert_eq!(
        q.conditions,
        vec![
            (Field::ResourceType, "internal_http_lb_rule".to_owned()),
            (
                Field::ResourceLabel("url_map_name".to_owned()),
                "web-um".to_owned()
            ),
        ]
    );
    assert_eq!(
        q.end.duration_since(q.start).unwrap(),
        Duration::from_millis(90_250)
    );
    assert_eq!(q.alignment, Duration::from_secs(120));
    assert_eq!(q.reducer, Reducer::Sum);
    assert!(!q.headers_only);
    // Enums by number, as the client sends `view`.
    let numbered = sdk_query(FILTER, "2027-01-15T08:00:00Z", "2027-01-15T08:01:00Z")
        .replace("ALIGN_DELTA", "14")
        .replace("REDUCE_SUM", "4")
        .replace("view=FULL", "view=1");
    let q2 = query::parse(&numbered).unwrap();
    assert_eq!((q2.reducer, q2.headers_only), (Reducer::Sum, true));
    assert_eq!(
        q.group_by,
        vec![
            Field::ResourceLabel("backend_target_name".to_owned()),
            Field::MetricLabel("response_code_class".to_owned())
        ]
    );
}

#[test]
fn timestamps_are_rfc3339_both_ways() {
    let t = query::parse_time("t", "2027-01-15T08:00:00.123456789Z").unwrap();
    assert_eq!(timestamp(t), "2027-01-15T08:00:00.123456789Z");
    assert_eq!(
        query::parse_time("t", "2027-01-15T09:30:00+01:30").unwrap(),
        query::parse_time("t", "2027-01-15T08:00:00Z").unwrap()
    );
    assert_eq!(
        query::parse_time("t", "1970-01-01T00:00:00Z").unwrap(),
        UNIX_EPOCH
    );
    for bad in [
        "2027-01-15 08:00:00Z",
        "2027-01-15T08:00:00",
        "2027-13-01T00:00:00Z",
        "yesterday",
    ] {
        let e = query::parse_time("interval.endTime", bad).unwrap_err();
        assert!(
            e.message.contains("interval.endTime"),
            "{bad}: {}",
            e.message
        );
    }
}

#[test]
fn filters_outside_the_subset_are_refused_with_the_reason() {
    let refused = |filter: &str, says: &str| {
        let e = query::parse_filter(filter).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains(says), "{filter}: {}", e.message);
    };
    refused(r#"metric.type != "x""#, "only the = operator");
    refused(r#"metric.type = "x" OR resource.type = "y""#, "AND only");
    refused(r#"metric.type = starts_with("x")"#, "quoted string");
    refused(r#"project = "p""#, "not \"project\"");
    refused(r#"metric.type = "x"#, "not closed");
    assert_eq!(
        query::parse_filter(
            r#"metric.labels.response_code_class=500 AND resource.label.region = "r""#
        )
        .unwrap(),
        vec![
            (
                Field::MetricLabel("response_code_class".to_owned()),
                "500".to_owned()
            ),
            (Field::ResourceLabel("region".to_owned()), "r".to_owned()),
        ]
    );
}

#[test]
fn queries_outside_the_subset_are_refused_with_the_reason() {
    let refused = |raw: String, says: &str| {
        let e = query::parse(&raw).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains(says), "{raw}: {}", e.message);
    };
    let (start, end) = ("2027-01-15T08:00:00Z", "2027-01-15T08:05:00Z");
    refused(raw_query(&[("interval.endTime", end)]), "filter");
    refused(
        raw_query(&[
            ("filter", r#"resource.type = "x""#),
            ("interval.endTime", end),
        ]),
        "metric.type",
    );
    refused(raw_query(&[("filter", FILTER)]), "interval.endTime");
    refused(
        raw_query(&[("filter", FILTER), ("interval.endTime", end)]),
        "aligned queries only",
    );
    refused(sdk_query(FILTER, end, start), "interval.startTime");
    refused(
        sdk_query(FILTER, start, end).replace("120s", "30s"),
        "at least 60 seconds",
    );
    refused(
        sdk_query(FILTER, start, end).replace("ALIGN_DELTA", "ALIGN_RATE"),
        "ALIGN_RATE",
    );
    refused(
        sdk_query(FILTER, start, end).replace("REDUCE_SUM", "REDUCE_MEAN"),
        "REDUCE_MEAN",
    );
    refused(
        sdk_query(FILTER, start, end) + "&pageToken=abc",
        "page token",
    );
    refused(
        sdk_query(FILTER, start, end) + "&colour=red",
        "Unknown name \"colour\"",
    );
    refused(
        sdk_query(FILTER, start, end) + "&secondaryAggregation.perSeriesAligner=ALIGN_SUM",
        "does not support",
    );
}

#[tokio::test]
async fn errors_have_googles_shape() {
    let e = query::parse("").unwrap_err();
    let response = axum::response::IntoResponse::into_response(e);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("filter"),
        "{body}"
    );
}

fn source(service: &str) -> Source {
    Source {
        resource_type: "internal_http_lb_rule",
        resource_labels: BTreeMap::from([
            ("url_map_name".to_owned(), "web-um".to_owned()),
            ("backend_target_name".to_owned(), service.to_owned()),
        ]),
        service: format!("projects/p/regions/r/backendServices/{service}"),
    }
}

#[test]
fn series_are_summed_per_backend_service_and_class_over_the_window() {
    let (stable, canary) = (source("web-stable-bs"), source("web-canary-bs"));
    let mut h = History::default();
    let sample = |h: &mut History, s: u64, stable_counts: (u64, u64), canary_counts: (u64, u64)| {
        h.record(
            at(s),
            vec![
                (
                    stable.service.clone(),
                    vec![backend("s1", stable_counts.0, stable_counts.1)],
                ),
                (
                    canary.service.clone(),
                    vec![backend("c1", canary_counts.0, canary_counts.1)],
                ),
            ],
        );
    };
    sample(&mut h, 0, (0, 0), (0, 0));
    sample(&mut h, 10, (100, 1), (20, 5));
    sample(&mut h, 20, (300, 2), (40, 10));
    let q = query::parse(&sdk_query(FILTER, &timestamp(at(5)), &timestamp(at(20)))).unwrap();
    let body = time_series(&q, &[stable.clone(), canary.clone()], &h).unwrap();
    let mut got: Vec<(String, String, String)> = body["timeSeries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["points"].as_array().unwrap().len(), 1, "{s}");
            assert_eq!(s["metricKind"], "DELTA");
            (
                s["resource"]["labels"]["backend_target_name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                s["metric"]["labels"]["response_code_class"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                s["points"][0]["value"]["int64Value"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    got.sort();
    // The window [5 s, 20 s] reaches into the sampling period (0, 10]: counted whole.
    let want = [
        ("web-canary-bs", "200", "30"),
        ("web-canary-bs", "500", "10"),
        ("web-stable-bs", "200", "298"),
        ("web-stable-bs", "500", "2"),
    ];
    assert_eq!(
        got,
        want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    // Only the labels grouped by are kept.
    let first = &body["timeSeries"][0];
    assert_eq!(first["resource"]["labels"].as_object().unwrap().len(), 1);

    // Another load balancer's URL map, or a window after the traffic: nothing.
    let other = FILTER.replace("web-um", "api-um");
    let q = query::parse(&sdk_query(&other, &timestamp(at(0)), &timestamp(at(20)))).unwrap();
    assert_eq!(
        time_series(&q, &[stable.clone(), canary.clone()], &h).unwrap(),
        json!({"unit": "1"})
    );
    let q = query::parse(&sdk_query(FILTER, &timestamp(at(20)), &timestamp(at(30)))).unwrap();
    assert_eq!(
        time_series(&q, &[stable.clone(), canary.clone()], &h).unwrap(),
        json!({"unit": "1"})
    );

    // A metric the local cloud does not serve is refused, not answered empty.
    let latencies = FILTER.replace("request_count", "backend_latencies");
    let q = query::parse(&sdk_query(
        &latencies,
        &timestamp(at(0)),
        &timestamp(at(20)),
    ))
    .unwrap();
    let e = time_series(&q, &[stable, canary], &h).unwrap_err();
    assert!(e.message.contains("backend_latencies"), "{}", e.message);
}
