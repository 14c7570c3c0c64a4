//! Instance templates, managed instance groups (zonal and regional) and
//! instance groups, through Google's official Rust SDK only.

use crate::common;

use std::collections::BTreeMap;

use common::{PROJECT, REGION, ZONE, assert_error, done, eventually, name_of, simulated_template};
use google_cloud_compute_v1::client::{
    InstanceGroupManagers, InstanceGroups, InstanceTemplates, Instances,
    RegionInstanceGroupManagers,
};
use google_cloud_compute_v1::model::{self, managed_instance::CurrentAction};
use google_cloud_gax::paginator::ItemPaginator as _;

/// Inserts a simulated template and returns its selfLink.
async fn template(templates: &InstanceTemplates, name: &str) -> String {
    done(
        templates
            .insert()
            .set_project(PROJECT)
            .set_body(simulated_template(name))
            .poller(),
    )
    .await;
    let t = templates
        .get()
        .set_project(PROJECT)
        .set_instance_template(name)
        .send()
        .await
        .unwrap();
    t.self_link.expect("a template has a selfLink")
}

fn group(name: &str, template: &str, size: i32) -> model::InstanceGroupManager {
    model::InstanceGroupManager::new()
        .set_name(name)
        .set_base_instance_name(name)
        .set_instance_template(template)
        .set_target_size(size)
}

async fn insert_group(igm: &InstanceGroupManagers, body: model::InstanceGroupManager) {
    done(
        igm.insert()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_body(body)
            .poller(),
    )
    .await;
}

fn converged(g: &model::InstanceGroupManager) -> bool {
    g.status.as_ref().is_some_and(|s| {
        s.is_stable == Some(true)
            && s.version_target.as_ref().and_then(|v| v.is_reached) == Some(true)
    })
}

async fn get_group(igm: &InstanceGroupManagers, name: &str) -> model::InstanceGroupManager {
    igm.get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group_manager(name)
        .send()
        .await
        .unwrap()
}

async fn managed(igm: &InstanceGroupManagers, name: &str) -> Vec<model::ManagedInstance> {
    let mut items = igm
        .list_managed_instances()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group_manager(name)
        .by_item();
    let mut out = Vec::new();
    while let Some(mi) = items.next().await.transpose().unwrap() {
        out.push(mi);
    }
    out
}

/// Polls the group until it is stable with its version target reached, as a
/// controller does, and returns it with its managed instances.
async fn wait_converged(
    igm: &InstanceGroupManagers,
    name: &str,
) -> (model::InstanceGroupManager, Vec<model::ManagedInstance>) {
    eventually(
        &format!("group {name} is stable on its versions"),
        || async {
            let g = get_group(igm, name).await;
            converged(&g).then_some(g)
        },
    )
    .await;
    let g = get_group(igm, name).await;
    let members = managed(igm, name).await;
    (g, members)
}

/// Asserts what a settled group shows: `size` instances, all with nothing to do.
fn assert_settled(members: &[model::ManagedInstance], size: usize) {
    assert_eq!(members.len(), size, "{members:#?}");
    for mi in members {
        assert_eq!(mi.current_action, Some(CurrentAction::None), "{mi:#?}");
        assert_eq!(
            mi.instance_status,
            Some(model::managed_instance::InstanceStatus::Running),
            "{mi:#?}"
        );
        assert!(
            mi.instance
                .as_deref()
                .is_some_and(|i| i.contains(&format!("/zones/{ZONE}/instances/"))),
            "{mi:#?}"
        );
        assert!(mi.id.is_some(), "{mi:#?}");
    }
}

fn templates_of(members: &[model::ManagedInstance]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for mi in members {
        let t = mi
            .version
            .as_ref()
            .and_then(|v| v.instance_template.clone())
            .unwrap_or_default();
        *out.entry(name_of(&t).to_owned()).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn instance_templates_insert_get_list_delete() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);

    let op = done(
        templates
            .insert()
            .set_project(PROJECT)
            .set_body(simulated_template("web-v1"))
            .poller(),
    )
    .await;
    assert_eq!(op.operation_type.as_deref(), Some("insert"));
    assert!(
        op.target_link
            .as_deref()
            .is_some_and(|l| l.ends_with("/global/instanceTemplates/web-v1")),
        "{op:?}"
    );

    let t = templates
        .get()
        .set_project(PROJECT)
        .set_instance_template("web-v1")
        .send()
        .await
        .unwrap();
    assert_eq!(t.name.as_deref(), Some("web-v1"));
    assert!(t.id.is_some() && t.creation_timestamp.is_some());
    assert_eq!(
        op.target_id, t.id,
        "the operation names the template it made"
    );
    assert!(t.self_link.as_deref().is_some_and(|l| l.ends_with(&format!(
        "projects/{PROJECT}/global/instanceTemplates/web-v1"
    ))));
    let props = t.properties.expect("properties are kept");
    assert_eq!(props.machine_type.as_deref(), Some("e2-small"));
    assert_eq!(props.tags.map(|t| t.items), Some(vec!["web".to_owned()]));
    let items = props.metadata.map(|m| m.items).unwrap_or_default();
    assert!(
        items
            .iter()
            .any(|i| i.key.as_deref() == Some(ccd_localcloud::LOCAL_RUN_METADATA_KEY))
    );

    template(&templates, "web-v2").await;
    let mut names = Vec::new();
    let mut list = templates.list().set_project(PROJECT).by_item();
    while let Some(t) = list.next().await.transpose().unwrap() {
        names.push(t.name.unwrap());
    }
    assert_eq!(names, ["web-v1", "web-v2"]);

    // Templates are immutable and names unique: a second insert is 409 alreadyExists.
    let again = templates
        .insert()
        .set_project(PROJECT)
        .set_body(simulated_template("web-v1"))
        .send()
        .await;
    assert_error(again, 409, "alreadyExists");
    assert_error(
        templates
            .get()
            .set_project(PROJECT)
            .set_instance_template("nope")
            .send()
            .await,
        404,
        "notFound",
    );

    done(
        templates
            .delete()
            .set_project(PROJECT)
            .set_instance_template("web-v1")
            .poller(),
    )
    .await;
    assert_error(
        templates
            .get()
            .set_project(PROJECT)
            .set_instance_template("web-v1")
            .send()
            .await,
        404,
        "notFound",
    );
    assert_error(
        templates
            .delete()
            .set_project(PROJECT)
            .set_instance_template("web-v1")
            .send()
            .await,
        404,
        "notFound",
    );
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_template_used_by_a_group_cannot_be_deleted() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let link = template(&templates, "tpl").await;
    insert_group(&igm, group("web", &link, 1)).await;

    let refused = templates
        .delete()
        .set_project(PROJECT)
        .set_instance_template("tpl")
        .send()
        .await;
    assert_error(refused, 400, "resourceInUseByAnotherResource");
    templates
        .get()
        .set_project(PROJECT)
        .set_instance_template("tpl")
        .send()
        .await
        .expect("still there");

    done(
        igm.delete()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .poller(),
    )
    .await;
    done(
        templates
            .delete()
            .set_project(PROJECT)
            .set_instance_template("tpl")
            .poller(),
    )
    .await;
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_zonal_group_converges_and_resizes() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let groups = client!(InstanceGroups, cloud);
    let link = template(&templates, "tpl").await;

    // A partial reference is accepted and stored as a full URL.
    let op = done(
        igm.insert()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_body(group("web", "global/instanceTemplates/tpl", 3))
            .poller(),
    )
    .await;
    assert!(
        op.zone
            .as_deref()
            .is_some_and(|z| z.ends_with(&format!("/zones/{ZONE}"))),
        "{op:?}"
    );
    let (g, members) = wait_converged(&igm, "web").await;
    assert_settled(&members, 3);
    assert_eq!(g.target_size, Some(3));
    assert_eq!(g.instance_template.as_deref(), Some(link.as_str()));
    assert!(g.fingerprint.is_some());
    assert!(
        g.zone
            .as_deref()
            .is_some_and(|z| z.ends_with(&format!("/zones/{ZONE}")))
    );
    for mi in &members {
        assert_eq!(
            mi.version
                .as_ref()
                .and_then(|v| v.instance_template.as_deref()),
            Some(link.as_str())
        );
        assert!(
            mi.name.as_deref().is_some_and(|n| n.starts_with("web-")),
            "{mi:?}"
        );
    }
    let actions = g.current_actions.expect("currentActions");
    assert_eq!(
        (actions.none, actions.creating, actions.deleting),
        (Some(3), Some(0), Some(0))
    );

    // The group's instance group is a real resource: a backend's `group`.
    let ig_link = g.instance_group.expect("instanceGroup");
    assert!(
        ig_link.ends_with(&format!("/zones/{ZONE}/instanceGroups/web")),
        "{ig_link}"
    );
    let ig = groups
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (ig.size, ig.self_link.as_deref()),
        (Some(3), Some(ig_link.as_str()))
    );

    // Instances made by the group are readable as instances.
    let instances = client!(Instances, cloud);
    let first = members[0].name.clone().unwrap();
    let vm = instances
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(vm.status, Some(model::instance::Status::Running));
    assert_eq!(vm.id, members[0].id);

    let op = done(
        igm.resize()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_size(5)
            .poller(),
    )
    .await;
    assert!(
        op.target_link
            .as_deref()
            .is_some_and(|l| l.ends_with("/instanceGroupManagers/web"))
    );
    let (g, members) = wait_converged(&igm, "web").await;
    assert_eq!(g.target_size, Some(5));
    assert_settled(&members, 5);

    done(
        igm.resize()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_size(2)
            .poller(),
    )
    .await;
    let (g, members) = wait_converged(&igm, "web").await;
    assert_eq!(g.target_size, Some(2));
    assert_settled(&members, 2);
    let ig = groups
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group("web")
        .send()
        .await
        .unwrap();
    assert_eq!(ig.size, Some(2));

    // Deleting the group deletes its instances and its instance group.
    done(
        igm.delete()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .poller(),
    )
    .await;
    assert_error(
        groups
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group("web")
            .send()
            .await,
        404,
        "notFound",
    );
    let gone = members[0].name.clone().unwrap();
    eventually("the group's instances are deleted", || async {
        let r = instances
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance(&gone)
            .send()
            .await;
        r.err().filter(|e| e.http_status_code() == Some(404))
    })
    .await;
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_rolling_update_moves_every_instance_to_the_new_template() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let v1 = template(&templates, "tpl-v1").await;
    let v2 = template(&templates, "tpl-v2").await;
    insert_group(&igm, group("web", &v1, 3)).await;
    let (g, before) = wait_converged(&igm, "web").await;
    assert_eq!(
        templates_of(&before),
        BTreeMap::from([("tpl-v1".to_owned(), 3)])
    );

    let patch = model::InstanceGroupManager::new()
        .set_versions([model::InstanceGroupManagerVersion::new()
            .set_name("v2")
            .set_instance_template(&v2)])
        .set_update_policy(
            model::InstanceGroupManagerUpdatePolicy::new()
                .set_type(model::instance_group_manager_update_policy::Type::Proactive)
                .set_minimal_action(
                    model::instance_group_manager_update_policy::MinimalAction::Replace,
                )
                .set_max_surge(model::FixedOrPercent::new().set_fixed(1))
                .set_max_unavailable(model::FixedOrPercent::new().set_fixed(0)),
        )
        .set_or_clear_fingerprint(g.fingerprint.clone());
    done(
        igm.patch()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(patch)
            .set_request_id(common::request_id())
            .poller(),
    )
    .await;
    let g = get_group(&igm, "web").await;
    assert_eq!(g.versions.len(), 1);
    assert_eq!(
        g.versions[0].instance_template.as_deref(),
        Some(v2.as_str())
    );
    assert_ne!(g.fingerprint, None);
    let policy = g.update_policy.expect("updatePolicy");
    assert_eq!(policy.max_surge.and_then(|s| s.fixed), Some(1));

    let (g, after) = wait_converged(&igm, "web").await;
    assert_eq!(g.target_size, Some(3));
    assert_settled(&after, 3);
    assert_eq!(
        templates_of(&after),
        BTreeMap::from([("tpl-v2".to_owned(), 3)])
    );
    assert!(
        after
            .iter()
            .all(|mi| mi.version.as_ref().and_then(|v| v.name.as_deref()) == Some("v2"))
    );
    // The old instances were replaced (SUBSTITUTE: new names), not kept.
    let old: Vec<_> = before.iter().map(|mi| mi.name.clone()).collect();
    assert!(
        after.iter().all(|mi| !old.contains(&mi.name)),
        "{old:?} {after:#?}"
    );
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_canary_with_a_percent_version_ends_with_the_right_split() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let stable = template(&templates, "tpl-stable").await;
    let canary = template(&templates, "tpl-canary").await;
    insert_group(&igm, group("web", &stable, 4)).await;
    let (g, _) = wait_converged(&igm, "web").await;

    let patch = model::InstanceGroupManager::new()
        .set_versions([
            model::InstanceGroupManagerVersion::new()
                .set_name("stable")
                .set_instance_template(&stable),
            model::InstanceGroupManagerVersion::new()
                .set_name("canary")
                .set_instance_template(&canary)
                .set_target_size(model::FixedOrPercent::new().set_percent(50)),
        ])
        .set_or_clear_fingerprint(g.fingerprint);
    done(
        igm.patch()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(patch)
            .poller(),
    )
    .await;

    let (g, members) = wait_converged(&igm, "web").await;
    assert_settled(&members, 4);
    assert_eq!(
        templates_of(&members),
        BTreeMap::from([("tpl-canary".to_owned(), 2), ("tpl-stable".to_owned(), 2)])
    );
    let by_version: Vec<_> = members
        .iter()
        .filter_map(|mi| mi.version.as_ref().and_then(|v| v.name.clone()))
        .collect();
    assert_eq!(
        by_version.iter().filter(|n| *n == "canary").count(),
        2,
        "{members:#?}"
    );
    let canary_version = g
        .versions
        .iter()
        .find(|v| v.name.as_deref() == Some("canary"))
        .expect("the canary version");
    let size = canary_version.target_size.as_ref().expect("targetSize");
    assert_eq!((size.percent, size.calculated), (Some(50), Some(2)));
    common::finish(cloud).await;
}

#[tokio::test]
async fn delete_and_abandon_instances_reduce_the_target_size() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let instances = client!(Instances, cloud);
    let link = template(&templates, "tpl").await;
    insert_group(&igm, group("web", &link, 4)).await;
    let (_, members) = wait_converged(&igm, "web").await;
    let deleted = members[0].clone();
    let abandoned = members[1].clone();

    let body = model::InstanceGroupManagersDeleteInstancesRequest::new()
        .set_instances([deleted.instance.clone().unwrap()]);
    done(
        igm.delete_instances()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(body)
            .poller(),
    )
    .await;
    assert_eq!(get_group(&igm, "web").await.target_size, Some(3));

    let body = model::InstanceGroupManagersAbandonInstancesRequest::new()
        .set_instances([abandoned.instance.clone().unwrap()]);
    done(
        igm.abandon_instances()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(body)
            .poller(),
    )
    .await;
    let (g, after) = wait_converged(&igm, "web").await;
    assert_eq!(g.target_size, Some(2));
    assert_settled(&after, 2);
    let names: Vec<_> = after.iter().filter_map(|m| m.name.clone()).collect();
    assert!(
        !names.contains(deleted.name.as_ref().unwrap())
            && !names.contains(abandoned.name.as_ref().unwrap())
    );

    // The deleted instance is gone; the abandoned one lives on outside the group.
    let deleted_name = deleted.name.unwrap();
    eventually("the deleted instance is gone", || async {
        let r = instances
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance(&deleted_name)
            .send()
            .await;
        r.err().filter(|e| e.http_status_code() == Some(404))
    })
    .await;
    let kept = instances
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance(abandoned.name.unwrap())
        .send()
        .await;
    assert_eq!(kept.unwrap().id, abandoned.id);

    // An instance that is not a member is refused, the group untouched.
    let body = model::InstanceGroupManagersDeleteInstancesRequest::new()
        .set_instances([format!("zones/{ZONE}/instances/not-a-member")]);
    let refused = igm
        .delete_instances()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group_manager("web")
        .set_body(body)
        .send()
        .await;
    assert_error(refused, 400, "invalid");
    assert_eq!(get_group(&igm, "web").await.target_size, Some(2));
    common::finish(cloud).await;
}

#[tokio::test]
async fn recreate_instances_replaces_them_under_the_same_name() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let link = template(&templates, "tpl").await;
    insert_group(&igm, group("web", &link, 2)).await;
    let (_, before) = wait_converged(&igm, "web").await;
    let target = before[0].clone();

    let body = model::InstanceGroupManagersRecreateInstancesRequest::new()
        .set_instances([target.instance.clone().unwrap()]);
    let op = done(
        igm.recreate_instances()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(body)
            .poller(),
    )
    .await;
    assert!(
        op.target_link
            .as_deref()
            .is_some_and(|l| l.ends_with("/instanceGroupManagers/web"))
    );
    let after = eventually("the instance is recreated", || async {
        let (_, members) = wait_converged(&igm, "web").await;
        let again = members.iter().find(|m| m.name == target.name)?;
        (again.id != target.id).then_some(members)
    })
    .await;
    assert_settled(&after, 2);
    let other = after
        .iter()
        .find(|m| m.name == before[1].name)
        .expect("the other instance is untouched");
    assert_eq!(other.id, before[1].id);
    common::finish(cloud).await;
}

#[tokio::test]
async fn set_instance_template_applies_to_new_and_recreated_instances() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let v1 = template(&templates, "tpl-v1").await;
    let v2 = template(&templates, "tpl-v2").await;
    let opportunistic = model::InstanceGroupManagerUpdatePolicy::new()
        .set_type(model::instance_group_manager_update_policy::Type::Opportunistic);
    insert_group(&igm, group("web", &v1, 2).set_update_policy(opportunistic)).await;
    let (_, before) = wait_converged(&igm, "web").await;

    let body =
        model::InstanceGroupManagersSetInstanceTemplateRequest::new().set_instance_template(&v2);
    done(
        igm.set_instance_template()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(body)
            .poller(),
    )
    .await;
    let g = get_group(&igm, "web").await;
    assert_eq!(g.instance_template.as_deref(), Some(v2.as_str()));
    assert_eq!(
        g.versions
            .iter()
            .map(|v| v.instance_template.clone())
            .collect::<Vec<_>>(),
        [Some(v2.clone())]
    );

    // OPPORTUNISTIC: the running instances keep their template; new and
    // recreated ones use the group's current template.
    done(
        igm.resize()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_size(3)
            .poller(),
    )
    .await;
    let body =
        model::InstanceGroupManagersRecreateInstancesRequest::new()
            .set_instances([before[0].instance.clone().unwrap()]);
    done(
        igm.recreate_instances()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(body)
            .poller(),
    )
    .await;
    let members = eventually(
        "one new and one recreated instance run the new template",
        || async {
            let members = managed(&igm, "web").await;
            let settled = members.len() == 3
                && members
                    .iter()
                    .all(|m| m.current_action == Some(CurrentAction::None));
            (settled && templates_of(&members).get("tpl-v2") == Some(&2)).then_some(members)
        },
    )
    .await;
    assert_settled(&members, 3);
    let recreated = members
        .iter()
        .find(|m| m.name == before[0].name)
        .expect("recreated under its name");
    assert_eq!(
        recreated
            .version
            .as_ref()
            .and_then(|v| v.instance_template.as_deref()),
        Some(v2.as_str())
    );
    let kept = members
        .iter()
        .find(|m| m.name == before[1].name)
        .expect("the other instance is kept");
    assert_eq!(
        kept.version
            .as_ref()
            .and_then(|v| v.instance_template.as_deref()),
        Some(v1.as_str())
    );
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_stale_fingerprint_is_refused_with_412() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let link = template(&templates, "tpl").await;
    insert_group(&igm, group("web", &link, 1)).await;
    let read = get_group(&igm, "web").await;
    let first = read.fingerprint.clone().expect("a fingerprint");

    let patch = model::InstanceGroupManager::new()
        .set_description("first writer")
        .set_fingerprint(first.clone());
    done(
        igm.patch()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(patch)
            .poller(),
    )
    .await;
    let changed = get_group(&igm, "web").await;
    assert_eq!(changed.description.as_deref(), Some("first writer"));
    assert_ne!(
        changed.fingerprint.as_ref(),
        Some(&first),
        "every change makes a new fingerprint"
    );

    let patch = model::InstanceGroupManager::new()
        .set_description("second writer")
        .set_fingerprint(first);
    let stale = igm
        .patch()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group_manager("web")
        .set_body(patch)
        .send()
        .await;
    assert_error(stale, 412, "conditionNotMet");
    assert_eq!(
        get_group(&igm, "web").await.description.as_deref(),
        Some("first writer")
    );

    // Re-read and re-apply: accepted.
    let patch = model::InstanceGroupManager::new()
        .set_description("second writer")
        .set_or_clear_fingerprint(changed.fingerprint);
    done(
        igm.patch()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .set_body(patch)
            .poller(),
    )
    .await;
    common::finish(cloud).await;
}

#[tokio::test]
async fn a_regional_group_spreads_instances_over_its_zones() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let rigm = client!(RegionInstanceGroupManagers, cloud);
    let link = template(&templates, "tpl").await;
    let zones = ["b", "c", "d"].map(|z| format!("{REGION}-{z}"));
    let policy =
        model::DistributionPolicy::new().set_zones(zones.iter().map(|z| {
            model::DistributionPolicyZoneConfiguration::new().set_zone(format!("zones/{z}"))
        }));
    let op = done(
        rigm.insert()
            .set_project(PROJECT)
            .set_region(REGION)
            .set_body(group("web", &link, 6).set_distribution_policy(policy))
            .poller(),
    )
    .await;
    assert!(
        op.region
            .as_deref()
            .is_some_and(|r| r.ends_with(&format!("/regions/{REGION}"))),
        "{op:?}"
    );

    eventually("the regional group is stable on its versions", || async {
        let g = rigm
            .get()
            .set_project(PROJECT)
            .set_region(REGION)
            .set_instance_group_manager("web")
            .send()
            .await
            .unwrap();
        converged(&g).then_some(())
    })
    .await;
    let g = rigm
        .get()
        .set_project(PROJECT)
        .set_region(REGION)
        .set_instance_group_manager("web")
        .send()
        .await
        .unwrap();
    assert!(
        g.region
            .as_deref()
            .is_some_and(|r| r.ends_with(&format!("/regions/{REGION}")))
    );
    assert!(
        g.instance_group
            .as_deref()
            .is_some_and(|l| l.ends_with(&format!("/regions/{REGION}/instanceGroups/web")))
    );
    let got_zones: Vec<_> = g
        .distribution_policy
        .expect("distributionPolicy")
        .zones
        .iter()
        .map(|z| name_of(z.zone.as_deref().unwrap_or_default()).to_owned())
        .collect();
    assert_eq!(got_zones, zones);

    let mut items = rigm
        .list_managed_instances()
        .set_project(PROJECT)
        .set_region(REGION)
        .set_instance_group_manager("web")
        .by_item();
    let mut per_zone = BTreeMap::<String, usize>::new();
    while let Some(mi) = items.next().await.transpose().unwrap() {
        assert_eq!(mi.current_action, Some(CurrentAction::None));
        let link = mi.instance.unwrap();
        let zone = link
            .split("/zones/")
            .nth(1)
            .and_then(|z| z.split('/').next())
            .unwrap()
            .to_owned();
        *per_zone.entry(zone).or_default() += 1;
    }
    assert_eq!(
        per_zone,
        zones
            .iter()
            .map(|z| (z.clone(), 2))
            .collect::<BTreeMap<_, _>>()
    );

    done(
        rigm.resize()
            .set_project(PROJECT)
            .set_region(REGION)
            .set_instance_group_manager("web")
            .set_size(3)
            .poller(),
    )
    .await;
    eventually("the regional group shrinks", || async {
        let g = rigm
            .get()
            .set_project(PROJECT)
            .set_region(REGION)
            .set_instance_group_manager("web")
            .send()
            .await
            .unwrap();
        (converged(&g) && g.target_size == Some(3)).then_some(())
    })
    .await;
    common::finish(cloud).await;
}

#[tokio::test]
async fn instance_groups_named_ports_and_members() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let groups = client!(InstanceGroups, cloud);
    let link = template(&templates, "tpl").await;
    insert_group(&igm, group("web", &link, 2)).await;
    let (_, members) = wait_converged(&igm, "web").await;

    let ig = groups
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group("web")
        .send()
        .await
        .unwrap();
    let first = ig
        .fingerprint
        .clone()
        .expect("an instance group has a fingerprint");
    let ports = [model::NamedPort::new().set_name("http").set_port(8080)];
    let body = model::InstanceGroupsSetNamedPortsRequest::new()
        .set_named_ports(ports.clone())
        .set_fingerprint(first.clone());
    done(
        groups
            .set_named_ports()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group("web")
            .set_body(body)
            .poller(),
    )
    .await;

    let ig = groups
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group("web")
        .send()
        .await
        .unwrap();
    assert_eq!(ig.named_ports, ports);
    assert_ne!(ig.fingerprint.as_ref(), Some(&first));
    // The managed group shows the named ports of its instance group.
    assert_eq!(get_group(&igm, "web").await.named_ports, ports);

    // The old fingerprint is stale now.
    let body = model::InstanceGroupsSetNamedPortsRequest::new()
        .set_named_ports([model::NamedPort::new().set_name("http").set_port(9090)])
        .set_fingerprint(first);
    let stale = groups
        .set_named_ports()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group("web")
        .set_body(body)
        .send()
        .await;
    assert_error(stale, 412, "conditionNotMet");

    let body = model::InstanceGroupsListInstancesRequest::new()
        .set_instance_state(model::instance_groups_list_instances_request::InstanceState::All);
    let mut items = groups
        .list_instances()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group("web")
        .set_body(body)
        .by_item();
    let mut listed = Vec::new();
    while let Some(i) = items.next().await.transpose().unwrap() {
        assert_eq!(i.named_ports, ports);
        assert_eq!(
            i.status,
            Some(model::instance_with_named_ports::Status::Running)
        );
        listed.push(i.instance.unwrap());
    }
    listed.sort();
    let mut expected: Vec<_> = members
        .iter()
        .map(|m| m.instance.clone().unwrap())
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let mut list = groups.list().set_project(PROJECT).set_zone(ZONE).by_item();
    let mut names = Vec::new();
    while let Some(g) = list.next().await.transpose().unwrap() {
        names.push(g.name.unwrap());
    }
    assert_eq!(names, ["web"]);
    common::finish(cloud).await;
}
