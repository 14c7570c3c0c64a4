//! ccd-cloud's adapter against the local cloud, every suite in one test
//! binary: each binary instantiates the Compute SDK's generic code anew,
//! and eleven of them cost twenty minutes of compiler time on 2 cores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod processes;

mod faults;
mod fence;
mod instance_health;
mod lb_backend_services;
mod lb_resilience;
mod lb_traffic;
mod load_balancers;
mod ownership;
mod rollout_traffic;
mod template_secrets;
mod templates_groups;
