//! A load balancer's backends: one backend service per backend group,
//! `{group name}-bs`, each marked with the balancer's name so that the
//! adapter finds all of them again (to report them, and to delete those no
//! longer listed). The spec is checked here before anything is sent.

use std::collections::BTreeSet;
use std::time::Duration;

use google_cloud_compute_v1::model::{
    Backend, BackendService, ConnectionDraining, OutlierDetection as ApiOutlier, backend,
    backend_service,
};

use super::url_map::duration;
use crate::gce::call::{Failure, Kind, Outcome};
use crate::gce::marker::{self, name_of};
use crate::model::{APP_LABEL, GroupId, LoadBalancerSpec, OutlierDetection};

/// The description word naming the load balancer a backend service serves.
const LB_WORD: &str = "ccd-lb";
/// Compute's longest resource name.
const MAX_NAME: usize = 63;
/// Compute's largest `weightedBackendServices[].weight`.
pub(super) const MAX_WEIGHT: u32 = 1000;

/// The backend service of a group: `{group name}-bs`. An app whose single
/// group is named like its load balancer keeps the name it always had.
pub(super) fn service_name(group: &GroupId) -> String {
    format!("{}-bs", group.name)
}

/// The backend service every load balancer had before it had one per group.
pub(super) fn legacy_service_name(lb: &str) -> String {
    format!("{lb}-bs")
}

/// Refuses a spec Compute would refuse, or that would send no request
/// anywhere, naming the load balancer and the fix.
pub(super) fn validate(spec: &LoadBalancerSpec) -> Outcome<()> {
    let invalid = |message: String| {
        Err(Failure::new(
            Kind::Invalid,
            &format!("load balancer {}", spec.name),
            message,
        ))
    };
    if spec.backends.is_empty() {
        return invalid(
            "backends is empty; list at least one group, with a weight above 0".to_owned(),
        );
    }
    let mut seen = BTreeSet::new();
    for b in &spec.backends {
        if b.weight > MAX_WEIGHT {
            return invalid(format!(
                "backend group {} has weight {}; weights go from 0 to {MAX_WEIGHT}",
                b.group.name, b.weight
            ));
        }
        if !seen.insert(b.group.name.as_str()) {
            return invalid(format!(
                "backend group {} is listed twice; list each group once",
                b.group.name
            ));
        }
        let name = service_name(&b.group);
        if name.len() > MAX_NAME {
            return invalid(format!(
                "backend group {} gives the backend service name {name}, longer than \
                 {MAX_NAME} characters; use a shorter group name",
                b.group.name
            ));
        }
    }
    if spec.backends.iter().all(|b| b.weight == 0) {
        return invalid(
            "every backend group has weight 0, so no request could be served; give at least \
             one group a weight above 0"
                .to_owned(),
        );
    }
    if let Some(retry) = &spec.retry
        && (retry.on.is_empty() || retry.retries == 0 || retry.per_try_timeout.is_zero())
    {
        return invalid(
            "the retry policy needs a condition, at least 1 retry and a per-try timeout above 0"
                .to_owned(),
        );
    }
    if let Some(o) = &spec.outlier {
        let percents = [
            o.enforcing_consecutive_errors,
            o.enforcing_consecutive_gateway_failures,
            o.max_ejection_percent,
        ];
        if o.consecutive_errors == 0
            || o.consecutive_gateway_failures == 0
            || o.interval.is_zero()
            || o.base_ejection_time.is_zero()
            || percents.iter().any(|&p| p > 100)
        {
            return invalid(
                "outlier detection needs thresholds of at least 1, an interval and ejection \
                 time above 0, and percentages from 0 to 100"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// Whether a backend service found in the project is one of load balancer
/// `lb`'s: marked as ccd's, the app's and the balancer's, or (made before
/// the marker had the balancer's name) `{lb}-bs` marked as the app's.
pub(super) fn belongs_to(service: &BackendService, app: &str, lb: &str) -> bool {
    let description = service.description.as_deref();
    if !marker::owned_by(description, app) {
        return false;
    }
    match marker::word(description, LB_WORD) {
        Some(owner) => owner == lb,
        None => service.name.as_deref() == Some(legacy_service_name(lb).as_str()),
    }
}

/// Refuses to take over a group's backend service that ccd did not make for
/// the app, or that another load balancer has marked as its own: the name
/// is the group's, so two balancers of one kind on one group would share it.
pub(super) fn check_owner(
    resource: &str,
    current: &BackendService,
    spec: &LoadBalancerSpec,
) -> Outcome<()> {
    marker::check_owned(resource, &spec.app, current)?;
    let description = current.description.as_deref();
    let app = marker::word(description, APP_LABEL);
    let lb = marker::word(description, LB_WORD);
    let other = match (app, lb) {
        (Some(app), _) if app != spec.app => format!("app {app}"),
        (_, Some(lb)) if lb != spec.name => format!("load balancer {lb}"),
        _ => return Ok(()),
    };
    let name = current.name.as_deref().unwrap_or_default();
    Err(Failure::new(
        Kind::Invalid,
        &format!("load balancer {}", spec.name),
        format!(
            "backend service {name} already serves {other}: a group can be behind one load \
             balancer of each kind (external, internal); take the group out of the other's \
             backends first"
        ),
    ))
}

/// The backend service ccd wants for one group: the group behind the named
/// port, probed by the balancer's check, draining leaving instances for
/// `spec.drain`, ejecting those that keep failing requests. Round robin is
/// pinned with outlier detection: the default without session affinity, and
/// what the local cloud's proxy does.
pub(super) fn desired(
    spec: &LoadBalancerSpec,
    name: &str,
    scheme: backend_service::LoadBalancingScheme,
    health_check: String,
    group: String,
) -> BackendService {
    BackendService::new()
        .set_name(name)
        .set_description(marker::description(&spec.app, &[(LB_WORD, &spec.name)]))
        .set_load_balancing_scheme(scheme)
        .set_protocol(backend_service::Protocol::Http)
        .set_port_name(&spec.port_name)
        .set_timeout_sec(30)
        .set_health_checks([health_check])
        .set_connection_draining(
            ConnectionDraining::new().set_draining_timeout_sec(secs(spec.drain)),
        )
        .set_backends([Backend::new()
            .set_group(group)
            .set_balancing_mode(backend::BalancingMode::Utilization)
            .set_capacity_scaler(1.0_f32)])
        .set_or_clear_locality_lb_policy(
            spec.outlier
                .as_ref()
                .map(|_| backend_service::LocalityLbPolicy::RoundRobin),
        )
        .set_or_clear_outlier_detection(spec.outlier.as_ref().map(outlier_detection))
}

fn outlier_detection(o: &OutlierDetection) -> ApiOutlier {
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    ApiOutlier::new()
        .set_consecutive_errors(int(o.consecutive_errors))
        .set_consecutive_gateway_failure(int(o.consecutive_gateway_failures))
        .set_enforcing_consecutive_errors(int(o.enforcing_consecutive_errors))
        .set_enforcing_consecutive_gateway_failure(int(o.enforcing_consecutive_gateway_failures))
        .set_interval(duration(o.interval))
        .set_base_ejection_time(duration(o.base_ejection_time))
        .set_max_ejection_percent(int(o.max_ejection_percent))
}

/// Outlier detection as comparable values, Compute's defaults filled in.
type Outlier = ([i32; 5], [(i64, i32); 2]);

fn outlier_of(b: &BackendService) -> Option<Outlier> {
    let o = b.outlier_detection.as_ref()?;
    let time = |d: &Option<google_cloud_compute_v1::model::Duration>, default: i64| {
        d.as_ref().map_or((default, 0), |d| {
            (d.seconds.unwrap_or(0), d.nanos.unwrap_or(0))
        })
    };
    Some((
        [
            o.consecutive_errors.unwrap_or(5),
            o.consecutive_gateway_failure.unwrap_or(3),
            o.enforcing_consecutive_errors.unwrap_or(0),
            o.enforcing_consecutive_gateway_failure.unwrap_or(100),
            o.max_ejection_percent.unwrap_or(50),
        ],
        [time(&o.interval, 1), time(&o.base_ejection_time, 30)],
    ))
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Whether a backend service serves the same group, port and check, with
/// the same drain, marked for the same load balancer; and, when ccd asks for
/// outlier detection, ejects alike (a patch cannot take it away, so one ccd
/// no longer asks for is left).
pub(super) fn matches(current: &BackendService, want: &BackendService) -> bool {
    let groups = |b: &BackendService| -> Vec<String> {
        b.backends
            .iter()
            .filter_map(|x| {
                x.group
                    .as_deref()
                    .map(|g| g.split("/projects/").nth(1).unwrap_or(g).to_owned())
            })
            .collect()
    };
    let checks = |b: &BackendService| -> Vec<String> {
        b.health_checks
            .iter()
            .map(|h| name_of(h).to_owned())
            .collect()
    };
    let drain = |b: &BackendService| {
        b.connection_draining
            .as_ref()
            .and_then(|d| d.draining_timeout_sec)
    };
    let owner =
        |b: &BackendService| marker::word(b.description.as_deref(), LB_WORD).map(str::to_owned);
    groups(current) == groups(want)
        && checks(current) == checks(want)
        && current.port_name == want.port_name
        && drain(current) == drain(want)
        && owner(current) == owner(want)
        && (want.outlier_detection.is_none()
            || (outlier_of(current) == outlier_of(want)
                && current.locality_lb_policy == want.locality_lb_policy))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{HealthDefinition, LbBackend, LbKind, Probe};

    fn spec(backends: &[(&str, u32)]) -> LoadBalancerSpec {
        LoadBalancerSpec {
            app: "web".into(),
            name: "web".into(),
            backends: backends
                .iter()
                .map(|(g, w)| LbBackend {
                    group: GroupId {
                        app: "web".into(),
                        name: (*g).into(),
                        zone: None,
                    },
                    weight: *w,
                })
                .collect(),
            port_name: "http".into(),
            health: HealthDefinition {
                probe: Probe::Tcp { port: 8080 },
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(5),
                healthy_threshold: 2,
                unhealthy_threshold: 2,
            },
            drain: Duration::from_secs(30),
            kind: LbKind::Internal { port: 80 },
            labels: BTreeMap::new(),
            retry: None,
            outlier: None,
        }
    }

    fn refusal(backends: &[(&str, u32)]) -> String {
        match validate(&spec(backends)) {
            Err(f) => {
                assert_eq!(
                    (f.kind, f.resource.as_str()),
                    (Kind::Invalid, "load balancer web")
                );
                f.message
            }
            Ok(()) => panic!("{backends:?} was accepted"),
        }
    }

    #[test]
    fn specs_compute_would_refuse_are_refused_with_the_fix() {
        assert!(validate(&spec(&[("web", 1)])).is_ok());
        assert!(validate(&spec(&[("blue", 0), ("green", 1000)])).is_ok());
        assert!(refusal(&[]).contains("at least one group"));
        assert!(refusal(&[("blue", 0), ("green", 0)]).contains("weight above 0"));
        let over = refusal(&[("blue", 1001)]);
        assert!(
            over.contains("blue") && over.contains("0 to 1000"),
            "{over}"
        );
        assert!(refusal(&[("blue", 1), ("blue", 2)]).contains("listed twice"));
        assert!(refusal(&[(&"g".repeat(61), 1)]).contains("shorter group name"));
    }

    #[test]
    fn backend_services_are_found_by_their_marker_or_legacy_name() {
        let named = |name: &str, description: &str| {
            BackendService::new()
                .set_name(name)
                .set_description(description)
        };
        let marked = marker::description("web", &[(LB_WORD, "web")]);
        assert!(belongs_to(&named("web-green-bs", &marked), "web", "web"));
        assert!(!belongs_to(&named("web-green-bs", &marked), "web", "other"));
        assert!(!belongs_to(&named("web-green-bs", &marked), "shop", "web"));
        let old = marker::description("web", &[]);
        assert!(belongs_to(&named("web-bs", &old), "web", "web"));
        assert!(!belongs_to(&named("web-green-bs", &old), "web", "web"));
        assert!(!belongs_to(&named("web-bs", "made by hand"), "web", "web"));
    }

    #[test]
    fn another_balancers_backend_service_is_not_taken_over() {
        let s = spec(&[("web", 1)]);
        let with = |description: String| {
            BackendService::new()
                .set_name("web-bs")
                .set_description(description)
        };
        let ours = with(marker::description("web", &[(LB_WORD, "web")]));
        let at = "global/backendServices/web-bs";
        assert!(check_owner(at, &ours, &s).is_ok());
        assert!(check_owner(at, &with(marker::description("web", &[])), &s).is_ok());
        // Made by hand under the group's name: never taken over.
        let by_hand = check_owner(at, &BackendService::new().set_name("web-bs"), &s);
        assert!(
            by_hand
                .is_err_and(|f| f.kind == Kind::NotOwned && f.message.contains("not made by ccd"))
        );
        for (description, other) in [
            (
                marker::description("web", &[(LB_WORD, "web-2")]),
                "load balancer web-2",
            ),
            (marker::description("shop", &[(LB_WORD, "web")]), "app shop"),
        ] {
            let f = check_owner(at, &with(description), &s)
                .err()
                .map(|f| f.message);
            assert!(f.as_deref().is_some_and(|m| m.contains(other)), "{f:?}");
        }
    }

    #[test]
    fn an_unmarked_service_is_corrected_to_carry_the_marker() {
        let s = spec(&[("web", 1)]);
        let scheme = backend_service::LoadBalancingScheme::InternalManaged;
        let want = desired(&s, "web-bs", scheme.clone(), "hc".into(), "g".into());
        assert!(matches(&want.clone(), &want));
        let old = want
            .clone()
            .set_description(marker::description("web", &[]));
        assert!(!matches(&old, &want));
    }

    fn ejecting() -> OutlierDetection {
        OutlierDetection {
            consecutive_errors: 5,
            consecutive_gateway_failures: 3,
            enforcing_consecutive_errors: 0,
            enforcing_consecutive_gateway_failures: 100,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn outlier_detection_is_written_and_compared() {
        let mut s = spec(&[("web", 1)]);
        s.outlier = Some(ejecting());
        let scheme = backend_service::LoadBalancingScheme::ExternalManaged;
        let want = desired(&s, "web-bs", scheme.clone(), "hc".into(), "g".into());
        let json = serde_json::to_value(&want).unwrap_or_default();
        assert_eq!(
            json["outlierDetection"]["consecutiveGatewayFailure"], 3,
            "{json}"
        );
        assert_eq!(
            json["outlierDetection"]["baseEjectionTime"]["seconds"],
            "30"
        );
        assert_eq!(json["localityLbPolicy"], "ROUND_ROBIN");

        let without = desired(
            &spec(&[("web", 1)]),
            "web-bs",
            scheme.clone(),
            "hc".into(),
            "g".into(),
        );
        assert!(!matches(&without, &want), "added when missing");
        assert!(matches(&want, &without), "left when no longer asked for");
        let mut changed = s.clone();
        changed.outlier = Some(OutlierDetection {
            base_ejection_time: Duration::from_secs(60),
            ..ejecting()
        });
        let changed = desired(&changed, "web-bs", scheme, "hc".into(), "g".into());
        assert!(!matches(&want, &changed), "corrected when changed");
    }

    #[test]
    fn retry_and_outlier_settings_compute_would_refuse_are_refused() {
        use crate::model::{RetryOn, RetryPolicy};
        let mut s = spec(&[("web", 1)]);
        s.retry = Some(RetryPolicy {
            on: vec![RetryOn::GatewayError],
            retries: 0,
            per_try_timeout: Duration::from_secs(5),
        });
        assert!(validate(&s).is_err());
        s.retry = None;
        s.outlier = Some(OutlierDetection {
            max_ejection_percent: 101,
            ..ejecting()
        });
        assert!(validate(&s).is_err());
        s.outlier = Some(ejecting());
        assert!(validate(&s).is_ok());
    }
}
