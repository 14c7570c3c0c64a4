//! Several controllers on one store: only the leader acts, it stamps its
//! epoch on the status, and a deposed one does not overwrite its successor;
//! a controller of another region leaves the app and its status alone.

use ccd_runtime::lease::{Leadership, Role};
use tokio::sync::watch;

use std::sync::Arc;

use super::*;
use crate::testing::FakeCloud;

fn leader(epoch: u64) -> (watch::Sender<Role>, Leadership) {
    let (tx, rx) = watch::channel(Role::Leader {
        epoch,
        valid_until: None,
    });
    (tx, Leadership::from_watch(rx))
}

#[tokio::test(start_paused = true)]
async fn a_standby_changes_nothing_and_writes_no_status() {
    let (tx, rx) = watch::channel(Role::Standby {
        leader: Some("other".into()),
    });
    let h = Harness::new(&spec("1", ROLLING)).with_leadership(Leadership::from_watch(rx));
    for _ in 0..5 {
        h.pass().await;
    }
    assert_eq!(h.cloud.mutations(), 0);
    assert!(h.store.status.lock().unwrap().is_empty());
    // Once it leads, the same passes deploy.
    tx.send_replace(Role::Leader {
        epoch: 3,
        valid_until: None,
    });
    h.until("version 1 to be Ready", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    assert_eq!(h.status().leader_epoch, 3);
}

#[tokio::test(start_paused = true)]
async fn a_leader_past_its_renew_deadline_stops_mid_rollout() {
    let (tx, leadership) = leader(4);
    let mut h = Harness::new(&spec("1", ROLLING)).with_leadership(leadership);
    h.until("version 1 to be Ready", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    h.set_spec(&spec("2", ROLLING));
    h.pass().await;
    // The lease lapses: the deadline passes without a renewal.
    tx.send_replace(Role::Leader {
        epoch: 4,
        valid_until: Some(tokio::time::Instant::now()),
    });
    let before = (h.cloud.mutations(), h.status());
    h.run_for(MINUTE).await;
    assert_eq!(
        h.cloud.mutations(),
        before.0,
        "no cloud change after the deadline"
    );
    assert_eq!(h.status(), before.1, "no status write after the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_deposed_leader_does_not_overwrite_its_successors_status() {
    let (_tx, old) = leader(5);
    let mut h = Harness::new(&spec("1", ROLLING)).with_leadership(old);
    h.until("version 1 to be Ready", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    // A successor with a later epoch writes the status...
    let mut theirs = h.status();
    theirs.leader_epoch = 9;
    h.store
        .status
        .lock()
        .unwrap()
        .insert("web".into(), theirs.to_yaml().into_bytes());
    // ...while the old one, not yet aware, goes on with a new spec.
    h.set_spec(&spec("2", ROLLING));
    for _ in 0..3 {
        h.pass().await;
    }
    assert_eq!(h.status(), theirs, "the successor's status stands");
}

#[tokio::test(start_paused = true)]
async fn a_controller_of_another_region_leaves_the_app_and_its_status_alone() {
    let h = ready(ROLLING).await;
    let ours = h.status();
    assert_eq!(ours.controller_region, "europe-west1");
    let other = h.beside(Arc::new(FakeCloud::in_region("us-east1")));
    for _ in 0..3 {
        other.pass().await;
    }
    assert_eq!(other.cloud.mutations(), 0);
    assert_eq!(h.status(), ours, "the other region wrote no status");
    // Nor does it remove the app when the spec goes.
    for _ in 0..3 {
        other.removing_pass().await;
        tokio::time::advance(MINUTE).await;
    }
    assert_eq!(h.status(), ours);
}

#[tokio::test(start_paused = true)]
async fn a_spec_for_no_controllers_region_says_so_without_claiming_the_app() {
    // Only a us-east1 controller runs; the spec asks for europe-west1.
    let h = Harness::new(&spec("1", ROLLING));
    let other = h.beside(Arc::new(FakeCloud::in_region("us-east1")));
    other.pass().await;
    let stalled = h.status();
    assert_eq!(stalled.phase, Phase::Stalled, "{stalled:?}");
    assert_eq!(stalled.controller_region, "", "not claimed");
    // europe-west1's controller, once it runs, takes the app.
    h.until("version 1 to be Ready", MINUTE, |s| s.phase == Phase::Ready)
        .await;
    assert_eq!(h.status().controller_region, "europe-west1");
    other.pass().await;
    assert_eq!(h.status().phase, Phase::Ready);
}
