//! A headless Chromium driven over WebDriver (Debian's chromium and
//! chromium-driver, installed by `tests/scripts/need.sh` when missing), as
//! the dashboard's tests use it: open a URL, read the page, click, and keep
//! a screenshot of what was seen.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug)]
pub struct Browser {
    _driver: Child,
    http: reqwest::Client,
    session: String,
}

fn needed(command: &str, package: &str) -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/need.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([command, package])
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

impl Browser {
    /// chromedriver on a free port, and a headless Chromium session.
    pub async fn start() -> Result<Browser> {
        let chromium = needed("chromium", "chromium")?;
        let driver = needed("chromedriver", "chromium-driver")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start chromedriver")?;
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("chromedriver did not answer on port {port}");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"]}
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let id = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {created}"))?;
        Ok(Browser {
            _driver: child,
            http,
            session: format!("{base}/session/{id}"),
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if !body.is_null() {
            req = req.json(&body);
        }
        let answer: Value = req.send().await?.json().await?;
        if answer["value"]["error"].is_string() {
            bail!("webdriver {path}: {}", answer["value"]);
        }
        Ok(answer["value"].clone())
    }

    pub async fn open(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await?;
        Ok(())
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub async fn run(&self, script: &str) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The text of the element `css` selects, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.innerText : null;",
            serde_json::to_string(css).ok()?
        );
        self.run(&script).await.ok()?.as_str().map(str::to_owned)
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        let id = found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element {css}"))?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await?;
        Ok(())
    }

    /// Ends the session: Chromium exits with it.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }

    /// Keeps a screenshot of the page as `file` (PNG).
    pub async fn screenshot(&self, file: &Path) -> Result<()> {
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().context("no screenshot")?)?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(file, bytes)?;
        Ok(())
    }
}
