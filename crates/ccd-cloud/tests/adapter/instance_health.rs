//! What autohealing's health check reports for real sample-app instances,
//! as `Cloud::group_members` shows it: an instance that answers its check
//! with 503 is Unhealthy, one that cannot be reached (stopped) is
//! Unreachable (Compute's TIMEOUT), and autohealing recreates both kinds.

use crate::common;
use crate::processes;

use std::time::Duration;

use ccd_cloud::Cloud;
use ccd_cloud::model::{
    Autohealing, FirewallSpec, GroupSpec, HealthCheckSpec, HealthDefinition, InstanceHealth,
    InstanceStatus, ManagedInstance, Probe,
};
use common::{converge, eventually, group};
use processes::{Processes, sample_template};

const APP: &str = "clinic";

async fn members(p: &Processes, g: &GroupSpec) -> Vec<ManagedInstance> {
    p.cloud.group_members(&g.id()).await.unwrap().unwrap()
}

/// A group of one sample-app instance, healed by `{APP}-heal` after `delay`.
async fn one_instance(
    p: &Processes,
    name: &str,
    env: &[(&str, &str)],
    delay: Duration,
) -> GroupSpec {
    let tpl = p
        .cloud
        .ensure_template(&sample_template(APP, name, env))
        .await
        .unwrap();
    let mut spec = group(APP, &tpl, 1);
    spec.name = format!("{APP}-{name}");
    spec.autohealing = Some(Autohealing {
        health_check: format!("{APP}-heal"),
        initial_delay: delay,
    });
    p.cloud.apply_group(&spec).await.unwrap();
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_unhealthy_instances_are_told_apart() {
    let p = Processes::start("health").await;
    p.cloud
        .apply_firewall(&FirewallSpec::health_checks(APP, 8080))
        .await
        .unwrap();
    p.cloud
        .apply_health_check(&HealthCheckSpec {
            app: APP.into(),
            name: format!("{APP}-heal"),
            health: HealthDefinition {
                probe: Probe::Http {
                    path: "/healthz".into(),
                    port: 8080,
                },
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                healthy_threshold: 1,
                unhealthy_threshold: 2,
            },
        })
        .await
        .unwrap();
    // Long initial delays: autohealing must leave these two alone while they are looked at.
    let long = Duration::from_secs(600);
    let failing = one_instance(&p, "failing", &[("SAMPLE_FAIL_HEALTH", "1")], long).await;
    let stopped = one_instance(&p, "stopped", &[], long).await;
    // A short one: this group's instance is recreated once it fails.
    let healed = one_instance(&p, "healed", &[], Duration::from_secs(5)).await;

    // Answers 503: reachable, but unhealthy.
    eventually("the failing instance to be Unhealthy", || async {
        let m = members(&p, &failing).await;
        (m.len() == 1 && m[0].health == InstanceHealth::Unhealthy).then_some(())
    })
    .await;

    // Healthy while it runs, Unreachable once stopped.
    let name = converge(&p.cloud, &stopped.id(), "a healthy instance", |g| {
        g.instances.len() == 1 && g.instances[0].health == InstanceHealth::Healthy
    })
    .await
    .instances[0]
        .name
        .clone();
    p.stop_instance(&name).await;
    eventually("the stopped instance to be Unreachable", || async {
        let m = members(&p, &stopped).await;
        (m.len() == 1
            && m[0].status == InstanceStatus::Stopped
            && m[0].health == InstanceHealth::Unreachable)
            .then_some(())
    })
    .await;
    // Still failing for the reason it did: nothing confused the two.
    assert_eq!(
        members(&p, &failing).await[0].health,
        InstanceHealth::Unhealthy
    );

    // Autohealing recreates an unreachable instance, as it does an unhealthy one.
    let name = converge(&p.cloud, &healed.id(), "a healthy instance", |g| {
        g.instances.len() == 1 && g.instances[0].health == InstanceHealth::Healthy
    })
    .await
    .instances[0]
        .name
        .clone();
    p.stop_instance(&name).await;
    eventually(
        "the stopped instance to be recreated and healthy",
        || async {
            let m = members(&p, &healed).await;
            (m.len() == 1
                && m[0].status == InstanceStatus::Running
                && m[0].health == InstanceHealth::Healthy)
                .then_some(())
        },
    )
    .await;

    for g in [&failing, &stopped, &healed] {
        p.cloud.delete_group(&g.id()).await.unwrap();
    }
    p.finish().await;
}
