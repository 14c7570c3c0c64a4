//! ccd's controller: reads each app's spec from the store, converges the
//! cloud to it through the [`ccd_cloud::Cloud`] port, and writes what it
//! sees to `status/<app>.yaml`.

mod apply;
mod deploy;
mod plan;
mod report;
mod source;
mod status;

pub use deploy::{DRIFT_CHECK, DeployReconciler, Endpoints, EventSink, ReconcileError};
pub use plan::{LocalTarget, Plan, plan};
pub use source::{Desired, SpecSource, desired};
pub use status::{Condition, InstanceView, LastGood, Phase, Recorded, Status};
