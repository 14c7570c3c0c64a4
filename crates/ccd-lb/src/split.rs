//! Weighted choice among backend services (GCE's `weightedBackendServices`), used for canaries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend_service::BackendService;
use crate::retry::RetryPolicy;

/// A backend service and its share of the traffic of a route.
#[derive(Debug, Clone)]
pub struct WeightedService {
    /// Where the traffic goes.
    pub service: BackendService,
    /// Relative share; GCE allows 0..=1000. At least one service of a route needs weight > 0.
    pub weight: u32,
}

/// Where a route sends its requests: one backend service, or several split by weight; and
/// how it retries them.
#[derive(Debug, Clone)]
pub struct RouteAction {
    /// The services and their weights.
    pub weighted_services: Vec<WeightedService>,
    /// How failed requests are retried within the service picked; `None`: a request that
    /// could not be sent is tried once more on another backend, nothing else is retried.
    pub retry_policy: Option<RetryPolicy>,
}

impl RouteAction {
    /// All traffic to one service.
    pub fn service(service: BackendService) -> Self {
        Self {
            weighted_services: vec![WeightedService { service, weight: 1 }],
            retry_policy: None,
        }
    }

    /// Traffic split among services in proportion to their weights.
    pub fn weighted(services: impl IntoIterator<Item = (BackendService, u32)>) -> Self {
        Self {
            weighted_services: services
                .into_iter()
                .map(|(service, weight)| WeightedService { service, weight })
                .collect(),
            retry_policy: None,
        }
    }

    /// The same route, retrying as `policy` says.
    pub fn with_retry_policy(self, policy: RetryPolicy) -> Self {
        Self {
            retry_policy: Some(policy),
            ..self
        }
    }
}

/// A compiled [`RouteAction`]: picks a service per request.
#[derive(Debug)]
pub(crate) struct ServiceSplit {
    services: Box<[BackendService]>,
    /// Running sums of the weights; service `i` owns `[cumulative[i-1], cumulative[i])`.
    cumulative: Box<[u64]>,
    total: u64,
    picks: AtomicU64,
    /// Shared with the requests under way, which may outlive this split.
    retry_policy: Option<Arc<RetryPolicy>>,
}

impl ServiceSplit {
    pub(crate) fn new(action: &RouteAction) -> Result<Self, String> {
        let mut services = Vec::with_capacity(action.weighted_services.len());
        let mut cumulative = Vec::with_capacity(action.weighted_services.len());
        let mut total = 0u64;
        for weighted in &action.weighted_services {
            if weighted.weight > 1000 {
                return Err(format!(
                    "weight {} of backend service {} exceeds 1000",
                    weighted.weight,
                    weighted.service.name()
                ));
            }
            if weighted.weight == 0 {
                continue;
            }
            total += u64::from(weighted.weight);
            services.push(weighted.service.clone());
            cumulative.push(total);
        }
        if total == 0 {
            return Err("a route needs at least one backend service with weight > 0".to_owned());
        }
        if let Some(policy) = &action.retry_policy {
            policy.validate()?;
        }
        Ok(Self {
            services: services.into_boxed_slice(),
            cumulative: cumulative.into_boxed_slice(),
            total,
            picks: AtomicU64::new(0),
            retry_policy: action.retry_policy.clone().map(Arc::new),
        })
    }

    pub(crate) fn retry_policy(&self) -> Option<&Arc<RetryPolicy>> {
        self.retry_policy.as_ref()
    }

    /// The service for the next request.
    pub(crate) fn pick(&self) -> &BackendService {
        if let [only] = &*self.services {
            return only;
        }
        // A counter scrambled by a bijective mixer: deterministic, lock-free, exact shares
        // over many requests, and without the long runs a plain counter modulo total gives.
        let ticket = splitmix64(self.picks.fetch_add(1, Ordering::Relaxed)) % self.total;
        let index = self.cumulative.partition_point(|&bound| bound <= ticket);
        &self.services[index.min(self.services.len() - 1)]
    }

    #[cfg(test)]
    pub(crate) fn services(&self) -> &[BackendService] {
        &self.services
    }
}

pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend_service::tests::idle_service;

    #[tokio::test]
    async fn splits_picks_in_proportion_to_weights() {
        let stable = idle_service("stable");
        let canary = idle_service("canary");
        let split = ServiceSplit::new(&RouteAction::weighted([
            (stable.clone(), 90),
            (canary.clone(), 10),
        ]))
        .unwrap();
        let picks = 20_000;
        let canary_picks = (0..picks)
            .filter(|_| split.pick().name() == "canary")
            .count();
        let share = canary_picks as f64 / picks as f64;
        assert!((0.08..=0.12).contains(&share), "canary share {share}");
    }

    #[tokio::test]
    async fn zero_weight_service_gets_nothing() {
        let a = idle_service("a");
        let b = idle_service("b");
        let split = ServiceSplit::new(&RouteAction::weighted([(a, 0), (b, 5)])).unwrap();
        assert!((0..1000).all(|_| split.pick().name() == "b"));
        assert_eq!(split.services().len(), 1);
    }

    #[tokio::test]
    async fn rejects_routes_without_weight() {
        let a = idle_service("a");
        assert!(ServiceSplit::new(&RouteAction::weighted([(a.clone(), 0)])).is_err());
        assert!(ServiceSplit::new(&RouteAction::weighted([(a, 1001)])).is_err());
        assert!(ServiceSplit::new(&RouteAction::weighted([])).is_err());
    }

    #[tokio::test]
    async fn short_runs_interleave_services() {
        let a = idle_service("a");
        let b = idle_service("b");
        let split = ServiceSplit::new(&RouteAction::weighted([(a, 1), (b, 1)])).unwrap();
        let first_hundred: Vec<_> = (0..100).map(|_| split.pick().name().to_owned()).collect();
        let a_count = first_hundred.iter().filter(|name| *name == "a").count();
        assert!((30..=70).contains(&a_count), "a got {a_count} of 100");
    }
}
