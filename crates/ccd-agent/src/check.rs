//! Running the app's health check once.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use crate::config::CheckConfig;

/// One run of a health check: `Ok` when it passed, else the answer in words.
pub trait Probe: Send + Sync + 'static {
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// The check the configuration names, against the app on this instance.
#[derive(Debug, Clone)]
pub struct Check {
    config: CheckConfig,
    timeout: Duration,
    http: reqwest::Client,
    /// The app's address: the loopback address on a VM (the app shares
    /// the host's network), the instance's own address in the local cloud.
    host: IpAddr,
    /// Put before an exec check's command to run it inside the app
    /// (`docker exec CONTAINER` on Compute Engine).
    exec_prefix: Vec<String>,
    /// The environment an exec check runs with (the app's, in the local cloud).
    exec_env: BTreeMap<String, String>,
}

impl Check {
    pub fn new(config: CheckConfig, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Check {
            config,
            timeout,
            http,
            host: Ipv4Addr::LOCALHOST.into(),
            exec_prefix: Vec::new(),
            exec_env: BTreeMap::new(),
        }
    }

    /// Checks the app at this address instead of the loopback address.
    pub fn on(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// Runs exec checks through this command (e.g. `docker exec NAME`).
    pub fn exec_through(mut self, prefix: Vec<String>) -> Self {
        self.exec_prefix = prefix;
        self
    }

    /// Runs exec checks with these variables added to the agent's environment.
    pub fn exec_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.exec_env = env;
        self
    }
}

impl Probe for Check {
    async fn check(&self) -> Result<(), String> {
        let within = |what: String| format!("{what} within {:?}", self.timeout);
        match &self.config {
            CheckConfig::Http { port, path } => {
                let url = format!("http://{}{path}", SocketAddr::from((self.host, *port)));
                match self.http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("GET {path}: HTTP {}", r.status().as_u16())),
                    Err(e) if e.is_timeout() => Err(within(format!("GET {path}: no answer"))),
                    Err(e) if e.is_connect() => {
                        Err(format!("GET {path}: port {port} refused the connection"))
                    }
                    Err(e) => Err(format!("GET {path}: {e}")),
                }
            }
            CheckConfig::Tcp { port } => {
                let addr = SocketAddr::from((self.host, *port));
                match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("port {port}: {e}")),
                    Err(_) => Err(within(format!("port {port}: no connection"))),
                }
            }
            CheckConfig::Exec { command } => {
                let Some(program) = command.first() else {
                    return Err("no command to run".to_owned());
                };
                let mut full = self.exec_prefix.iter().chain(command);
                let Some(run) = full.next() else {
                    return Err("no command to run".to_owned());
                };
                let child = tokio::process::Command::new(run)
                    .args(full)
                    .envs(&self.exec_env)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn();
                let child = match child {
                    Ok(c) => c,
                    Err(e) => return Err(format!("{program}: {e}")),
                };
                match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
                    Ok(Ok(out)) if out.status.success() => Ok(()),
                    Ok(Ok(out)) => {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let last = stderr.lines().last().unwrap_or("").trim();
                        let status = match out.status.code() {
                            Some(code) => format!("exit status {code}"),
                            None => "killed by a signal".to_owned(),
                        };
                        Err(if last.is_empty() {
                            format!("{program}: {status}")
                        } else {
                            format!("{program}: {status}: {}", truncate(last, 200))
                        })
                    }
                    Ok(Err(e)) => Err(format!("{program}: {e}")),
                    // Dropping the child kills it.
                    Err(_) => Err(within(format!("{program}: did not finish"))),
                }
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
