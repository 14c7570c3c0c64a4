//! The health reconciler's executor on the in-memory cloud and bus, on
//! Tokio's paused clock: what it sends, recreates and tells.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ccd_bus::messages::{Alert, AlertKind, Command, Health, InstanceRef, Report};
use ccd_bus::{Bus, Drops, InProcessBus, Inbox, Message};
use ccd_runtime::Reconciler;
use tokio::time::Instant;

use super::HealthReconciler;
use crate::deploy::tests::{ROLLING, ready};
use crate::heard::Reports;
use crate::testing::{EventLog, Harness};

fn report(
    app: &str,
    m: &ccd_cloud::model::ManagedInstance,
    health: Health,
    restarts: u32,
) -> Report {
    Report {
        instance: InstanceRef {
            app: app.into(),
            version: "1".into(),
            instance: m.name.clone(),
            instance_id: m.id.clone().unwrap(),
        },
        health,
        failure: (health == Health::Unhealthy).then(|| "GET /healthz: HTTP 503".into()),
        cpu: Some(0.1),
        memory_bytes: None,
        memory: None,
        requests_per_second: None,
        restarts,
        interval_ms: 1000,
    }
}

struct Setup {
    h: Harness,
    reports: Reports,
    events: Arc<EventLog>,
    reconciler: HealthReconciler<crate::testing::FakeCloud, crate::testing::MemStore, InProcessBus>,
    commands: Inbox<Command>,
}

async fn setup() -> Setup {
    let h = ready(ROLLING).await;
    let bus = Arc::new(InProcessBus::new());
    let commands = Inbox::new(
        bus.subscribe(Command::TOPIC, "agent-test").await.unwrap(),
        "agent-test",
        Arc::new(Drops::default()),
    );
    let reports = Reports::default();
    let events = Arc::new(EventLog::default());
    let reconciler = HealthReconciler::new(
        h.cloud.clone(),
        h.store.clone(),
        bus,
        reports.clone(),
        events.clone(),
    );
    Setup {
        h,
        reports,
        events,
        reconciler,
        commands,
    }
}

impl Setup {
    async fn pass(&self) {
        self.reconciler
            .reconcile("web", Some(Arc::new(self.h.desired())))
            .await
            .unwrap();
    }

    fn reasons(&self) -> Vec<String> {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.2.clone())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_app_is_restarted_then_its_instance_recreated() {
    let mut s = setup().await;
    let members = s.h.cloud.members("web");
    assert_eq!(members.len(), 3);
    for m in &members {
        s.reports
            .record(report("web", m, Health::Healthy, 0), Instant::now());
    }
    s.pass().await;
    assert!(s.reasons().is_empty(), "healthy: nothing done");

    let sick = &members[1];
    s.reports
        .record(report("web", sick, Health::Unhealthy, 0), Instant::now());
    s.pass().await;
    let command = tokio::time::timeout(Duration::from_secs(1), s.commands.next())
        .await
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(command.instance.instance, sick.name);
    assert_eq!(command.instance.instance_id, sick.id.clone().unwrap());
    assert!(command.reason.contains("HTTP 503"), "{command:?}");
    assert_eq!(s.reasons(), ["Restarting"]);

    // Unhealthy again after the restart had its chance: recreated.
    s.pass().await;
    assert_eq!(s.reasons(), ["Restarting"], "the restart gets its grace");
    tokio::time::advance(Duration::from_secs(10)).await;
    for m in &members {
        let (health, restarts) = if m.name == sick.name {
            (Health::Unhealthy, 1)
        } else {
            (Health::Healthy, 0)
        };
        s.reports
            .record(report("web", m, health, restarts), Instant::now());
    }
    s.pass().await;
    assert_eq!(s.reasons(), ["Restarting", "Recreating"]);
    assert!(
        s.h.cloud
            .state()
            .log
            .iter()
            .any(|l| l.starts_with("recreated")),
        "{:?}",
        s.h.cloud.state().log
    );
    let after = s.h.cloud.members("web");
    let recreated = after.iter().find(|m| m.name == sick.name).unwrap();
    assert_ne!(recreated.id, sick.id, "a new instance under the same name");

    // The reports about the instance before are not about this one.
    s.pass().await;
    assert_eq!(s.reasons(), ["Restarting", "Recreating"]);
}

#[tokio::test(start_paused = true)]
async fn quiet_agents_and_gone_instances_are_left_alone() {
    let s = setup().await;
    let members = s.h.cloud.members("web");
    // An agent that stopped reporting: unknown, never healthy, never acted on.
    s.reports.record(
        report("web", &members[0], Health::Unhealthy, 0),
        Instant::now(),
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    s.pass().await;
    assert!(s.reasons().is_empty(), "{:?}", s.reasons());
    // A report about an instance that no longer exists is ignored.
    let mut gone = members[0].clone();
    gone.name = "web-gone".into();
    s.reports
        .record(report("web", &gone, Health::Unhealthy, 0), Instant::now());
    s.pass().await;
    assert!(s.reasons().is_empty(), "{:?}", s.reasons());
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_alert_acts_before_the_report_that_says_so() {
    let mut s = setup().await;
    let members = s.h.cloud.members("web");
    for m in &members {
        s.reports
            .record(report("web", m, Health::Healthy, 0), Instant::now());
    }
    let alert = Alert {
        instance: report("web", &members[2], Health::Unhealthy, 0).instance,
        kind: AlertKind::Unhealthy,
        detail: "GET /healthz: no answer within 1s".into(),
    };
    s.reports.note_alert(&alert, Instant::now());
    s.pass().await;
    let command = tokio::time::timeout(Duration::from_secs(1), s.commands.next())
        .await
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(command.instance.instance, members[2].name);
    assert!(command.reason.contains("no answer"), "{command:?}");
}
