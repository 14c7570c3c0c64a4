//! `ccd controller`s with leader election on one fake-gcs-server bucket and
//! one local cloud, as the HA test and the failover benchmark run them.

use std::path::Path;
use std::process::Stdio;

use ccd_controller::status::{Phase, Status};
use ccd_store::{BucketConfig, BucketStore, SpecStore as _};
use tokio::process::{Child, Command};

use crate::LocalCloudProcess;
use crate::fake_gcs::FakeGcs;

pub const BUCKET: &str = "ccd-ha";
pub const PREFIX: &str = "prod";

/// Lease timings in seconds: lease, renewal, renew deadline.
pub type LeaseSeconds = (u64, u64, u64);

/// One `ccd controller --config DIR/NAME.json`, its log in `DIR/NAME.log`
/// and its `/metrics` on a port of its own.
#[derive(Debug)]
pub struct Controller {
    pub name: String,
    pub child: Child,
    metrics: u16,
}

impl Controller {
    pub fn start(
        ccd: &Path,
        dir: &Path,
        name: &str,
        cloud: &LocalCloudProcess,
        gcs: &FakeGcs,
        (lease, renew, deadline): LeaseSeconds,
    ) -> Self {
        let election = serde_json::json!({
            "leaderElection": {"leaseSeconds": lease, "renewSeconds": renew, "renewDeadlineSeconds": deadline},
        });
        Self::start_with(ccd, dir, name, cloud, gcs, &election, &[])
    }

    /// A controller of the bucket at `gs://BUCKET/PREFIX`, with `more` of the
    /// configuration (JSON object keys) and environment variables.
    pub fn start_with(
        ccd: &Path,
        dir: &Path,
        name: &str,
        cloud: &LocalCloudProcess,
        gcs: &FakeGcs,
        more: &serde_json::Value,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_on(ccd, dir, name, cloud, gcs, PREFIX, more, env)
    }

    /// As [`Controller::start_with`], on another prefix of the bucket.
    #[allow(clippy::too_many_arguments)]
    pub fn start_on(
        ccd: &Path,
        dir: &Path,
        name: &str,
        cloud: &LocalCloudProcess,
        gcs: &FakeGcs,
        prefix: &str,
        more: &serde_json::Value,
        env: &[(&str, &str)],
    ) -> Self {
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut config = serde_json::json!({
            "store": format!("gs://{BUCKET}/{prefix}"),
            "project": "local",
            "region": "europe-west1",
            "endpoint": cloud.base,
            "endpointTokenFile": cloud.token_file,
            "events": dir.join(format!("{name}-events.redb")),
            "metricsListen": format!("127.0.0.1:{metrics}"),
            "driftCheckSeconds": 600,
            "apiRequestsPerSecond": 1000,
        });
        if let (Some(config), Some(more)) = (config.as_object_mut(), more.as_object()) {
            config.extend(more.clone());
        }
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, config.to_string()).expect("write the configuration");
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("a log file");
        let child = Command::new(ccd)
            .args(["controller", "--config"])
            .arg(&path)
            .env("STORAGE_EMULATOR_HOST", &gcs.host)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("ccd controller starts");
        Self {
            name: name.to_owned(),
            child,
            metrics,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// A sample from its `/metrics`, `None` while it does not answer.
    pub async fn sample(&self, series: &str) -> Option<u64> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics);
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Whether it leads (`ccd_leader`).
    pub async fn leads(&self) -> Option<bool> {
        self.sample("ccd_leader").await.map(|v| v == 1)
    }

    /// What its adapter sent that changes the cloud.
    pub async fn mutations(&self) -> Option<u64> {
        self.sample(r#"ccd_cloud_api_calls_total{kind="mutation"}"#)
            .await
    }
}

/// The bucket as `ccd status` reads it.
pub fn store(gcs: &FakeGcs) -> BucketStore {
    store_on(gcs, PREFIX)
}

/// [`store`] under another prefix of the bucket.
pub fn store_on(gcs: &FakeGcs, prefix: &str) -> BucketStore {
    BucketStore::new(BucketConfig::fake_gcs_server(
        format!("http://{}", gcs.host),
        BUCKET,
        prefix,
    ))
    .expect("a bucket store")
}

/// Puts `specs/NAME.yaml` into the bucket through the JSON API, as
/// `gcloud storage cp` does.
pub async fn put_spec(gcs: &FakeGcs, name: &str, text: String) -> anyhow::Result<()> {
    put_spec_on(gcs, PREFIX, name, text).await
}

/// [`put_spec`] under another prefix of the bucket.
pub async fn put_spec_on(
    gcs: &FakeGcs,
    prefix: &str,
    name: &str,
    text: String,
) -> anyhow::Result<()> {
    let url = format!("http://{}/upload/storage/v1/b/{BUCKET}/o", gcs.host);
    let object = format!("{prefix}/specs/{name}.yaml");
    let answer = reqwest::Client::new()
        .post(url)
        .query(&[("uploadType", "media"), ("name", object.as_str())])
        .body(text)
        .send()
        .await?;
    anyhow::ensure!(answer.status().is_success(), "upload: {}", answer.status());
    Ok(())
}

/// The app's status in the bucket, `None` while there is none.
pub async fn status(store: &BucketStore, app: &str) -> Option<Status> {
    let bytes = store.read_status(app).await.ok()??;
    Status::parse(&bytes)
}

/// The generation of `PREFIX/status/APP.yaml` in the bucket: it changes
/// with every write, so an unchanged one means nobody wrote.
pub async fn status_generation(gcs: &FakeGcs, app: &str) -> Option<String> {
    let object = format!("{PREFIX}/status/{app}.yaml").replace('/', "%2F");
    let url = format!("http://{}/storage/v1/b/{BUCKET}/o/{object}", gcs.host);
    let meta: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    meta["generation"].as_str().map(str::to_owned)
}

/// The calls the local cloud answered that change it (all callers together).
pub async fn cloud_mutations(cloud: &LocalCloudProcess) -> Option<u64> {
    cloud.admin_status().await.ok()?["calls"]["mutations"].as_u64()
}

/// Waits up to two minutes for `web` to be Ready, serving `version` alone; its status then.
pub async fn web_ready_on(store: &BucketStore, version: &str) -> anyhow::Result<Status> {
    crate::eventually(
        &format!("web to be Ready on version {version}"),
        std::time::Duration::from_secs(120),
        || async {
            let s = status(store, "web").await?;
            (s.phase == Phase::Ready && s.serving == [version]).then_some(s)
        },
    )
    .await
}
