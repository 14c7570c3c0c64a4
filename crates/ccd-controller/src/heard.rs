//! What the agents said: each instance's last report, as the health and
//! scaling reconcilers read it. A listener task fills it from the bus; the
//! reconcilers read it at their own pace (level-triggered: a lost report is
//! made good by the next one).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ccd_bus::messages::{Alert, AlertKind, Health, Report};
use ccd_bus::{Bus, BusError, Drops, Inbox, Message};
use ccd_runtime::Trigger;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::heal::Heard;

/// Reports older than this are forgotten: their instances are long gone or
/// long quiet (and quiet is "unknown" well before this).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The last report of every instance, by app.
#[derive(Debug, Clone, Default)]
pub struct Reports {
    by_app: Arc<Mutex<HashMap<String, BTreeMap<String, Heard>>>>,
}

impl Reports {
    /// Keeps `report` as its instance's latest, heard `at`.
    pub fn record(&self, report: Report, at: Instant) {
        let mut map = self.by_app.lock().unwrap_or_else(PoisonError::into_inner);
        let app = map.entry(report.instance.app.clone()).or_default();
        app.insert(report.instance.instance.clone(), Heard { report, at });
    }

    /// An alert about an instance that reported before: its health, as the
    /// alert says, is the instance's latest (alerts and reports travel on
    /// different topics, so the report that says the same may come after).
    pub fn note_alert(&self, alert: &Alert, at: Instant) {
        let health = match alert.kind {
            AlertKind::Unhealthy => Health::Unhealthy,
            AlertKind::Recovered => Health::Healthy,
            AlertKind::CpuPressure | AlertKind::MemoryPressure => return,
        };
        let mut map = self.by_app.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(heard) = map
            .get_mut(&alert.instance.app)
            .and_then(|app| app.get_mut(&alert.instance.instance))
            .filter(|h| h.report.instance.instance_id == alert.instance.instance_id)
        else {
            return;
        };
        heard.report.health = health;
        heard.report.failure = (health == Health::Unhealthy).then(|| alert.detail.clone());
        heard.at = at;
    }

    /// One app's reports, by instance name.
    pub fn of(&self, app: &str) -> BTreeMap<String, Heard> {
        let map = self.by_app.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(app).cloned().unwrap_or_default()
    }

    fn forget_older_than(&self, cutoff: Instant) {
        let mut map = self.by_app.lock().unwrap_or_else(PoisonError::into_inner);
        for app in map.values_mut() {
            app.retain(|_, h| h.at >= cutoff);
        }
        map.retain(|_, app| !app.is_empty());
    }
}

/// The bus subscriptions of one reconciler: reports into `reports`, and,
/// with `alerts`, an unhealthy or recovered alert queues its app at once.
#[derive(Debug)]
pub struct Listener<B> {
    pub bus: Arc<B>,
    /// Names this reconciler's subscriptions (`health`, `scaling`): each
    /// reconciler gets every message.
    pub name: String,
    pub reports: Reports,
    pub alerts: Option<Trigger>,
    pub drops: Arc<Drops>,
}

impl<B: Bus> Listener<B> {
    /// Listens until `stop`; fails only when a subscription cannot be made.
    pub async fn run(self, stop: CancellationToken) -> Result<(), BusError> {
        let mut reports: Inbox<Report> = Inbox::new(
            self.bus.subscribe(Report::TOPIC, &self.name).await?,
            format!("{}-reports", self.name),
            self.drops.clone(),
        );
        let mut alerts: Option<Inbox<Alert>> = match &self.alerts {
            Some(_) => Some(Inbox::new(
                self.bus.subscribe(Alert::TOPIC, &self.name).await?,
                format!("{}-alerts", self.name),
                self.drops.clone(),
            )),
            None => None,
        };
        let mut sweep = tokio::time::interval(FORGET_AFTER / 10);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = sweep.tick() => {
                    if let Some(cutoff) = Instant::now().checked_sub(FORGET_AFTER) {
                        self.reports.forget_older_than(cutoff);
                    }
                }
                report = reports.next() => match report {
                    Some(r) => self.reports.record(r.body, Instant::now()),
                    None => return Ok(()),
                },
                alert = next_alert(&mut alerts) => match alert {
                    Some(a) => self.on_alert(a.body),
                    None => return Ok(()),
                },
            }
        }
    }

    fn on_alert(&self, alert: Alert) {
        let Some(trigger) = &self.alerts else { return };
        match alert.kind {
            AlertKind::Unhealthy | AlertKind::Recovered => {
                tracing::info!(app = %alert.instance.app, instance = %alert.instance.instance,
                    kind = ?alert.kind, detail = %alert.detail, "alert");
                self.reports.note_alert(&alert, Instant::now());
                trigger.push(alert.instance.app);
            }
            // Pressure is for people (and the scaler reads the figures).
            AlertKind::CpuPressure | AlertKind::MemoryPressure => {
                tracing::warn!(app = %alert.instance.app, instance = %alert.instance.instance,
                    kind = ?alert.kind, detail = %alert.detail, "resource pressure");
            }
        }
    }
}

/// The next alert, or never when there is no alert subscription.
async fn next_alert(alerts: &mut Option<Inbox<Alert>>) -> Option<ccd_bus::Envelope<Alert>> {
    match alerts {
        Some(inbox) => inbox.next().await,
        None => std::future::pending().await,
    }
}
