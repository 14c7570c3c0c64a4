//! The scaling reconciler's executor on the in-memory cloud, on Tokio's
//! paused clock: what it resizes, records and tells, and that the deploy
//! reconciler leaves the size it set alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ccd_bus::messages::{Health, InstanceRef, Report};
use ccd_runtime::Reconciler;
use ccd_store::SpecStore;
use tokio::time::Instant;

use super::ScalingReconciler;
use crate::heard::Reports;
use crate::scale::record::ScalingRecord;
use crate::status::Phase;
use crate::testing::{EventLog, FakeCloud, Harness, MemStore};

const SPEC: &str = "apiVersion: ccd/v1
kind: App
metadata: {name: web}
spec:
  image: example/web:1
  version: \"1\"
  port: 8080
  machine: {zones: [europe-west1-b]}
  replicas: {min: 1, max: 4}
  autoscaling: {cpuUtilization: 0.5, scaleInStabilization: 1m}
  health: {http: {path: /healthz}, interval: 1s, timeout: 1s, healthyThreshold: 1, unhealthyThreshold: 2, initialDelay: 2s}
  expose: {internal: {port: 80, allowFrom: [10.0.0.0/8]}}
";

struct Setup {
    h: Harness,
    reports: Reports,
    events: Arc<EventLog>,
    reconciler: ScalingReconciler<FakeCloud, MemStore>,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with(SPEC).await
    }

    async fn with(spec: &str) -> Setup {
        let h = Harness::new(spec);
        h.until("Ready", Duration::from_secs(60), |s| {
            s.phase == Phase::Ready
        })
        .await;
        let reports = Reports::default();
        let events = Arc::new(EventLog::default());
        let reconciler = ScalingReconciler::new(
            h.cloud.clone(),
            h.store.clone(),
            reports.clone(),
            events.clone(),
        );
        Setup {
            h,
            reports,
            events,
            reconciler,
        }
    }

    /// Every member reports `cpu`; then one scaling pass.
    async fn pass(&self, cpu: f64) -> ScalingRecord {
        for m in self.h.cloud.members("web") {
            let Some(id) = m.id.clone() else { continue };
            let report = Report {
                instance: InstanceRef {
                    app: "web".into(),
                    version: "1".into(),
                    instance: m.name.clone(),
                    instance_id: id,
                },
                health: Health::Healthy,
                failure: None,
                cpu: Some(cpu),
                memory_bytes: None,
                memory: None,
                requests_per_second: None,
                restarts: 0,
                interval_ms: 1000,
            };
            self.reports.record(report, Instant::now());
        }
        self.reconciler
            .reconcile("web", Some(Arc::new(self.h.desired())))
            .await
            .unwrap();
        let bytes = self.h.store.read_scaling("web").await.unwrap().unwrap();
        ScalingRecord::parse(&bytes).unwrap()
    }

    fn size(&self) -> usize {
        self.h.cloud.members("web").len()
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
async fn load_scales_out_at_once_and_back_in_after_the_window() {
    let s = Setup::new().await;
    assert_eq!(s.size(), 1);
    let idle = s.pass(0.2).await;
    assert_eq!((idle.size, idle.min, idle.max), (1, 1, 4));
    assert_eq!(idle.target, "CPU 50%");
    assert!(idle.last.is_none());

    // One busy instance at 90% against a target of 50%: two wanted.
    let out = s.pass(0.9).await;
    assert_eq!(out.size, 2, "{out:?}");
    let last = out.last.clone().unwrap();
    assert_eq!((last.from, last.to), (1, 2));
    assert!(last.reason.contains("average CPU 90%"), "{last:?}");
    assert_eq!(s.size(), 2);
    assert_eq!(s.reasons(), ["ScaledOut"]);

    // The deploy reconciler's passes leave the scaler's size alone.
    s.h.run_for(Duration::from_secs(30)).await;
    assert_eq!(s.size(), 2, "the deploy reconciler kept the scaler's size");

    // Low load: nothing before the window has passed, then back to one.
    let held = s.pass(0.05).await;
    assert_eq!(held.size, 2, "{held:?}");
    tokio::time::advance(Duration::from_secs(61)).await;
    let back = s.pass(0.05).await;
    assert_eq!(back.size, 1, "{back:?}");
    assert_eq!(s.reasons(), ["ScaledOut", "ScaledIn"]);
    assert_eq!(s.size(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_signal_takes_the_group_beyond_its_bounds() {
    let s = Setup::new().await;
    for _ in 0..10 {
        s.pass(1.0).await;
        // Past the cool-down, so the new instances count.
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    assert_eq!(s.size(), 4, "replicas.max");
    for _ in 0..10 {
        s.pass(0.0).await;
        tokio::time::advance(Duration::from_secs(61)).await;
    }
    assert_eq!(s.size(), 1, "replicas.min");
}

#[tokio::test(start_paused = true)]
async fn requests_per_second_come_from_the_load_balancers_counts() {
    let s = Setup::with(&SPEC.replace("cpuUtilization: 0.5", "requestsPerSecond: 100")).await;
    let quiet = s.pass(0.0).await;
    assert_eq!(
        (quiet.size, quiet.target.as_str()),
        (1, "100 requests/s per instance")
    );
    // 500 requests in the last two seconds on the only instance: 250/s
    // against 100/s each, three wanted; CPU says nothing here.
    {
        let mut state = s.h.cloud.state();
        state.traffic.backends = vec![ccd_cloud::model::BackendTraffic {
            group: "web".into(),
            requests: 500,
            server_errors: 0,
        }];
        state.traffic.complete_until = Some(ccd_clock::wall());
    }
    let out = s.pass(0.0).await;
    assert_eq!(out.size, 3, "{out:?}");
    assert!(
        out.last.as_ref().unwrap().reason.contains("requests/s"),
        "{out:?}"
    );
}
