//! The sweep for apps whose spec is gone but whose resources are not: deleted
//! while no controller ran, or left behind with a lost status file. The
//! apps are found by ccd's mark ([`Cloud::owned_apps`]); each such app is
//! queued, and the deploy reconciler removes it after the grace period as
//! it would any deleted spec.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ccd_cloud::Cloud;
use ccd_runtime::{Cache, Trigger};
use tokio_util::sync::CancellationToken;

use crate::source::Desired;

/// How often the sweep looks by default (and once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// Apps ccd made something for that have no spec (`has_spec` false):
/// readable or not, a spec file that exists keeps its app.
pub fn orphans(owned: &BTreeSet<String>, has_spec: impl Fn(&str) -> bool) -> Vec<String> {
    owned.iter().filter(|app| !has_spec(app)).cloned().collect()
}

/// Queues the orphans once the spec cache is complete, then every `every`,
/// until `stop`. A failed look is logged and tried again next time.
pub async fn run<C: Cloud>(
    cloud: Arc<C>,
    specs: Cache<Desired>,
    trigger: Trigger,
    every: Duration,
    stop: CancellationToken,
) {
    // Before the first full list every app would look orphaned.
    tokio::select! {
        () = specs.wait_ready() => {}
        () = stop.cancelled() => return,
    }
    loop {
        match cloud.owned_apps().await {
            Ok(owned) => {
                for app in orphans(&owned, |app| specs.get(app).is_some()) {
                    tracing::info!(
                        app,
                        "resources of an app without a spec: queued for removal"
                    );
                    trigger.push(app);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list what ccd owns; sweeping later"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_with_resources_and_no_spec_are_orphans() {
        let owned: BTreeSet<String> = ["web", "gone", "broken"].map(str::to_owned).into();
        let specs = ["web", "broken"];
        assert_eq!(orphans(&owned, |app| specs.contains(&app)), ["gone"]);
    }
}
