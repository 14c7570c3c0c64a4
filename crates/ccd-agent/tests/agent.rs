//! The agent's loop on the in-process bus and tokio's paused clock, with a
//! scripted health check and a fake app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccd_agent::app::{App, Machine, Usage};
use ccd_agent::check::Probe;
use ccd_agent::{Agent, AgentConfig, CheckConfig};
use ccd_bus::messages::{Action, Alert, AlertKind, Command, Health, InstanceRef, Report};
use ccd_bus::{Bus, Drops, InProcessBus, Inbox, Message, Outbox};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
struct Scripted(Arc<Mutex<Result<(), String>>>);

impl Probe for Scripted {
    async fn check(&self) -> Result<(), String> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Debug, Default)]
struct FakeState {
    /// Share of the machine's CPUs in use.
    load: f64,
    cpu_seconds: f64,
    last: Option<Instant>,
    memory_bytes: u64,
    restarts: u32,
}

#[derive(Debug, Clone, Default)]
struct FakeApp(Arc<Mutex<FakeState>>);

const CPUS: f64 = 2.0;

impl App for FakeApp {
    async fn usage(&self) -> Option<Usage> {
        let mut s = self.0.lock().unwrap();
        let now = Instant::now();
        if let Some(last) = s.last {
            s.cpu_seconds += s.load * CPUS * now.duration_since(last).as_secs_f64();
        }
        s.last = Some(now);
        Some(Usage {
            cpu_seconds: s.cpu_seconds,
            memory_bytes: s.memory_bytes,
        })
    }

    async fn restart(&self) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        s.restarts += 1;
        s.cpu_seconds = 0.0;
        Ok(())
    }
}

fn config() -> AgentConfig {
    AgentConfig {
        app: "web".into(),
        version: "1".into(),
        check: CheckConfig::Tcp { port: 8080 },
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        initial_delay: Duration::ZERO,
        cpu_pressure_percent: 90,
        memory_pressure_percent: 90,
        pressure_checks: 3,
    }
}

struct Running {
    bus: Arc<InProcessBus>,
    check: Arc<Mutex<Result<(), String>>>,
    app: FakeApp,
    reports: Inbox<Report>,
    alerts: Inbox<Alert>,
    stop: CancellationToken,
}

impl Running {
    async fn report(&mut self) -> Report {
        tokio::time::timeout(Duration::from_secs(5), self.reports.next())
            .await
            .expect("a report every second")
            .unwrap()
            .body
    }

    async fn report_where(&mut self, what: &str, f: impl Fn(&Report) -> bool) -> Report {
        for _ in 0..20 {
            let r = self.report().await;
            if f(&r) {
                return r;
            }
        }
        panic!("no report where {what}");
    }

    async fn alert(&mut self) -> Alert {
        tokio::time::timeout(Duration::from_secs(10), self.alerts.next())
            .await
            .expect("an alert")
            .unwrap()
            .body
    }

    async fn no_alert(&mut self, within: Duration) {
        if let Ok(Some(a)) = tokio::time::timeout(within, self.alerts.next()).await {
            panic!("unexpected alert {:?}", a.body);
        }
    }

    async fn command(&self, instance_id: &str, action: Action) {
        let command = Command {
            instance: InstanceRef {
                app: "web".into(),
                version: "1".into(),
                instance: "web-1".into(),
                instance_id: instance_id.into(),
            },
            action,
            reason: "unhealthy for 2 checks".into(),
        };
        Outbox::new(self.bus.clone(), "health")
            .publish(command)
            .await
            .unwrap();
    }
}

async fn start(config: AgentConfig) -> Running {
    let bus = Arc::new(InProcessBus::new());
    let drops = Arc::new(Drops::default());
    let reports = Inbox::new(
        bus.subscribe(Report::TOPIC, "test-reports").await.unwrap(),
        "test-reports",
        drops.clone(),
    );
    let alerts = Inbox::new(
        bus.subscribe(Alert::TOPIC, "test-alerts").await.unwrap(),
        "test-alerts",
        drops,
    );
    let check = Arc::new(Mutex::new(Ok(())));
    let app = FakeApp::default();
    app.0.lock().unwrap().memory_bytes = 100 << 20;
    let machine = Machine {
        cpus: CPUS,
        memory_bytes: 1 << 30,
    };
    let stop = CancellationToken::new();
    let agent = Agent::new(
        config,
        "web-1",
        "42",
        bus.clone(),
        Scripted(check.clone()),
        app.clone(),
        machine,
    );
    tokio::spawn(agent.run(stop.clone()));
    Running {
        bus,
        check,
        app,
        reports,
        alerts,
        stop,
    }
}

#[tokio::test(start_paused = true)]
async fn reports_say_health_and_resource_use_every_interval() {
    let mut run = start(config()).await;
    run.app.0.lock().unwrap().load = 0.25;
    let first = run.report().await;
    assert_eq!(first.health, Health::Unknown, "one pass of two");
    assert_eq!(first.cpu, None, "no CPU share before a second sample");
    assert_eq!(first.instance.instance_id, "42");
    assert_eq!(first.interval_ms, 1000);
    let second = run.report().await;
    assert_eq!(second.health, Health::Healthy);
    let cpu = second.cpu.unwrap();
    assert!((cpu - 0.25).abs() < 0.01, "{cpu}");
    assert_eq!(second.memory_bytes, Some(100 << 20));
    let memory = second.memory.unwrap();
    assert!((memory - 100.0 / 1024.0).abs() < 0.001, "{memory}");
    run.no_alert(Duration::from_secs(3)).await;
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn unhealthy_and_recovered_are_alerts_said_once() {
    let mut run = start(config()).await;
    run.report_where("healthy", |r| r.health == Health::Healthy)
        .await;
    *run.check.lock().unwrap() = Err("GET /healthz: HTTP 500".into());
    let alert = run.alert().await;
    assert_eq!(alert.kind, AlertKind::Unhealthy);
    assert_eq!(alert.detail, "GET /healthz: HTTP 500");
    let r = run
        .report_where("unhealthy", |r| r.health == Health::Unhealthy)
        .await;
    assert_eq!(r.failure.as_deref(), Some("GET /healthz: HTTP 500"));
    run.no_alert(Duration::from_secs(5)).await;
    *run.check.lock().unwrap() = Ok(());
    assert_eq!(run.alert().await.kind, AlertKind::Recovered);
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_restart_command_restarts_the_app_of_this_instance_only() {
    let mut run = start(config()).await;
    run.report_where("healthy", |r| r.health == Health::Healthy)
        .await;
    // Meant for an earlier instance of the same name: not this one.
    run.command("41", Action::Restart).await;
    run.report().await;
    run.report().await;
    assert_eq!(run.app.0.lock().unwrap().restarts, 0);
    run.command("42", Action::Restart).await;
    let r = run.report_where("restarted", |r| r.restarts == 1).await;
    assert_eq!(
        r.health,
        Health::Unknown,
        "health starts over after a restart"
    );
    assert_eq!(run.app.0.lock().unwrap().restarts, 1);
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn cpu_pressure_for_three_checks_is_one_alert() {
    let mut run = start(config()).await;
    run.report_where("healthy", |r| r.health == Health::Healthy)
        .await;
    run.app.0.lock().unwrap().load = 0.95;
    let alert = run.alert().await;
    assert_eq!(alert.kind, AlertKind::CpuPressure);
    assert!(alert.detail.contains("95%"), "{}", alert.detail);
    run.no_alert(Duration::from_secs(5)).await;
    // Below the level and above it again: a new alert.
    run.app.0.lock().unwrap().load = 0.1;
    run.report_where("calm", |r| r.cpu.is_some_and(|c| c < 0.2))
        .await;
    run.app.0.lock().unwrap().load = 0.95;
    assert_eq!(run.alert().await.kind, AlertKind::CpuPressure);
    run.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn memory_pressure_is_an_alert() {
    let mut run = start(config()).await;
    run.app.0.lock().unwrap().memory_bytes = 1000 << 20;
    let alert = run.alert().await;
    assert_eq!(alert.kind, AlertKind::MemoryPressure);
    run.stop.cancel();
}
