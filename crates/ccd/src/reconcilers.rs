//! Which reconcilers a process runs, and running the health and scaling
//! ones beside the deploy reconciler: `ccd up` runs all three over the
//! in-process bus; `ccd controller --reconcilers` any subset, over Pub/Sub.

use std::sync::Arc;

use anyhow::bail;
use ccd_bus::{AnyBus, Drops};
use ccd_cloud::GceCloud;
use ccd_controller::heal::HealthReconciler;
use ccd_controller::heard::{Listener, Reports};
use ccd_controller::scale::ScalingReconciler;
use ccd_controller::{EventSink, SpecSource};
use ccd_runtime::Metrics;
use ccd_runtime::lease::{Gated, Leadership};
use ccd_store::SpecStore;
use tokio_util::sync::CancellationToken;

/// A subset of `deploy,health,scaling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Set {
    pub deploy: bool,
    pub health: bool,
    pub scaling: bool,
}

impl Set {
    pub const ALL: Set = Set {
        deploy: true,
        health: true,
        scaling: true,
    };

    pub fn parse(text: &str) -> anyhow::Result<Set> {
        let mut set = Set {
            deploy: false,
            health: false,
            scaling: false,
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "deploy" => set.deploy = true,
                "health" => set.health = true,
                "scaling" => set.scaling = true,
                other => bail!(
                    "--reconcilers: unknown reconciler {other:?}; name some of deploy, health, scaling"
                ),
            }
        }
        if set
            == (Set {
                deploy: false,
                health: false,
                scaling: false,
            })
        {
            bail!("--reconcilers: name at least one of deploy, health, scaling");
        }
        Ok(set)
    }

    pub fn needs_bus(self) -> bool {
        self.health || self.scaling
    }
}

/// How soon a standby's health and scaling reconcilers look again, so one
/// that starts to lead picks its apps up within this.
const STANDBY_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// When the reconcilers act: while `leadership` says this process leads,
/// until `stop`.
#[derive(Debug, Clone)]
pub struct Acting {
    pub leadership: Leadership,
    pub stop: CancellationToken,
}

/// The health and scaling reconcilers this process runs, each a controller
/// over the specs with a listener on the bus.
pub fn start<S: SpecStore>(
    set: Set,
    cloud: Arc<GceCloud>,
    store: Arc<S>,
    bus: Arc<AnyBus>,
    events: Arc<dyn EventSink>,
    drops: Arc<Drops>,
    acting: Acting,
) -> Vec<Metrics> {
    let Acting { leadership, stop } = acting;
    let mut metrics = Vec::new();
    if set.health {
        let reports = Reports::default();
        let reconciler = HealthReconciler::new(
            cloud.clone(),
            store.clone(),
            bus.clone(),
            reports.clone(),
            events.clone(),
        );
        let controller = ccd_runtime::Controller::new(
            SpecSource::new(store.clone()),
            Gated::new(reconciler, leadership.clone(), STANDBY_POLL),
            runtime("health"),
        );
        let listener = Listener {
            bus: bus.clone(),
            name: "health".to_owned(),
            reports,
            alerts: Some(controller.trigger()),
            drops: drops.clone(),
        };
        metrics.push(controller.metrics());
        spawn(controller, listener, stop.clone());
    }
    if set.scaling {
        let reports = Reports::default();
        let reconciler = ScalingReconciler::new(cloud, store.clone(), reports.clone(), events);
        let controller = ccd_runtime::Controller::new(
            SpecSource::new(store),
            Gated::new(reconciler, leadership, STANDBY_POLL),
            runtime("scaling"),
        );
        let listener = Listener {
            bus,
            name: "scaling".to_owned(),
            reports,
            alerts: None,
            drops,
        };
        metrics.push(controller.metrics());
        spawn(controller, listener, stop);
    }
    metrics
}

fn spawn<Src, R>(
    controller: ccd_runtime::Controller<Src, R>,
    listener: Listener<AnyBus>,
    stop: CancellationToken,
) where
    Src: ccd_runtime::Source + Send + 'static,
    R: ccd_runtime::Reconciler<Src::Object>,
{
    let name = listener.name.clone();
    let listening = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = listener.run(listening.clone()).await {
            // Without its listener a reconciler hears nothing and does
            // nothing: stop the process rather than run blind.
            tracing::error!(reconciler = %name, error = %e, "cannot listen to the bus; stopping");
            listening.cancel();
        }
    });
    tokio::spawn(async move { controller.run(stop.cancelled_owned()).await });
}

/// The health and scaling controllers' machinery: each pass is a few reads,
/// so many apps can be looked at together.
fn runtime(name: &str) -> ccd_runtime::Config {
    ccd_runtime::Config {
        name: name.to_owned(),
        concurrency: 16,
        ..ccd_runtime::Config::default()
    }
}
