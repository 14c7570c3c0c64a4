//! The agent on every instance (`ccd agent`).
//!
//! It reads its configuration from the metadata server ([`metadata`]), runs
//! the app's health check at its interval ([`check`], judged by
//! [`health::Judge`]), samples the app's CPU and memory ([`app`]), and
//! publishes a [`Report`](ccd_bus::messages::Report) every interval and an
//! [`Alert`](ccd_bus::messages::Alert) on every change worth acting on. It
//! restarts the app when a reconciler's
//! [`Command`](ccd_bus::messages::Command) says so. It needs nothing from
//! the app beyond its health check.
//!
//! In the local cloud the app is a process group ([`app::ProcessGroup`]);
//! on Compute Engine, a container.

pub mod agent;
pub mod app;
pub mod check;
pub mod config;
pub mod health;
pub mod metadata;

pub use agent::Agent;
pub use config::{AgentConfig, CheckConfig, METADATA_KEY};
