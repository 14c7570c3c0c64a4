//! The adapter's fence: a controller that does not hold the leader lease
//! (a standby, or a leader past its renew deadline) sends no mutation.

use crate::common;

use ccd_cloud::model::FirewallSpec;
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::FaultConfig;
use ccd_runtime::lease::{Leadership, Role};
use common::{inventory, template};
use tokio::sync::watch;

#[tokio::test]
async fn only_a_leader_within_its_deadline_changes_the_cloud() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let (role, watched) = watch::channel(Role::Standby { leader: None });
    let cloud = cloud.with_fence(Leadership::from_watch(watched));
    let app = "fenced";

    let refused = cloud
        .ensure_template(&template(app, "1"))
        .await
        .unwrap_err();
    assert!(matches!(refused, CloudError::NotLeader { .. }), "{refused}");
    assert!(refused.to_string().contains("leader lease"), "{refused}");
    assert_eq!(cloud.api_calls().mutations, 0);
    assert!(inventory(&local, app).await.is_empty());

    role.send_replace(Role::Leader {
        epoch: 7,
        valid_until: None,
    });
    cloud.ensure_template(&template(app, "1")).await.unwrap();
    let sent = cloud.api_calls().mutations;
    assert!(sent > 0);

    // The deadline passes with no renewal: refused at once, before the
    // elector has said anything.
    role.send_replace(Role::Leader {
        epoch: 7,
        valid_until: Some(tokio::time::Instant::now()),
    });
    let refused = cloud
        .apply_firewall(&FirewallSpec::health_checks(app, 8080))
        .await
        .unwrap_err();
    assert!(matches!(refused, CloudError::NotLeader { .. }), "{refused}");
    assert_eq!(cloud.api_calls().mutations, sent);
    let made = inventory(&local, app).await;
    assert_eq!(made.len(), 1, "only the template: {made:?}");
    common::finish(local).await;
}
