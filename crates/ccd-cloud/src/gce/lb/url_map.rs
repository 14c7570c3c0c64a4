//! The URL map: where a load balancer's requests go. One backend group:
//! `defaultService`, as it always was. Several: `defaultRouteAction`'s
//! `weightedBackendServices`, each with its group's weight. Compute allows
//! only one of `defaultService` and `defaultRouteAction.weightedBackendServices`,
//! so a change is sent as one `update` (the whole map, fingerprinted): it
//! switches between the two forms, or changes the weights, in one step.
//! That single write is the blue/green switch and each canary step.
//!
//! The retry policy rides in `defaultRouteAction` either way: beside
//! `defaultService` (Compute allows a route action there; it just may not
//! name services too), or beside the weighted services. Global and regional
//! maps take the same shape.

use google_cloud_compute_v1::model::{
    Duration as ApiDuration, HttpRedirectAction, HttpRetryPolicy, HttpRouteAction, UrlMap,
    WeightedBackendService, http_redirect_action,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use crate::gce::GceCloud;
use crate::gce::call::Outcome;
use crate::gce::marker::{self, name_of};
use crate::model::RetryPolicy;

/// Where requests go: backend service links and their weights; and how a
/// failed one is retried.
pub(super) fn desired(
    app: &str,
    name: &str,
    routes: &[(String, u32)],
    retry: Option<&RetryPolicy>,
) -> UrlMap {
    let map = UrlMap::new()
        .set_name(name)
        .set_description(marker::description(app, &[]));
    let action = HttpRouteAction::new().set_or_clear_retry_policy(retry.map(retry_policy));
    match routes {
        [(service, _)] if retry.is_none() => map.set_default_service(service),
        [(service, _)] => map
            .set_default_service(service)
            .set_default_route_action(action),
        _ => map.set_default_route_action(action.set_weighted_backend_services(routes.iter().map(
            |(service, weight)| {
                WeightedBackendService::new()
                    .set_backend_service(service)
                    .set_weight(*weight)
            },
        ))),
    }
}

/// A map that sends every request to HTTPS (301), as Google documents the
/// HTTP-to-HTTPS redirect: no service, a default redirect.
pub(super) fn https_redirect(app: &str, name: &str) -> UrlMap {
    UrlMap::new()
        .set_name(name)
        .set_description(marker::description(app, &[]))
        .set_default_url_redirect(
            HttpRedirectAction::new()
                .set_https_redirect(true)
                .set_redirect_response_code(
                    http_redirect_action::RedirectResponseCode::MovedPermanentlyDefault,
                ),
        )
}

/// The redirect part of a map, as compared: to HTTPS or not, and the code.
fn redirect_of(map: &UrlMap) -> Option<(bool, Option<&str>)> {
    let r = map.default_url_redirect.as_ref()?;
    Some((
        r.https_redirect.unwrap_or(false),
        r.redirect_response_code.as_ref().and_then(|c| c.name()),
    ))
}

fn retry_policy(policy: &RetryPolicy) -> HttpRetryPolicy {
    HttpRetryPolicy::new()
        .set_retry_conditions(policy.on.iter().map(|on| on.as_str()))
        .set_num_retries(policy.retries)
        .set_per_try_timeout(duration(policy.per_try_timeout))
}

/// A Compute `Duration`; `nanos` only when there are any.
pub(super) fn duration(d: std::time::Duration) -> ApiDuration {
    let seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let nanos = i32::try_from(d.subsec_nanos()).unwrap_or_default();
    ApiDuration::new()
        .set_seconds(seconds)
        .set_or_clear_nanos((nanos > 0).then_some(nanos))
}

/// A retry policy as comparable values: sorted conditions, retries (Compute's
/// default 1) and the per-try timeout's seconds and nanos.
type Retry = (Vec<String>, u32, (i64, i32));

fn retry_of(map: &UrlMap) -> Option<Retry> {
    let policy = map.default_route_action.as_ref()?.retry_policy.as_ref()?;
    let mut on = policy.retry_conditions.clone();
    on.sort();
    let timeout = policy
        .per_try_timeout
        .as_ref()
        .map_or((0, 0), |t| (t.seconds.unwrap_or(0), t.nanos.unwrap_or(0)));
    Some((on, policy.num_retries.unwrap_or(1), timeout))
}

/// The routes of a map as names and weights, in its order (`None` and no
/// weighted services when it has no default route ccd could have made).
fn routes_of(map: &UrlMap) -> (Option<&str>, Vec<(&str, u32)>) {
    let weighted = map
        .default_route_action
        .as_ref()
        .map(|a| {
            a.weighted_backend_services
                .iter()
                .map(|w| {
                    (
                        w.backend_service.as_deref().map_or("", name_of),
                        w.weight.unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (map.default_service.as_deref().map(name_of), weighted)
}

/// Whether `current` sends requests where `want` does, with the same
/// weights, and retries them alike.
pub(super) fn matches(current: &UrlMap, want: &UrlMap) -> bool {
    routes_of(current) == routes_of(want)
        && retry_of(current) == retry_of(want)
        && redirect_of(current) == redirect_of(want)
}

impl GceCloud {
    /// Creates the map, or replaces it (one `update`) when its routes differ.
    pub(super) async fn ensure_url_map(
        &self,
        app: &str,
        internal: bool,
        want: UrlMap,
    ) -> Outcome<()> {
        let name = want.name.clone().unwrap_or_default();
        let resource = self.lb_resource(internal, "urlMaps", &name);
        let (p, r) = (self.project(), self.region());
        let current = if internal {
            let get = self.c.rurl_maps.get().set_project(p).set_region(r);
            self.find(&resource, get.set_url_map(&name).send()).await?
        } else {
            let get = self.c.url_maps.get().set_project(p).set_url_map(&name);
            self.find(&resource, get.send()).await?
        };
        if let Some(current) = &current {
            marker::check_owned(&resource, app, current)?;
        }
        let current = match current {
            None if internal => {
                let insert = self.c.rurl_maps.insert().set_project(p).set_region(r);
                return self
                    .create(&resource, idempotent!(insert.set_body(want)))
                    .await;
            }
            None => {
                let insert = self.c.url_maps.insert().set_project(p).set_body(want);
                return self.create(&resource, idempotent!(insert)).await;
            }
            Some(current) if matches(&current, &want) => return Ok(()),
            Some(current) => current,
        };
        let body = want.set_or_clear_fingerprint(current.fingerprint);
        if internal {
            let update = self.c.rurl_maps.update().set_project(p).set_region(r);
            let update = update.set_url_map(&name).set_body(body);
            self.mutate(&resource, idempotent!(update)).await?;
        } else {
            let update = self.c.url_maps.update().set_project(p).set_url_map(&name);
            self.mutate(&resource, idempotent!(update.set_body(body)))
                .await?;
        }
        tracing::info!(resource, "URL map updated: requests go to the new routes");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter()
            .map(|(s, w)| (format!("projects/p/global/backendServices/{s}"), *w))
            .collect()
    }

    #[test]
    fn one_backend_is_the_default_service_several_are_weighted() {
        let one = desired("web", "web-um", &routes(&[("web-bs", 1)]), None);
        assert_eq!(one.default_service.as_deref().map(name_of), Some("web-bs"));
        assert!(one.default_route_action.is_none());

        let two = desired(
            "web",
            "web-um",
            &routes(&[("blue-bs", 0), ("green-bs", 100)]),
            None,
        );
        assert!(
            two.default_service.is_none(),
            "Compute allows only one of the two"
        );
        let json = serde_json::to_value(&two).unwrap_or_default();
        assert_eq!(
            json["defaultRouteAction"]["weightedBackendServices"][0]["weight"], 0,
            "a weight of 0 is sent, not left out: {json}"
        );
        assert_eq!(routes_of(&two).1, [("blue-bs", 0), ("green-bs", 100)]);
    }

    #[test]
    fn a_map_matches_only_with_the_same_routes_and_weights() {
        let blue = desired(
            "web",
            "m",
            &routes(&[("blue-bs", 100), ("green-bs", 0)]),
            None,
        );
        let green = desired(
            "web",
            "m",
            &routes(&[("blue-bs", 0), ("green-bs", 100)]),
            None,
        );
        let only_green = desired("web", "m", &routes(&[("green-bs", 100)]), None);
        assert!(matches(&blue, &blue.clone()));
        assert!(!matches(&blue, &green));
        assert!(!matches(&green, &only_green));
        // Links differ in form between what is sent and what is read back;
        // a lone backend's weight means nothing.
        let read_back = desired("web", "m", &[("green-bs".to_owned(), 7)], None);
        assert!(matches(&read_back, &only_green));
    }

    #[test]
    fn the_retry_policy_sits_beside_one_service_or_the_weighted_ones() {
        use crate::model::RetryOn;
        let retry = RetryPolicy {
            on: vec![RetryOn::GatewayError, RetryOn::ConnectFailure],
            retries: 2,
            per_try_timeout: std::time::Duration::from_millis(2500),
        };
        let one = desired("web", "m", &routes(&[("web-bs", 1)]), Some(&retry));
        let json = serde_json::to_value(&one).unwrap_or_default();
        assert!(json["defaultService"].is_string(), "{json}");
        let policy = &json["defaultRouteAction"]["retryPolicy"];
        assert_eq!(policy["retryConditions"][0], "gateway-error", "{json}");
        assert_eq!(policy["numRetries"], 2);
        assert_eq!(
            policy["perTryTimeout"]["seconds"], "2",
            "int64 travels as a string"
        );
        assert_eq!(policy["perTryTimeout"]["nanos"], 500_000_000);
        let two = desired("web", "m", &routes(&[("a", 1), ("b", 1)]), Some(&retry));
        assert!(retry_of(&two).is_some() && two.default_service.is_none());

        // Compared as a set of conditions; a changed timeout or none differs.
        let mut reordered = retry.clone();
        reordered.on.reverse();
        let same = desired("web", "m", &routes(&[("web-bs", 1)]), Some(&reordered));
        assert!(matches(&one, &same));
        let mut slower = retry.clone();
        slower.per_try_timeout = std::time::Duration::from_secs(5);
        assert!(!matches(
            &one,
            &desired("web", "m", &routes(&[("web-bs", 1)]), Some(&slower))
        ));
        assert!(!matches(
            &one,
            &desired("web", "m", &routes(&[("web-bs", 1)]), None)
        ));
    }
}
