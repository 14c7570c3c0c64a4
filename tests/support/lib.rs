//! Shared by the end-to-end tests: finding the real binaries, starting them,
//! and waiting for what a user would wait for.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support fails loudly

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The folder cargo put this test's binaries in (`.../debug`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

/// Where a test keeps what a person may want to look at afterwards
/// (screenshots): `target/<profile>/artifacts/<name>`, left in place.
pub fn artifacts_dir(name: &str) -> PathBuf {
    profile_dir().join("artifacts").join(name)
}

pub mod agents;
pub mod browser;
pub mod chaos;
pub mod fake_gcs;
pub mod ha;
pub mod load;
pub mod notifications;
pub mod rollout;
pub mod up;

/// A workspace binary, brought up to date once per test process: this
/// crate does not depend on the binaries, so cargo would not rebuild them.
/// `CCD_E2E_PREBUILT=1` skips that build, for a run of one test after
/// `cargo build -p ccd -p ccd-sample-app` (the build covers the whole
/// workspace's tests, far more than one test needs).
pub fn binary(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        if std::env::var_os("CCD_E2E_PREBUILT").is_some_and(|v| !v.is_empty()) {
            return;
        }
        let status = nested_cargo()
            // The same targets as `cargo test --workspace` builds (so the
            // same features): under `make test` the binaries it built are
            // fresh, not rebuilt a second way.
            .args(["build", "--workspace", "--tests", "--bins"])
            .env(
                "CARGO_TARGET_DIR",
                profile_dir().parent().expect("target dir"),
            )
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    profile_dir().join(name)
}

/// A free loopback directory for one test's state.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccd-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A client for the local cloud's API: its token on every request, as
/// every call but the metadata server's needs. Only for the local cloud:
/// apps and load balancers get a plain client.
pub fn cloud_client(token: &str) -> reqwest::Client {
    authorized(token, reqwest::Client::builder())
}

/// `builder`'s client with the local cloud's token on every request.
pub fn authorized(token: &str, builder: reqwest::ClientBuilder) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("a token is header-safe");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    builder
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// The token a `token: ...` line names: a file (with `--data`), else the token itself.
pub fn token_from_line(value: &str) -> Result<String> {
    if !value.contains('/') {
        return Ok(value.to_owned());
    }
    let text = std::fs::read_to_string(value).with_context(|| format!("cannot read {value}"))?;
    Ok(text.trim().to_owned())
}

/// `ccd localcloud` on a free port with its data in `data`. Dropping it
/// stops it with SIGTERM, so it stops its instances' processes too.
#[derive(Debug)]
pub struct LocalCloudProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT/compute/v1/`
    pub compute: String,
    pub base: String,
    /// The file it printed (`token: DATA/token`).
    pub token_file: PathBuf,
    pub token: String,
}

impl LocalCloudProcess {
    pub async fn start(data: &std::path::Path) -> Result<Self> {
        Self::start_with(data, &[], &[]).await
    }

    /// The same with extra arguments and environment variables.
    pub async fn start_with(
        data: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::start_of(&binary("ccd"), data, extra, env).await
    }

    /// The same with a given `ccd` binary (a release build, for benchmarks).
    pub async fn start_of(
        ccd: &std::path::Path,
        data: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut child = Command::new(ccd)
            .args(["localcloud", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(
                data.join("localcloud.log"),
            )?))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start ccd localcloud")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let (compute, token_file) = tokio::time::timeout(Duration::from_secs(60), async {
            let mut compute = None;
            loop {
                match lines.next_line().await? {
                    Some(line) => {
                        if let Some(url) = line.strip_prefix("compute api: ") {
                            compute = Some(url.to_owned());
                        }
                        if let (Some(compute), Some(file)) =
                            (&compute, line.strip_prefix("token: "))
                        {
                            return anyhow::Ok((compute.clone(), PathBuf::from(file)));
                        }
                    }
                    None => bail!("ccd localcloud exited before it was ready"),
                }
            }
        })
        .await
        .context("ccd localcloud did not print its address and token")??;
        let base = compute.trim_end_matches("/compute/v1/").to_owned();
        let token = token_from_line(&token_file.to_string_lossy())?;
        Ok(LocalCloudProcess {
            child,
            compute,
            base,
            token_file,
            token,
        })
    }

    /// A client for its API (the token on every request).
    pub fn http(&self) -> reqwest::Client {
        cloud_client(&self.token)
    }

    /// Its `/admin/v1/status`: calls answered by kind, injected faults.
    pub async fn admin_status(&self) -> Result<serde_json::Value> {
        Ok(self
            .http()
            .get(format!("{}/admin/v1/status", self.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The Compute API of `project`.
    pub fn api(&self, project: &str) -> Api {
        Api {
            http: self.http(),
            project: format!("{}projects/{project}", self.compute),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

impl Drop for LocalCloudProcess {
    fn drop(&mut self) {
        let Some(pid) = self.child.id() else { return };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // Reap it if it is our zombie; `try_wait` never blocks.
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Polls `check` until it returns Some, or fails after `limit` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            bail!("gave up waiting for {what} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small JSON client for the Compute API.
#[derive(Clone, Debug)]
pub struct Api {
    pub http: reqwest::Client,
    pub project: String,
}

impl Api {
    /// `token`: the local cloud's.
    pub fn new(compute: &str, project: &str, token: &str) -> Self {
        Api {
            http: cloud_client(token),
            project: format!("{compute}projects/{project}"),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let url = format!("{}/{path}", self.project);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {url}: {status}: {value}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

/// A nested `cargo` that sees the environment a shell would give it: the
/// variables cargo sets for a running test (its package's name, manifest
/// folder, `OUT_DIR`...) are watched by build scripts (ring's), so left in
/// place they make the nested build rebuild half the workspace.
fn nested_cargo() -> std::process::Command {
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || matches!(
                &*k,
                "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_tests {
            cargo.env_remove(&key);
        }
    }
    cargo
}
