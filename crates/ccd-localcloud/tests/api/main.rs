//! The local cloud through its API and Google's SDK, every suite in one
//! test binary: each binary instantiates the Compute SDK's generic code
//! anew, which costs minutes of compiler time per binary on 2 cores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

mod api_guard;
mod hostile_requests;
mod instance_secrets;
mod lb_https_redirect;
mod lb_resilience;
mod sdk_errors;
mod sdk_iam;
mod sdk_load_balancing;
mod sdk_operations;
mod sdk_templates_groups;
