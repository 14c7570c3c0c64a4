//! What a new app costs in cloud API calls until it is Ready: the deploy
//! reconciler on the real Compute adapter against an in-process local cloud,
//! passes run one after another as the runtime runs them (each after the
//! requeue the previous one asked for). Compute calls are counted where the
//! benchmark counts them, at the local cloud (operation polls are reads
//! there); the adapter's own counters add the IAM calls of the app's
//! service account. A failure lists every call, pass by pass, from the
//! adapter's `ccd_cloud::calls` debug lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use ccd_cloud::{ApiCalls, EndpointToken, GceCloud, GceConfig};
use ccd_controller::{DeployReconciler, EventSink, Phase, Status, desired};
use ccd_localcloud::{Config, LocalCloud};
use ccd_runtime::{Action, Reconciler};
use ccd_store::{Bytes, FolderStore, SpecFile, SpecStore};

/// The goal of issue 11: Compute calls for a new app, until it is Ready.
const GOAL: u64 = 10;

/// The benchmark's app (`tests/bench/controller.sh`): two simulated
/// replicas, regional, not exposed, the default health check.
fn spec(name: &str) -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata:
  name: {name}
spec:
  image: europe-docker.pkg.dev/acme/apps/bench:1.0.0
  version: 1.0.0
  port: 8080
  replicas: {{min: 2}}
"
    )
}

/// The adapter's debug line for each call it sends, kept in order.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn take(&self) -> String {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&std::mem::take(&mut *buf)).into_owned()
    }
}

fn call_lines() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Lines::default();
        let writer = lines.clone();
        tracing_subscriber::fmt()
            .with_env_filter("ccd_cloud::calls=debug")
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_writer(move || writer.clone())
            .init();
        lines
    })
}

struct NoEvents;

impl EventSink for NoEvents {
    fn record(&self, _: &str, _: bool, _: &str, _: &str, _: Option<&str>) {}
}

/// Compute calls the local cloud answered: (reads, mutations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Compute {
    reads: u64,
    mutations: u64,
}

impl Compute {
    fn total(self) -> u64 {
        self.reads + self.mutations
    }

    fn minus(self, before: Compute) -> Compute {
        Compute {
            reads: self.reads - before.reads,
            mutations: self.mutations - before.mutations,
        }
    }
}

/// One pass's cost, and the calls it made.
struct Pass {
    at: Duration,
    compute: Compute,
    adapter: ApiCalls,
    lines: String,
}

fn adapter_total(c: &ApiCalls) -> u64 {
    c.reads + c.mutations + c.operation_polls
}

fn breakdown(passes: &[Pass]) -> String {
    let mut out = String::new();
    for (i, p) in passes.iter().enumerate() {
        out.push_str(&format!(
            "pass {} at {:.1} s: {} Compute calls ({} reads, {} mutations); the adapter sent {} \
             (IAM included: {} reads, {} mutations, {} operation polls)\n{}",
            i + 1,
            p.at.as_secs_f64(),
            p.compute.total(),
            p.compute.reads,
            p.compute.mutations,
            adapter_total(&p.adapter),
            p.adapter.reads,
            p.adapter.mutations,
            p.adapter.operation_polls,
            p.lines
        ));
    }
    out
}

fn sum(passes: &[Pass]) -> (Compute, ApiCalls) {
    passes
        .iter()
        .fold((Compute::default(), ApiCalls::default()), |(c, a), p| {
            (
                Compute {
                    reads: c.reads + p.compute.reads,
                    mutations: c.mutations + p.compute.mutations,
                },
                ApiCalls {
                    reads: a.reads + p.adapter.reads,
                    mutations: a.mutations + p.adapter.mutations,
                    operation_polls: a.operation_polls + p.adapter.operation_polls,
                },
            )
        })
}

struct Fleet {
    local: LocalCloud,
    http: reqwest::Client,
    cloud: Arc<GceCloud>,
    store: Arc<FolderStore>,
    reconciler: DeployReconciler<GceCloud, FolderStore>,
    _dir: tempfile::TempDir,
}

async fn fleet() -> Fleet {
    let local = LocalCloud::start(Config {
        check_responses: true,
        ..Config::default()
    })
    .await
    .expect("the local cloud starts");
    let token = EndpointToken::new(local.token());
    let cloud = Arc::new(
        GceCloud::new(GceConfig {
            project: "local".to_owned(),
            region: "europe-west1".to_owned(),
            endpoint: Some(local.endpoint()),
            endpoint_token: Some(token.clone()),
            rate_limit_per_sec: 5000.0,
            op_timeout: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(20),
            ..GceConfig::default()
        })
        .await
        .expect("the adapter starts"),
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        token.header().expect("a header"),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Arc::new(FolderStore::new(dir.path()).expect("the folder store opens"));
    let endpoints: ccd_controller::Endpoints = Arc::new(|_, _| Vec::new());
    let reconciler = DeployReconciler::new(
        cloud.clone(),
        store.clone(),
        None,
        Arc::new(NoEvents),
        endpoints,
    );
    Fleet {
        local,
        http,
        cloud,
        store,
        reconciler,
        _dir: dir,
    }
}

impl Fleet {
    async fn status(&self, app: &str) -> Status {
        let bytes = self.store.read_status(app).await.expect("status reads");
        bytes.and_then(|b| Status::parse(&b)).unwrap_or_default()
    }

    /// The local cloud's counters, as the benchmark reads them.
    async fn compute(&self) -> Compute {
        let url = format!("{}/admin/v1/status", self.local.endpoint());
        let status: serde_json::Value = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the admin status answers")
            .json()
            .await
            .expect("JSON");
        Compute {
            reads: status["calls"]["reads"].as_u64().expect("calls.reads"),
            mutations: status["calls"]["mutations"]
                .as_u64()
                .expect("calls.mutations"),
        }
    }

    /// Passes over a new app until it is Ready: what each cost.
    async fn deploy(&self, app: &str) -> Vec<Pass> {
        let file = SpecFile {
            name: app.to_owned(),
            path: format!("specs/{app}.yaml"),
            bytes: Bytes::from(spec(app).into_bytes()),
            version: format!("sha256:{app}"),
        };
        let desired = Arc::new(desired(&file));
        let lines = call_lines();
        lines.take();
        let start = tokio::time::Instant::now();
        let mut passes = Vec::new();
        loop {
            let (compute, adapter) = (self.compute().await, self.cloud.api_calls());
            let action = self.reconciler.reconcile(app, Some(desired.clone())).await;
            let after = self.cloud.api_calls();
            passes.push(Pass {
                at: start.elapsed(),
                compute: self.compute().await.minus(compute),
                adapter: ApiCalls {
                    reads: after.reads - adapter.reads,
                    mutations: after.mutations - adapter.mutations,
                    operation_polls: after.operation_polls - adapter.operation_polls,
                },
                lines: lines.take(),
            });
            let status = self.status(app).await;
            if status.phase == Phase::Ready {
                return passes;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "{app} not Ready within 90 s; status:\n{}\n{}",
                status.to_yaml(),
                breakdown(&passes)
            );
            let wait = match action {
                Ok(Action::Requeue(d)) => d,
                Ok(Action::AwaitChange) => Duration::from_secs(1),
                Err(e) => panic!("pass failed: {e}\n{}", breakdown(&passes)),
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_app_is_ready_within_ten_compute_calls() {
    let fleet = fleet().await;
    // The fleet's first app also learns the region's zones (once per
    // controller); the benchmark's figure is per app of a thousand.
    let first = fleet.deploy("bench-00001").await;
    let passes = fleet.deploy("bench-00002").await;
    let (compute, adapter) = sum(&passes);
    let report = format!(
        "a new app cost {} Compute calls ({} reads, {} mutations; goal: at most {GOAL}), \
         {} calls in all with its account's IAM calls, in {} passes:\n{}\n\
         the fleet's first app:\n{}",
        compute.total(),
        compute.reads,
        compute.mutations,
        adapter_total(&adapter),
        passes.len(),
        breakdown(&passes),
        breakdown(&first)
    );
    let violations = fleet.local.conformance_violations();
    fleet.local.shutdown().await;
    assert!(violations.is_empty(), "{violations:?}");
    assert!(compute.total() <= GOAL, "{report}");
    // Creating the app is one pass; the rest only look at its group.
    for (i, p) in passes.iter().enumerate().skip(1) {
        assert_eq!(
            (p.compute.total(), adapter_total(&p.adapter)),
            (1, 1),
            "pass {} does more than read the group's members:\n{report}",
            i + 1
        );
    }
    eprintln!("{report}");
}
