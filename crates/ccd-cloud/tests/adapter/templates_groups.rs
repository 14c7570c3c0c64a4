//! Templates and managed instance groups through the Cloud port, against
//! the local cloud.

use crate::common;

use ccd_cloud::model::{
    InstanceAction, InstanceHealth, InstanceStatus, NamedPort, Share, UpdatePolicy,
};
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::FaultConfig;
use common::{converge, group, per_template, template, version};

#[tokio::test]
async fn templates_are_ensured_once_listed_by_app_and_deleted() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let spec = template("web", "1.0.0");
    let first = cloud.ensure_template(&spec).await.unwrap();
    let again = cloud.ensure_template(&spec).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first, spec.name());
    cloud
        .ensure_template(&template("other", "1.0.0"))
        .await
        .unwrap();

    let listed = cloud.list_templates("web").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, first);
    assert_eq!(listed[0].revision.as_deref(), Some("1.0.0"));
    assert!(listed[0].created.is_some());
    assert_eq!(
        common::inventory(&local, "web-").await["global/instanceTemplates"],
        std::slice::from_ref(&first)
    );

    // A new revision is a new template; the old one stays until deleted.
    let second = cloud
        .ensure_template(&template("web", "1.1.0"))
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(cloud.list_templates("web").await.unwrap().len(), 2);

    cloud.delete_template("web", &first).await.unwrap();
    cloud
        .delete_template("web", &first)
        .await
        .expect("deleting what is gone succeeds");
    let names: Vec<String> = cloud
        .list_templates("web")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, [second]);
    common::finish(local).await;
}

#[tokio::test]
async fn a_group_converges_rolls_out_a_new_version_and_splits_for_a_canary() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    // A group naming a template that does not exist: the error names the template.
    match cloud.apply_group(&group("web", "web-missing", 1)).await {
        Err(CloudError::NotFound { resource }) => {
            assert_eq!(resource, "global/instanceTemplates/web-missing")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let v1 = cloud.ensure_template(&template("web", "1")).await.unwrap();
    let spec = group("web", &v1, 3);
    let id = spec.id();
    assert_eq!(cloud.get_group(&id).await.unwrap(), None);

    cloud.apply_group(&spec).await.unwrap();
    let g = converge(&cloud, &id, "the group runs 3 instances of v1", |g| {
        g.instances.len() == 3
    })
    .await;
    assert_eq!(g.target_size, 3);
    assert_eq!(g.versions, spec.versions);
    assert_eq!(
        g.named_ports,
        [NamedPort {
            name: "http".into(),
            port: 8080
        }]
    );
    for i in &g.instances {
        assert_eq!(i.template.as_deref(), Some(v1.as_str()));
        assert_eq!(
            (i.action.clone(), i.status.clone()),
            (InstanceAction::None, InstanceStatus::Running),
            "{i:?}"
        );
        assert_eq!(
            i.health,
            InstanceHealth::Unknown,
            "no autohealing check: not probed"
        );
        assert!(i.address.is_some_and(|a| a.is_loopback()), "{i:?}");
    }
    // Applying the same spec again changes nothing.
    cloud.apply_group(&spec).await.unwrap();

    // A new version rolls out: every instance is replaced.
    let v2 = cloud.ensure_template(&template("web", "2")).await.unwrap();
    let mut rolled = group("web", &v2, 3);
    rolled.target_size = None;
    cloud.apply_group(&rolled).await.unwrap();
    let g = converge(&cloud, &id, "every instance runs v2", |g| {
        per_template(g).get(&v2) == Some(&3)
    })
    .await;
    assert_eq!(g.instances.len(), 3);
    assert!(
        g.instances
            .iter()
            .all(|i| !g.instances.is_empty() && i.version.as_deref() == Some("stable"))
    );

    // Canary: one instance of v3, the rest stay on v2.
    let v3 = cloud.ensure_template(&template("web", "3")).await.unwrap();
    let mut canary = rolled.clone();
    canary.versions = vec![
        version("stable", &v2, None),
        version("canary", &v3, Some(Share::Fixed(1))),
    ];
    cloud.apply_group(&canary).await.unwrap();
    let g = converge(&cloud, &id, "one canary instance", |g| {
        per_template(g) == [(v2.clone(), 2), (v3.clone(), 1)].into_iter().collect()
    })
    .await;
    assert_eq!(g.versions, canary.versions);

    // A template in use cannot go; one no longer used can.
    match cloud.delete_template("web", &v2).await {
        Err(CloudError::InUse { resource, .. }) => assert!(resource.contains(&v2), "{resource}"),
        other => panic!("expected InUse, got {other:?}"),
    }
    cloud.delete_template("web", &v1).await.unwrap();

    // Resizing keeps the canary at its fixed size; the rest grows.
    cloud.resize_group(&id, 5).await.unwrap();
    let g = converge(&cloud, &id, "five instances", |g| g.instances.len() == 5).await;
    assert_eq!(per_template(&g).get(&v3), Some(&1));

    cloud.delete_group(&id).await.unwrap();
    cloud
        .delete_group(&id)
        .await
        .expect("deleting what is gone succeeds");
    assert_eq!(cloud.get_group(&id).await.unwrap(), None);
    cloud.delete_template("web", &v2).await.unwrap();
    cloud.delete_template("web", &v3).await.unwrap();
    common::eventually("nothing of the app is left", || async {
        common::inventory(&local, "web")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    common::finish(local).await;
}

#[tokio::test]
async fn a_regional_group_spreads_over_its_zones_and_policies_are_corrected() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let v1 = cloud.ensure_template(&template("api", "1")).await.unwrap();
    let mut spec = group("api", &v1, 4);
    spec.zones = vec![
        format!("{}-b", common::REGION),
        format!("{}-c", common::REGION),
    ];
    spec.update = UpdatePolicy {
        max_surge: Share::Fixed(2),
        max_unavailable: Share::Fixed(0),
    };
    let id = spec.id();
    assert_eq!(id.zone, None);
    cloud.apply_group(&spec).await.unwrap();
    let g = converge(&cloud, &id, "four instances over two zones", |g| {
        g.instances.len() == 4
    })
    .await;
    assert!(g.instances.iter().all(|i| i.address.is_some()), "{g:?}");

    // Two writers at once: the one whose fingerprint went stale re-reads and
    // retries, and both calls succeed.
    let mut a = spec.clone();
    a.update.max_surge = Share::Fixed(3);
    let mut b = spec.clone();
    b.update.max_surge = Share::Fixed(4);
    let (ra, rb) = tokio::join!(cloud.apply_group(&a), cloud.apply_group(&b));
    ra.unwrap();
    rb.unwrap();
    cloud.apply_group(&spec).await.unwrap();
    cloud.delete_group(&id).await.unwrap();
    common::finish(local).await;
}

#[tokio::test]
async fn recreated_instances_keep_their_names_and_get_new_ids() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let tpl = cloud.ensure_template(&template("heal", "1")).await.unwrap();
    let spec = group("heal", &tpl, 2);
    cloud.apply_group(&spec).await.unwrap();
    converge(&cloud, &spec.id(), "two instances", |g| {
        g.instances.len() == 2
    })
    .await;
    let before = cloud.group_members(&spec.id()).await.unwrap().unwrap();
    assert!(
        before.iter().all(|m| m.id.is_some() && m.zone.is_some()),
        "{before:?}"
    );
    cloud
        .recreate_instances(&spec.id(), &before[..1])
        .await
        .unwrap();
    let after = common::eventually("the first instance recreated", || async {
        let members = cloud.group_members(&spec.id()).await.ok()??;
        let first = members.iter().find(|m| m.name == before[0].name)?;
        (first.id.is_some() && first.id != before[0].id && first.action == InstanceAction::None)
            .then_some(members)
    })
    .await;
    let second = after.iter().find(|m| m.name == before[1].name).unwrap();
    assert_eq!(second.id, before[1].id, "the other one untouched");
    assert_eq!(after.len(), 2);
    // Read-only: refused, naming what it would do.
    let refused = cloud
        .read_only()
        .recreate_instances(&spec.id(), &before[1..])
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CloudError::WouldChange { .. })
            && refused.to_string().contains(&before[1].name),
        "{refused}"
    );
    common::finish(local).await;
}
