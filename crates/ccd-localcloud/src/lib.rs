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
pub mod front_door;
mod generic;
mod geo;
mod guard;
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
mod token;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use faults::FaultConfig;
pub use guest::{Guest, Vm};
/// How this cloud reads a template's `ccd-local-run` and `ccd-secrets` items, for tests that
/// check it reads what ccd's adapter writes.
pub use local_run::of_template as local_run_of_template;
pub use local_run::{LocalRun, METADATA_KEY as LOCAL_RUN_METADATA_KEY};
pub use runtime::lb::ListenerInfo;
pub use secrets::{Reference as SecretReference, of_template as secret_references_of_template};
pub use token::{FILE as TOKEN_FILE, TokenError};

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
    #[error(transparent)]
    Token(#[from] TokenError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where state, instance logs, secrets (`DIR/secrets`) and the API's
    /// token (`DIR/token`) live; `None` keeps everything in memory, simulates
    /// every instance, has no secrets and draws a new token each start.
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

/// Every endpoint on one port: Compute, the metadata server, Monitoring,
/// IAM and the admin API, each request through the [guard](guard) first.
fn router(
    cloud: Arc<cloud::Cloud>,
    iam: iam::Iam,
    instances: runtime::instances::Instances,
    guard: guard::Guard,
) -> axum::Router {
    axum::Router::new()
        .route("/compute/v1/{*path}", axum::routing::any(api::handle))
        .with_state(cloud.clone())
        .merge(metadata::router(cloud.clone()))
        .merge(monitoring::router(cloud.clone()))
        .merge(iam::router(iam))
        .merge(admin::router(admin::AdminState { cloud, instances }))
        // Every route, and the 404 for none, behind the token, Host,
        // Origin and Content-Type checks.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            guard::check,
        ))
}

/// A running local cloud.
#[derive(Debug)]
pub struct LocalCloud {
    addr: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: tokio::task::JoinHandle<()>,
    cloud: std::sync::Arc<cloud::Cloud>,
    token: String,
    token_file: Option<PathBuf>,
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
        let (token, token_file) = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| Error::Dir {
                    path: dir.clone(),
                    source,
                })?;
                let (token, file) = token::load_or_create(dir)?;
                (token, Some(file))
            }
            None => (token::fresh()?, None),
        };
        let (store, supervisor, dir) = match &config.data_dir {
            Some(dir) => {
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
        let guard = guard::Guard::new(token.clone(), token_file.clone(), addr);
        let app = router(cloud, iam, instances, guard);
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
            token,
            token_file,
        })
    }

    /// The bearer token every call but the metadata server's must carry
    /// (`Authorization: Bearer TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Where the token is kept (`DATA/token`); `None` without a data folder.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
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
