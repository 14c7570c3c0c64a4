//! ccd's controller machinery, in the manner of Kubernetes operators:
//! level-triggered, keyed by app name.
//!
//! A [`Controller`] watches a [`Source`] (the app specs): a full list fills
//! a [`Cache`], change hints and a periodic relist keep it current, and
//! every key whose object changed is queued. Queued keys are handed to a
//! [`Reconciler`], which converges the world to the object (or cleans up
//! after it, when it is gone) and says what should happen next
//! ([`Action`]). The queue holds each key once at its earliest due time,
//! never runs one key twice at once, backs off per key on errors, and caps
//! how many reconciles run together.
//!
//! A [`RateLimiter`] caps calls to the cloud across all reconciles;
//! [`Metrics`] counts what the controller did, for `/metrics`. [`lease`]
//! elects one leader among controllers sharing a store.
//!
//! Every timer is `tokio::time`, so all of it runs on Tokio's paused test
//! clock.

mod backoff;
mod cache;
mod controller;
pub mod lease;
mod metrics;
mod queue;
mod rate_limit;
mod reflector;
mod source;

pub use backoff::Backoff;
pub use cache::Cache;
pub use controller::{Action, Config, Controller, Reconciler};
pub use metrics::{Metrics, MetricsSnapshot};
pub use queue::Trigger;
pub use rate_limit::{InvalidRateLimit, RateLimiter};
pub use source::{Changes, Source};
