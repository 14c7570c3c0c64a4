//! `--server URL --token-file FILE`: `ccd status`, `events`, `plan` and
//! `rollout` as clients of a controller's REST API (`ccd-api`), for a
//! controller on another machine. The API's error bodies become the
//! command's message.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// A controller's REST API (its `api:` line), instead of --data or --config.
    #[arg(long, requires = "token_file", conflicts_with_all = ["data", "config"])]
    server: Option<String>,
    /// The file holding an API token (ccd up writes DATA/api-token; `ccd token create` makes more).
    #[arg(long, requires = "server")]
    token_file: Option<PathBuf>,
}

/// A controller's API, with the token to call it.
#[derive(Debug)]
pub struct Remote {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl RemoteArgs {
    /// The `--server` URL, if given.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// The API to talk to, when `--server` is given.
    pub fn remote(&self) -> anyhow::Result<Option<Remote>> {
        let (Some(server), Some(file)) = (&self.server, &self.token_file) else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!(
                "--server {server:?}: an http:// or https:// URL, as ccd up's `api:` line prints"
            );
        }
        Ok(Some(Remote {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            base,
            token: token.trim().to_owned(),
        }))
    }
}

impl Remote {
    pub fn describe(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Value> {
        let mut req = self.http.post(self.url(path));
        if let Some(body) = body {
            req = req.header("content-type", "application/yaml").body(body);
        }
        self.send(req).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the API at {}", self.base))?;
        let code = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !code.is_success() {
            let mut message = body["error"]
                .as_str()
                .map_or_else(|| format!("the API answered {code}"), str::to_owned);
            if let Some(problems) = body["problems"].as_array() {
                for p in problems.iter().filter_map(Value::as_str) {
                    message.push_str(&format!("\n{p}"));
                }
            }
            bail!("{message}");
        }
        Ok(body)
    }
}
