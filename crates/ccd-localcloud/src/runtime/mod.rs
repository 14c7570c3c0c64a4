//! What makes the local cloud real: the group controller, processes,
//! health probes and load balancers, all converging on the store.

pub mod firewall;
pub mod groups;
pub mod health;
pub mod instances;
pub mod lb;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::cloud::Cloud;

/// How often everything is looked at even without a change: health changes
/// and time-based rules (initial delays) do not show up as store changes.
const RESYNC: Duration = Duration::from_millis(500);

/// Runs the controllers until `stop` is cancelled.
pub async fn run(cloud: Arc<Cloud>, instances: instances::Instances, stop: CancellationToken) {
    let lb = cloud.balancers.clone();
    let mut changes = cloud.store.subscribe();
    let mut tick = tokio::time::interval(RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty_groups: BTreeSet<String> = BTreeSet::new();
    let mut full = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => full = true,
            // A group waits on its instances' health (to continue a rolling
            // update, to autoheal): act on a change at once, not at the tick,
            // and only for the groups concerned (a full pass per change made
            // 1,000 groups' start quadratic).
            () = cloud.health.changed() => dirty_groups.extend(cloud.health.take_changed()),
            change = changes.recv() => match change {
                Ok(c) => {
                    if let Some(group) = group_of(&c.key) {
                        dirty_groups.insert(group);
                    }
                    // Let a burst of changes settle into one pass.
                    while let Ok(c) = changes.try_recv() {
                        if let Some(group) = group_of(&c.key) {
                            dirty_groups.insert(group);
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => full = true,
                Err(RecvError::Closed) => break,
            },
        }
        if full {
            dirty_groups.extend(
                cloud
                    .store
                    .keys("projects/", |k| k.contains("/instanceGroupManagers/")),
            );
            dirty_groups.extend(
                cloud
                    .store
                    .keys("ccd/managed/", |_| true)
                    .iter()
                    .filter_map(|k| group_of(k)),
            );
        }
        for group in std::mem::take(&mut dirty_groups) {
            groups::reconcile(&cloud, &cloud.health, &group);
        }
        instances.reconcile(&cloud).await;
        cloud.health.probe_due(&cloud);
        lb.reconcile(&cloud).await;
        full = false;
    }
    instances.shutdown().await;
    lb.shutdown().await;
}

/// The managed group a changed key concerns, if any.
fn group_of(key: &str) -> Option<String> {
    if let Some(rest) = key.strip_prefix("ccd/managed/") {
        return rest.rsplit_once('/').map(|(g, _)| g.to_owned());
    }
    let (scope, name) = key.split_once("/instanceGroupManagers/")?;
    (!name.contains('/')).then(|| format!("{scope}/instanceGroupManagers/{name}"))
}
