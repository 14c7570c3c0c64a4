//! The URL map: where a load balancer's requests go. One backend group:
//! `defaultService`, as it always was. Several: `defaultRouteAction`'s
//! `weightedBackendServices`, each with its group's weight. Compute allows
//! only one of `defaultService` and `defaultRouteAction.weightedBackendServices`,
//! so a change is sent as one `update` (the whole map, fingerprinted): it
//! switches between the two forms, or changes the weights, in one step.
//! That single write is the blue/green switch and each canary step.

use google_cloud_compute_v1::model::{HttpRouteAction, UrlMap, WeightedBackendService};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use crate::gce::GceCloud;
use crate::gce::call::Outcome;
use crate::gce::marker::{self, name_of};

/// Where requests go: backend service links and their weights.
pub(super) fn desired(app: &str, name: &str, routes: &[(String, u32)]) -> UrlMap {
    let map = UrlMap::new()
        .set_name(name)
        .set_description(marker::description(app, &[]));
    match routes {
        [(service, _)] => map.set_default_service(service),
        _ => map.set_default_route_action(HttpRouteAction::new().set_weighted_backend_services(
            routes.iter().map(|(service, weight)| {
                WeightedBackendService::new()
                    .set_backend_service(service)
                    .set_weight(*weight)
            }),
        )),
    }
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

/// Whether `current` sends requests where `want` does, with the same weights.
pub(super) fn matches(current: &UrlMap, want: &UrlMap) -> bool {
    routes_of(current) == routes_of(want)
}

impl GceCloud {
    /// Creates the map, or replaces it (one `update`) when its routes differ.
    pub(super) async fn ensure_url_map(&self, internal: bool, want: UrlMap) -> Outcome<()> {
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
        let one = desired("web", "web-um", &routes(&[("web-bs", 1)]));
        assert_eq!(one.default_service.as_deref().map(name_of), Some("web-bs"));
        assert!(one.default_route_action.is_none());

        let two = desired(
            "web",
            "web-um",
            &routes(&[("blue-bs", 0), ("green-bs", 100)]),
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
        let blue = desired("web", "m", &routes(&[("blue-bs", 100), ("green-bs", 0)]));
        let green = desired("web", "m", &routes(&[("blue-bs", 0), ("green-bs", 100)]));
        let only_green = desired("web", "m", &routes(&[("green-bs", 100)]));
        assert!(matches(&blue, &blue.clone()));
        assert!(!matches(&blue, &green));
        assert!(!matches(&green, &only_green));
        // Links differ in form between what is sent and what is read back;
        // a lone backend's weight means nothing.
        let read_back = desired("web", "m", &[("green-bs".to_owned(), 7)]);
        assert!(matches(&read_back, &only_green));
    }
}
