//! What keeps a failing instance from costing requests: a route's `retryPolicy` and a backend
//! service's `outlierDetection` and `localityLbPolicy`, read from Compute's resources into
//! ccd-lb's terms. Fields left out take Compute's defaults; values ccd-lb would refuse are
//! brought into range rather than failing the whole service or map.

use std::time::Duration;

use ccd_lb::{LoadBalancingPolicy, OutlierDetection, RetryCondition, RetryPolicy};
use serde_json::Value;

/// The retry policy of a route action (`HttpRouteAction.retryPolicy`), if it has one.
pub(super) fn retry_policy(action: Option<&Value>) -> Option<RetryPolicy> {
    let policy = action?.get("retryPolicy")?;
    let conditions = policy["retryConditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(RetryCondition::from_compute);
    let num_retries = policy["numRetries"]
        .as_u64()
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX).max(1));
    let per_try_timeout = duration(&policy["perTryTimeout"]).filter(|t| !t.is_zero());
    Some(RetryPolicy::new(conditions, num_retries, per_try_timeout))
}

/// A backend service's outlier detection, if it has one.
pub(super) fn outlier_detection(service: &Value) -> Option<OutlierDetection> {
    let o = service.get("outlierDetection").filter(|o| o.is_object())?;
    let d = OutlierDetection::default();
    let count = |field: &str, default: u32| {
        o[field]
            .as_u64()
            .map_or(default, |n| u32::try_from(n).unwrap_or(u32::MAX).max(1))
    };
    let percent =
        |field: &str, default: u32| o[field].as_u64().map_or(default, |p| p.min(100) as u32);
    let time = |field: &str, default: Duration| {
        duration(&o[field])
            .filter(|t| !t.is_zero())
            .unwrap_or(default)
    };
    Some(OutlierDetection {
        consecutive_errors: count("consecutiveErrors", d.consecutive_errors),
        consecutive_gateway_failure: count(
            "consecutiveGatewayFailure",
            d.consecutive_gateway_failure,
        ),
        enforcing_consecutive_errors: percent(
            "enforcingConsecutiveErrors",
            d.enforcing_consecutive_errors,
        ),
        enforcing_consecutive_gateway_failure: percent(
            "enforcingConsecutiveGatewayFailure",
            d.enforcing_consecutive_gateway_failure,
        ),
        interval: time("interval", d.interval),
        base_ejection_time: time("baseEjectionTime", d.base_ejection_time),
        max_ejection_percent: percent("maxEjectionPercent", d.max_ejection_percent),
    })
}

/// `localityLbPolicy`: the two ccd-lb has; any other balances round robin.
pub(super) fn load_balancing(service: &Value) -> LoadBalancingPolicy {
    match service["localityLbPolicy"].as_str() {
        Some("LEAST_REQUEST") => LoadBalancingPolicy::LeastRequest,
        _ => LoadBalancingPolicy::RoundRobin,
    }
}

/// A Compute `Duration`: `seconds` (an int64, sent as a string) and `nanos`.
fn duration(v: &Value) -> Option<Duration> {
    if !v.is_object() {
        return None;
    }
    let seconds = match &v["seconds"] {
        Value::String(s) => s.parse::<u64>().ok()?,
        Value::Null => 0,
        other => other.as_u64()?,
    };
    let nanos = v["nanos"].as_u64().unwrap_or(0).min(999_999_999) as u32;
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_retry_policy_reads_as_compute_writes_it() {
        let action = json!({"retryPolicy": {
            "retryConditions": ["connect-failure", "gateway-error", "unavailable", "refused-stream"],
            "numRetries": 2,
            "perTryTimeout": {"seconds": "4", "nanos": 500_000_000}
        }});
        let policy = retry_policy(Some(&action)).unwrap();
        assert_eq!(
            policy,
            RetryPolicy::new(
                [
                    RetryCondition::ConnectFailure,
                    RetryCondition::GatewayError,
                    RetryCondition::RefusedStream
                ],
                2,
                Some(Duration::from_millis(4500))
            )
        );
        let defaults = retry_policy(Some(&json!({"retryPolicy": {"retryConditions": ["5xx"]}})));
        assert_eq!(
            defaults.map(|p| (p.num_retries, p.per_try_timeout)),
            Some((1, None))
        );
        assert_eq!(
            retry_policy(Some(&json!({"weightedBackendServices": []}))),
            None
        );
        assert_eq!(retry_policy(None), None);
    }

    #[test]
    fn outlier_detection_fills_compute_defaults_and_stays_in_range() {
        let service = json!({"outlierDetection": {
            "consecutiveGatewayFailure": 2,
            "baseEjectionTime": {"seconds": 60},
            "interval": {"nanos": 500_000_000},
            "maxEjectionPercent": 150,
            "consecutiveErrors": 0
        }});
        let o = outlier_detection(&service).unwrap();
        assert_eq!(o.consecutive_gateway_failure, 2);
        assert_eq!(o.base_ejection_time, Duration::from_secs(60));
        assert_eq!(o.interval, Duration::from_millis(500));
        assert_eq!(o.max_ejection_percent, 100);
        assert_eq!(o.consecutive_errors, 1, "0 would eject on nothing");
        assert_eq!(
            o.enforcing_consecutive_gateway_failure, 100,
            "Compute's default"
        );
        assert_eq!(outlier_detection(&json!({})), None);
    }

    #[test]
    fn locality_policies_ccd_lb_lacks_balance_round_robin() {
        let policy = |p: &str| load_balancing(&json!({"localityLbPolicy": p}));
        assert_eq!(policy("LEAST_REQUEST"), LoadBalancingPolicy::LeastRequest);
        assert_eq!(policy("ROUND_ROBIN"), LoadBalancingPolicy::RoundRobin);
        assert_eq!(policy("MAGLEV"), LoadBalancingPolicy::RoundRobin);
    }
}
