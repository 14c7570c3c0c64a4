//! The agent's loop: check, sample, report; restart when told.

use std::sync::Arc;
use std::time::Duration;

use ccd_bus::messages::{Action, Alert, AlertKind, Command, InstanceRef, Report};
use ccd_bus::{Bus, BusError, Drops, Inbox, Message, Outbox};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::app::{App, Machine, Usage};
use crate::check::Probe;
use crate::config::AgentConfig;
use crate::health::{Change, Judge};

/// One instance's agent.
#[derive(Debug)]
pub struct Agent<B, P, A> {
    config: AgentConfig,
    instance: InstanceRef,
    bus: Arc<B>,
    probe: Arc<P>,
    app: A,
    machine: Machine,
    drops: Arc<Drops>,
}

/// What the loop keeps between checks.
#[derive(Debug)]
struct State {
    judge: Judge,
    last_usage: Option<(Usage, Instant)>,
    cpu_high: u32,
    cpu_alerted: bool,
    memory_alerted: bool,
    restarts: u32,
}

impl<B: Bus, P: Probe, A: App> Agent<B, P, A> {
    pub fn new(
        config: AgentConfig,
        instance: &str,
        instance_id: &str,
        bus: Arc<B>,
        probe: P,
        app: A,
        machine: Machine,
    ) -> Self {
        let instance = InstanceRef {
            app: config.app.clone(),
            version: config.version.clone(),
            instance: instance.to_owned(),
            instance_id: instance_id.to_owned(),
        };
        Agent {
            config,
            instance,
            bus,
            probe: Arc::new(probe),
            app,
            machine,
            drops: Arc::new(Drops::default()),
        }
    }

    /// The subscription an instance's agent takes its commands from.
    pub fn command_subscription(instance: &str) -> String {
        format!("agent-{instance}")
    }

    /// Runs until `stop`; fails only when the bus cannot be subscribed to.
    pub async fn run(self, stop: CancellationToken) -> Result<(), BusError> {
        // Instrumented, not entered: a guard held across awaits would leak
        // the span into whatever else runs on the thread.
        let span = tracing::info_span!("agent", app = %self.instance.app, version = %self.instance.version, instance = %self.instance.instance);
        self.run_in_span(stop).instrument(span).await
    }

    async fn run_in_span(self, stop: CancellationToken) -> Result<(), BusError> {
        let subscription = Self::command_subscription(&self.instance.instance);
        let mut commands: Inbox<Command> = Inbox::new(
            self.bus.subscribe(Command::TOPIC, &subscription).await?,
            subscription,
            self.drops.clone(),
        );
        let outbox = Outbox::new(self.bus.clone(), self.instance.instance.clone());
        let mut state = State {
            judge: Judge::new(
                self.config.healthy_threshold,
                self.config.unhealthy_threshold,
                self.config.initial_delay,
            ),
            last_usage: None,
            cpu_high: 0,
            cpu_alerted: false,
            memory_alerted: false,
            restarts: 0,
        };
        // Checks run on their own task: a command (restart a hung app) is
        // obeyed at once, not after a check that waits out its timeout.
        let (checked, mut outcomes) = tokio::sync::mpsc::channel(1);
        let checking = stop.child_token();
        tokio::spawn(check_every(
            self.probe.clone(),
            self.config.interval,
            self.config.timeout,
            checked,
            checking.clone(),
        ));
        let _stop_checking = checking.drop_guard();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                outcome = outcomes.recv() => match outcome {
                    Some(outcome) => self.record_and_report(&mut state, &outbox, outcome).await,
                    None => return Ok(()),
                },
                command = commands.next() => match command {
                    Some(c) => self.obey(&mut state, c.body).await,
                    None => return Ok(()),
                },
            }
        }
    }

    async fn record_and_report(
        &self,
        state: &mut State,
        outbox: &Outbox<B>,
        outcome: Result<(), String>,
    ) {
        match state.judge.record(outcome) {
            Some(Change::BecameUnhealthy(answer)) => {
                tracing::warn!(%answer, "app unhealthy");
                self.alert(outbox, AlertKind::Unhealthy, answer).await;
            }
            Some(Change::Recovered) => {
                tracing::info!("app recovered");
                self.alert(
                    outbox,
                    AlertKind::Recovered,
                    "passing its check again".into(),
                )
                .await;
            }
            None => {}
        }
        let (cpu, memory_bytes) = self.sample(state).await;
        let memory = memory_bytes
            .filter(|_| self.machine.memory_bytes > 0)
            .map(|b| b as f64 / self.machine.memory_bytes as f64);
        self.watch_pressure(state, outbox, cpu, memory).await;
        let report = Report {
            instance: self.instance.clone(),
            health: state.judge.health(),
            failure: state.judge.failure().map(str::to_owned),
            cpu,
            memory_bytes,
            memory,
            requests_per_second: None,
            restarts: state.restarts,
            interval_ms: self.config.interval.as_millis() as u64,
        };
        if let Err(e) = outbox.publish(report).await {
            // The next report makes up for this one.
            tracing::warn!(error = %e, "report not published");
        }
    }

    /// The CPU share since the last sample and the memory in use now.
    async fn sample(&self, state: &mut State) -> (Option<f64>, Option<u64>) {
        let now = Instant::now();
        let Some(usage) = self.app.usage().await else {
            state.last_usage = None;
            return (None, None);
        };
        let cpu = match state.last_usage {
            // Less CPU time than before: the app restarted in between.
            Some((before, at)) if usage.cpu_seconds >= before.cpu_seconds => {
                let wall = now.duration_since(at).as_secs_f64() * self.machine.cpus;
                (wall > 0.0).then(|| ((usage.cpu_seconds - before.cpu_seconds) / wall).min(1.0))
            }
            _ => None,
        };
        state.last_usage = Some((usage, now));
        (cpu, Some(usage.memory_bytes))
    }

    async fn watch_pressure(
        &self,
        state: &mut State,
        outbox: &Outbox<B>,
        cpu: Option<f64>,
        memory: Option<f64>,
    ) {
        if let Some(cpu) = cpu {
            if cpu > self.config.cpu_pressure() {
                state.cpu_high += 1;
            } else {
                state.cpu_high = 0;
                state.cpu_alerted = false;
            }
            if state.cpu_high >= self.config.pressure_checks && !state.cpu_alerted {
                state.cpu_alerted = true;
                let detail = format!(
                    "CPU at {:.0}% of the instance for {} checks (level {:.0}%)",
                    cpu * 100.0,
                    state.cpu_high,
                    self.config.cpu_pressure() * 100.0
                );
                tracing::warn!(%detail, "resource pressure");
                self.alert(outbox, AlertKind::CpuPressure, detail).await;
            }
        }
        if let Some(memory) = memory {
            if memory > self.config.memory_pressure() && !state.memory_alerted {
                state.memory_alerted = true;
                let detail = format!(
                    "memory at {:.0}% of the instance (level {:.0}%)",
                    memory * 100.0,
                    self.config.memory_pressure() * 100.0
                );
                tracing::warn!(%detail, "resource pressure");
                self.alert(outbox, AlertKind::MemoryPressure, detail).await;
            } else if memory <= self.config.memory_pressure() {
                state.memory_alerted = false;
            }
        }
    }

    async fn alert(&self, outbox: &Outbox<B>, kind: AlertKind, detail: String) {
        let alert = Alert {
            instance: self.instance.clone(),
            kind,
            detail,
        };
        if let Err(e) = outbox.publish(alert).await {
            // Reports carry the same health, so the reconciler still learns it.
            tracing::warn!(error = %e, ?kind, "alert not published");
        }
    }

    async fn obey(&self, state: &mut State, command: Command) {
        // Commands for other instances, or for an instance of this name
        // that was recreated since, are not for this agent.
        if command.instance.instance != self.instance.instance
            || command.instance.instance_id != self.instance.instance_id
        {
            return;
        }
        match command.action {
            Action::Restart => {
                tracing::warn!(reason = %command.reason, "restarting the app");
                match self.app.restart().await {
                    Ok(()) => {
                        state.restarts += 1;
                        state.judge.restarted();
                        state.last_usage = None;
                        state.cpu_high = 0;
                    }
                    Err(e) => tracing::warn!(error = %e, "restart failed"),
                }
            }
        }
    }
}

/// Runs the check every `interval` and sends each outcome, until `stop`.
async fn check_every<P: Probe>(
    probe: Arc<P>,
    interval: Duration,
    timeout: Duration,
    outcomes: tokio::sync::mpsc::Sender<Result<(), String>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // The check bounds itself; this bounds a check that does not.
        let outcome = tokio::time::timeout(timeout + Duration::from_secs(1), probe.check())
            .await
            .unwrap_or_else(|_| Err(format!("no result within {timeout:?}")));
        if outcomes.send(outcome).await.is_err() {
            return;
        }
    }
}
