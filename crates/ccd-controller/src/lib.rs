//! ccd's controller: reads each app's spec from the store, converges the
//! cloud to it through the [`ccd_cloud::Cloud`] port, and writes what it
//! sees to `status/<app>.yaml`.

mod deploy;
mod plan;
mod source;
mod status;

pub use deploy::{DeployReconciler, Endpoints, EventSink, ReconcileError};
pub use plan::{LocalTarget, Plan, plan};
pub use source::{Desired, SpecSource, desired};
pub use status::{Condition, InstanceView, Phase, Status};
