//! ccd's local cloud: the Compute Engine REST API v1 on localhost, with
//! instances as real processes and load balancers as real proxies.
//!
//! Google's discovery document is the contract (paths, verbs, fields,
//! enums, error shapes); [`LocalCloud::start`] serves it on an address and
//! runs the controllers that make the declared resources real.

mod admin;
mod api;
mod certs;
mod clock;
mod cloud;
mod defaults;
mod error;
mod faults;
mod firewall;
mod generic;
mod geo;
mod guest;
mod handlers;
mod iam;
mod kinds;
mod list;
mod local_run;
mod managed;
mod metadata;
mod migs;
mod monitoring;
mod ops;
mod paths;
mod refs;
mod runtime;
mod secrets;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

pub use faults::FaultConfig;
pub use guest::{Guest, Vm};
pub use local_run::{LocalRun, METADATA_KEY as LOCAL_RUN_METADATA_KEY};
pub use runtime::lb::ListenerInfo;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot prepare {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the instance supervisor: {0}")]
    Supervisor(#[from] ccd_supervisor::Error),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where state, instance logs and secrets (`DIR/secrets`) live; `None`
    /// keeps everything in memory, simulates every instance and has no secrets.
    pub data_dir: Option<PathBuf>,
    pub faults: FaultConfig,
    /// Check every response against the discovery document and keep the
    /// mismatches for [`LocalCloud::conformance_violations`] (tests).
    pub check_responses: bool,
    /// A load balancer on a port below 1024 that cannot be bound (not root)
    /// listens on that port plus this (443 → 8443 with the default 8000).
    pub unprivileged_port_offset: u16,
    /// What runs beside each instance's process, as a VM's startup script
    /// starts ccd's agent beside the app.
    pub guest: Option<std::sync::Arc<dyn Guest>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            faults: FaultConfig::default(),
            check_responses: false,
            unprivileged_port_offset: runtime::lb::DEFAULT_UNPRIVILEGED_OFFSET,
            guest: None,
        }
    }
}

/// A running local cloud.
#[derive(Debug)]
pub struct LocalCloud {
    addr: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: tokio::task::JoinHandle<()>,
    cloud: std::sync::Arc<cloud::Cloud>,
}

impl LocalCloud {
    pub async fn start(config: Config) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
        let (store, supervisor, dir) = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Dir {
                    path: dir.clone(),
                    source,
                })?;
                secrets::prepare(dir).map_err(|source| Error::Dir {
                    path: dir.join("secrets"),
                    source,
                })?;
                let supervisor = ccd_supervisor::Supervisor::new(dir.join("processes"))?;
                let reaped = supervisor.reap_orphans().await?;
                if !reaped.is_empty() {
                    tracing::info!(
                        count = reaped.len(),
                        "stopped processes left by a previous run"
                    );
                }
                (store::Store::open(dir)?, Some(supervisor), dir.clone())
            }
            None => (store::Store::in_memory(), None, std::env::temp_dir()),
        };
        let stop = CancellationToken::new();
        let writer = store.spawn_writer();
        let mut tasks = Vec::new();
        let cloud = cloud::Cloud::new(
            store,
            format!("http://{addr}/compute/v1/"),
            config.check_responses,
        );
        cloud.faults.set(config.faults.clone());
        cloud
            .balancers
            .set_unprivileged_offset(config.unprivileged_port_offset);
        let iam = iam::Iam::new(
            cloud.store.clone(),
            config.data_dir.as_ref().map(|d| d.join("secrets")),
        );
        let keep = cloud.clone();
        let instances = runtime::instances::Instances::new(supervisor, dir, config.guest.clone());
        instances.set_metadata_host(addr.to_string());
        tasks.push(tokio::spawn(runtime::run(
            cloud.clone(),
            instances.clone(),
            stop.clone(),
        )));

        tasks.push(tokio::spawn(monitoring::sample(
            cloud.clone(),
            stop.clone(),
        )));
        let app = axum::Router::new()
            .route("/compute/v1/{*path}", axum::routing::any(api::handle))
            .with_state(cloud.clone())
            .merge(metadata::router(cloud.clone()))
            .merge(monitoring::router(cloud.clone()))
            .merge(iam::router(iam))
            .merge(admin::router(admin::AdminState { cloud, instances }));
        let stop2 = stop.clone();
        tasks.push(tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop2.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the local cloud's API server failed");
            }
        }));
        tracing::info!(%addr, "local cloud ready");
        Ok(LocalCloud {
            addr,
            stop,
            tasks,
            writer,
            cloud: keep,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/compute/v1/`.
    pub fn compute_url(&self) -> String {
        format!("http://{}/compute/v1/", self.addr)
    }

    /// The endpoint to give the official SDK's `with_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where each forwarding rule listens (a privileged port may have been moved up).
    pub fn listeners(&self) -> Vec<ListenerInfo> {
        self.cloud.balancers.listeners()
    }

    /// A handle that reads the listeners while the local cloud runs.
    pub fn listener_view(&self) -> impl Fn() -> Vec<ListenerInfo> + Send + Sync + 'static {
        let cloud = self.cloud.clone();
        move || cloud.balancers.listeners()
    }

    /// Every place a response strayed from the discovery document, when
    /// started with `check_responses`.
    pub fn conformance_violations(&self) -> Vec<String> {
        self.cloud
            .conformance
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Stops serving, stops every instance's process and waits for both.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), task).await;
        }
        // Last, so that what the controllers wrote on their way out is kept.
        self.cloud.store.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), self.writer).await;
    }
}
