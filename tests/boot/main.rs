//! The boot test: the startup script ccd writes into an app's instance
//! template, run as Compute Engine runs it on Container-Optimized OS, on a
//! host whose firewall drops inbound traffic as COS's does (a network
//! namespace of this test's own). `docker` and `docker-credential-gcr` are
//! doubles (`fake-*.sh` here) that run the sample app and fail their first
//! calls, so the script's retries are exercised. The app must answer from
//! outside the host on its port, and the health check's port must be open
//! too, while a port the script did not open stays closed.
//!
//! Needs root (for `ip netns` and iptables); without it the test fails and
//! says so. iptables comes from `tests/scripts/need.sh iptables`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

mod netns;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ccd_e2e::up::Up;
use ccd_e2e::{binary, eventually, temp_dir};
use netns::Host;

const APP_PORT: u16 = 8080;
/// The spec's health check probes this port, not the app's.
const HEALTH_PORT: u16 = 9001;
/// Nothing asks for this one: it must stay closed.
const CLOSED_PORT: u16 = 9002;
const IMAGE: &str = "europe-docker.pkg.dev/acme/apps/boot:1.0.0";
/// Shell-hostile on purpose: it must reach the app byte for byte.
const GREETING: &str = r#"it's "boot" $HOME `x`"#;

fn spec() -> String {
    format!(
        "apiVersion: ccd/v1
kind: App
metadata: {{name: boot}}
spec:
  image: {IMAGE}
  version: 1.0.0
  port: {APP_PORT}
  env: {{SAMPLE_EXPOSE_ENV: '1', GREETING: '{greeting}'}}
  health: {{tcp: {{port: {HEALTH_PORT}}}}}
",
        greeting = GREETING.replace('\'', "''"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_script_serves_the_app_through_a_cos_host_firewall() {
    netns::preflight().unwrap();
    iptables().unwrap();
    let app = binary("ccd-sample-app");
    let dir = temp_dir("boot");
    let template = template_through_the_local_cloud(&dir).await.unwrap();
    let script = item(&template, "startup-script").expect("a startup script");
    assert_eq!(
        item(&template, "google-logging-enabled").as_deref(),
        Some("true")
    );
    std::fs::write(dir.join("startup-script"), &script).unwrap();
    let bin = doubles(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();

    let mut host = Host::create().unwrap();
    for port in [HEALTH_PORT, CLOSED_PORT] {
        // Stand-ins for the app's health endpoint and for anything else on the host.
        let mut listener = host.command(app.to_str().unwrap());
        listener.args(["--port", &port.to_string()]);
        host.spawn(listener).unwrap();
    }
    // A new connection for every request: one kept alive would pass the
    // firewall as ESTABLISHED whatever its rules say now.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let url = |port: u16| format!("http://{}:{port}", host.inside);
    for port in [HEALTH_PORT, CLOSED_PORT] {
        eventually("the listener inside", Duration::from_secs(30), || async {
            host.listens(port).then_some(())
        })
        .await
        .unwrap();
        assert_dropped(&http, &url(port), "before the script").await;
    }

    // First boot: the credential helper fails once, the pull twice, the run once.
    let out = boot(&host, &dir, &bin, &state, &app).await.unwrap();
    let calls = std::fs::read_to_string(state.join("calls")).unwrap();
    assert_eq!(count(&calls, &format!("docker pull {IMAGE}")), 3, "{calls}");
    assert_eq!(count(&calls, "docker run -d --name app"), 2, "{calls}");
    assert_eq!(
        count(&calls, "docker-credential-gcr configure-docker"),
        2,
        "{calls}"
    );
    for (what, delays) in [("pulling", "1s 2s"), ("starting the app", "1s")] {
        for (n, delay) in delays.split(' ').enumerate() {
            let line = format!("ccd: {what}");
            let again = format!("(try {}); trying again in {delay}", n + 1);
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&line) && l.ends_with(&again)),
                "no `{line} ... {again}` in:\n{out}"
            );
        }
    }

    // The app answers from outside, with its env as the spec wrote it.
    let first = answer(&http, &url(APP_PORT)).await.unwrap();
    assert_eq!(first["app"], "boot", "{first}");
    assert_eq!(first["version"], "1.0.0", "{first}");
    let greeting = get(&http, &format!("{}/env/GREETING", url(APP_PORT)))
        .await
        .unwrap();
    assert_eq!(greeting["sha256"], sha256(GREETING), "{greeting}");
    // So does the health check's port; nothing else was opened.
    let health = http
        .get(format!("{}/healthz", url(HEALTH_PORT)))
        .send()
        .await;
    let health = health.expect("the health check's port is open");
    assert_eq!(health.status(), 200);
    assert_dropped(&http, &url(CLOSED_PORT), "after the script").await;

    // The script runs at every boot: once more, each port is opened once
    // and a new container replaces the old one.
    boot(&host, &dir, &bin, &state, &app).await.unwrap();
    let rules = host.sh(&["iptables", "-w", "-S", "INPUT"]).unwrap();
    for port in [APP_PORT, HEALTH_PORT] {
        let rule = format!("--dport {port} -j ACCEPT");
        assert_eq!(count(&rules, &rule), 1, "{rules}");
    }
    let second = answer(&http, &url(APP_PORT)).await.unwrap();
    assert_ne!(first["pid"], second["pid"], "the container was replaced");

    // Without the script's rule, the app would be out of reach.
    let port = APP_PORT.to_string();
    host.sh(&[
        "iptables", "-w", "-D", "INPUT", "-p", "tcp", "--dport", &port, "-j", "ACCEPT",
    ])
    .unwrap();
    assert!(host.listens(APP_PORT), "the app still serves inside");
    assert_dropped(&http, &url(APP_PORT), "without the rule").await;
}

/// The `ccd up` user's way to a template: the spec into the folder, then
/// the template the controller made, read back from the local cloud.
async fn template_through_the_local_cloud(dir: &Path) -> Result<serde_json::Value> {
    let data = dir.join("up");
    std::fs::create_dir_all(data.join("specs"))?;
    std::fs::write(data.join("specs/boot.yaml"), spec())?;
    let up = Up::start(&data, &[]).await?;
    let http = ccd_e2e::authorized(&up.token, reqwest::Client::builder().no_proxy());
    let list = format!("{}projects/local/global/instanceTemplates", up.compute);
    eventually("the app's template", Duration::from_secs(60), || async {
        let page: serde_json::Value = http.get(&list).send().await.ok()?.json().await.ok()?;
        page["items"]
            .as_array()?
            .iter()
            .find(|t| t["name"].as_str().is_some_and(|n| n.starts_with("boot-")))
            .cloned()
    })
    .await
}

/// A metadata item of a template.
fn item(template: &serde_json::Value, key: &str) -> Option<String> {
    template["properties"]["metadata"]["items"]
        .as_array()?
        .iter()
        .find(|i| i["key"] == key)?["value"]
        .as_str()
        .map(str::to_owned)
}

/// The folder of the doubles, named as the commands they stand for.
fn doubles(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("boot");
    for (double, name) in [
        ("fake-docker.sh", "docker"),
        ("fake-docker-credential-gcr.sh", "docker-credential-gcr"),
    ] {
        let to = bin.join(name);
        std::fs::copy(here.join(double), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Runs the startup script in the host as COS does, as root with bash, the
/// doubles first on PATH. `/var/lib` (where it keeps Docker's credentials
/// config) is a tmpfs of its own, so the test writes nothing outside `dir`.
async fn boot(host: &Host, dir: &Path, bin: &Path, state: &Path, app: &Path) -> Result<String> {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = tokio::process::Command::from(host.command("unshare"));
    command
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs ccd-boot /var/lib && exec bash \"$0\"",
        ])
        .arg(dir.join("startup-script"))
        .env("PATH", path)
        .env("CCD_BOOT_STATE", state)
        .env("CCD_BOOT_APP", app)
        .env("CCD_BOOT_FAIL_CREDS", "1")
        .env("CCD_BOOT_FAIL_PULLS", "2")
        .env("CCD_BOOT_FAIL_RUNS", "1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .context("the startup script still runs after 2 minutes")??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the startup script failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

/// The app's JSON at `url`, once it answers (it may still be starting).
async fn answer(http: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    eventually(
        &format!("{url} to answer"),
        Duration::from_secs(30),
        || async { get(http, url).await.ok() },
    )
    .await
}

async fn get(http: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let response = http.get(url).send().await?.error_for_status()?;
    Ok(response.json().await?)
}

/// A connection to `url` gets no answer at all: the firewall dropped it
/// (a refusal would mean nothing listens, which proves nothing).
async fn assert_dropped(http: &reqwest::Client, url: &str, when: &str) {
    match http.get(url).send().await {
        Ok(r) => panic!(
            "{url} answered {} {when}; the firewall should drop it",
            r.status()
        ),
        Err(e) => assert!(e.is_timeout(), "{url} {when}: {e:?}, not a timeout"),
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

fn sha256(text: &str) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// iptables, installed by the project's script when missing.
fn iptables() -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/need.sh");
    let status = Command::new("bash").arg(&script).arg("iptables").status()?;
    if !status.success() {
        bail!(
            "{} could not provide iptables (its message is above)",
            script.display()
        );
    }
    Ok(())
}
