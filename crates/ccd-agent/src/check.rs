//! Running the app's health check once.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
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
        }
    }
}

impl Probe for Check {
    async fn check(&self) -> Result<(), String> {
        let within = |what: String| format!("{what} within {:?}", self.timeout);
        match &self.config {
            CheckConfig::Http { port, path } => {
                let url = format!("http://{}:{port}{path}", Ipv4Addr::LOCALHOST);
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
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("port {port}: {e}")),
                    Err(_) => Err(within(format!("port {port}: no connection"))),
                }
            }
            CheckConfig::Exec { command } => {
                let Some((program, args)) = command.split_first() else {
                    return Err("no command to run".to_owned());
                };
                let child = tokio::process::Command::new(program)
                    .args(args)
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
