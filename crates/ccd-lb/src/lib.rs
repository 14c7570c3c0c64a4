//! The load balancer data plane of ccd's local cloud.
//!
//! Modelled on Google Cloud's Application Load Balancers, small enough to run on a laptop:
//!
//! - a [`Frontend`] listens on one address (HTTP, or HTTPS with SNI certificates), speaks
//!   HTTP/1.1 and HTTP/2 to clients and proxies each request over pooled HTTP/1.1 connections,
//!   on worker threads of its own (one per core, like nginx's worker processes);
//! - a [`UrlMap`] routes by host and path to [`RouteAction`]s, which may split traffic between
//!   backend services by weight; frontends swap maps atomically while serving;
//! - a [`BackendService`] is a health-checked pool of backends, balanced round-robin or by
//!   least outstanding requests, drained gracefully; [`OutlierDetection`] ejects backends whose
//!   requests keep failing, for a while;
//! - a route's [`RetryPolicy`] sends a failed request again to another backend: after a
//!   connect failure, a reset, a per-try timeout or an error response, as its conditions say,
//!   when the request body was small enough to keep (64 KiB);
//! - a [`ConnectionPolicy`] (the local cloud's firewall) vets every connection to a backend.
//!
//! Request failures become responses: 503 when no backend is healthy, 502 when the backend
//! cannot be reached or fails, 504 when it does not answer in time.
//!
//! ```no_run
//! use std::time::Duration;
//! use ccd_lb::*;
//!
//! # async fn example() -> Result<(), LbError> {
//! let web = BackendService::new(
//!     BackendServiceConfig {
//!         backends: vec![BackendConfig::new("web-1", "127.0.0.1:8081".parse().unwrap())],
//!         ..BackendServiceConfig::new("web")
//!     },
//!     UpstreamNetwork::default(),
//! )?;
//! let certificate = self_signed_certificate(&["app.example.com".to_owned()])?;
//! let frontend = Frontend::bind(
//!     FrontendConfig::https("app", "127.0.0.1:8443".parse().unwrap(), vec![certificate]),
//!     &UrlMap::new(RouteAction::service(web.clone())),
//! )
//! .await?;
//! tracing::info!(health = ?web.health(), stats = ?frontend.stats(), "serving");
//! frontend.shutdown(Duration::from_secs(30)).await;
//! # Ok(())
//! # }
//! ```

mod backend_service;
mod body;
mod error;
mod frontend;
mod health;
mod policy;
mod proxy;
pub mod redirect;
mod request_body;
mod retry;
mod shard;
mod split;
mod stats;
mod tls;
mod upstream;
mod url_map;

pub use crate::backend_service::{
    BackendConfig, BackendHealth, BackendService, BackendServiceConfig, LoadBalancingPolicy,
    OutlierDetection,
};
pub use crate::error::LbError;
pub use crate::frontend::{Frontend, FrontendConfig};
pub use crate::health::{HealthCheck, HealthCheckProtocol, HealthState};
pub use crate::policy::{AllowAll, ConnectionPolicy, UpstreamNetwork};
pub use crate::retry::{RetryCondition, RetryPolicy};
pub use crate::split::{RouteAction, WeightedService};
pub use crate::stats::{BackendStats, FrontendStats};
pub use crate::tls::{CertificatePem, certificate_names, self_signed_certificate};
pub use crate::url_map::{HostRule, PathMatcher, PathRule, UrlMap};
