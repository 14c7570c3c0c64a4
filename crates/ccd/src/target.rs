//! Where a command finds the specs' store and the cloud: the data folder of
//! `ccd up` (`--data DIR`, the default `.ccd`), or the production
//! controller's configuration (`--config FILE`: its bucket, project and
//! region).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ccd_cloud::{GceCloud, GceConfig};
use ccd_store::{AnyStore, FolderStore, StoreUrl};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The data folder `ccd up` uses.
    #[arg(long, conflicts_with = "config")]
    data: Option<PathBuf>,
    /// The production controller's configuration (`ccd controller --config`).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// What `ccd up` leaves in its data folder while it runs, so other commands
/// find its local cloud.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpFile {
    pub endpoint: String,
    pub project: String,
    pub region: String,
    pub pid: u32,
}

pub const UP_FILE: &str = "up.json";

impl Target {
    fn data(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(|| PathBuf::from(".ccd"))
    }

    /// Where the local cloud of `ccd up` keeps its secrets; `None` with
    /// `--config` (Secret Manager's).
    pub fn local_secrets(&self) -> Option<PathBuf> {
        self.is_local()
            .then(|| crate::up::cloud_dir(&self.data()).join("secrets"))
    }

    /// The controller's configuration file, with `--config`.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// The data folder of `ccd up`; `None` with `--config`.
    pub fn local_data(&self) -> Option<PathBuf> {
        self.is_local().then(|| self.data())
    }

    /// The local cloud of `ccd up`, rather than Compute Engine.
    pub fn is_local(&self) -> bool {
        self.config.is_none()
    }

    /// Where, in words: for messages.
    pub fn describe(&self) -> String {
        match &self.config {
            Some(c) => format!("the controller configured by {}", c.display()),
            None => format!("ccd up --data {}", self.data().display()),
        }
    }

    pub fn store(&self) -> anyhow::Result<AnyStore> {
        match &self.config {
            Some(path) => {
                let config = crate::controller::load(path)?;
                let url: StoreUrl = config
                    .store
                    .parse()
                    .with_context(|| format!("store {:?}", config.store))?;
                AnyStore::open(&url).context("cannot open the store")
            }
            None => {
                let data = self.data();
                if !data.is_dir() {
                    bail!(
                        "{} is not a folder: give the data folder `ccd up --data` uses (default .ccd), or --config FILE for a controller's store",
                        data.display()
                    );
                }
                if !data.join("specs").is_dir() {
                    bail!(
                        "{} has no specs folder: is this the folder `ccd up --data` uses? (or give --config FILE)",
                        data.display()
                    );
                }
                Ok(AnyStore::Folder(
                    FolderStore::new(&data).context("cannot open the data folder")?,
                ))
            }
        }
    }

    /// The cloud the controller deploys to, for reading.
    pub async fn cloud(&self) -> anyhow::Result<GceCloud> {
        let config = match &self.config {
            Some(path) => {
                let c = crate::controller::load(path)?;
                GceConfig {
                    endpoint_token: c.endpoint_token()?,
                    project: c.project,
                    region: c.region,
                    endpoint: c.endpoint,
                    app_accounts: c.app_service_accounts,
                    ..GceConfig::default()
                }
            }
            None => {
                let data = self.data();
                let up = read_up_file(&data)?;
                GceConfig {
                    project: up.project,
                    region: up.region,
                    endpoint: Some(up.endpoint),
                    endpoint_token: Some(crate::controller::read_token(&crate::up::token_file(
                        &data,
                    ))?),
                    ..GceConfig::default()
                }
            }
        };
        GceCloud::new(config)
            .await
            .context("cannot set up the Compute client")
    }
}

fn read_up_file(data: &Path) -> anyhow::Result<UpFile> {
    let path = data.join(UP_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is missing: is `ccd up --data {}` running? Start it, or give --config FILE",
            path.display(),
            data.display()
        )
    })?;
    let up: UpFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not ccd up's file", path.display()))?;
    if !Path::new(&format!("/proc/{}", up.pid)).exists() {
        bail!(
            "ccd up (pid {}) for {} is not running any more; start it again",
            up.pid,
            data.display()
        );
    }
    Ok(up)
}

/// Written by `ccd up` once its local cloud answers; removed when it stops.
pub fn write_up_file(data: &Path, up: &UpFile) -> anyhow::Result<()> {
    let path = data.join(UP_FILE);
    let text = serde_json::to_string_pretty(up)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
