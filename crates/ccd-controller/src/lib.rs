//! ccd's controller: reads each app's spec from the store, converges the
//! cloud to it through the [`ccd_cloud::Cloud`] port, and writes what it
//! sees to `status/<app>.yaml`.
//!
//! A pass observes, then [`decide`]s (a pure function of what it observed,
//! what the status recorded, the spec and the time), then applies the
//! [`shape`] the new status projects. Rollouts (rolling, blue/green,
//! canary) are records in the status that the decision moves step by step.

mod apply;
pub mod control;
pub mod decide;
mod deploy;
pub mod heal;
pub mod heard;
pub mod lease;
mod observe;
mod plan;
pub mod preview;
pub mod probes;
pub mod record;
mod report;
pub mod scale;
pub mod shape;
mod source;
pub mod status;
pub mod steps;
pub mod sweep;
#[cfg(test)]
mod testing;

pub use deploy::{
    DELETION_GRACE, DRIFT_CHECK, DeployReconciler, Endpoints, EventSink, ReconcileError,
};
pub use plan::{LocalTarget, PORT_NAME, Plan, plan};
pub use source::{Desired, Origin, ParseCount, SourceError, SpecSource, desired};
pub use status::{Condition, GroupRecord, GroupRole, InstanceView, LastGood, Phase, Status};
