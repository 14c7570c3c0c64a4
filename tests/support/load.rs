//! A steady client load through a load balancer, as users would send it:
//! every request counted, every failure kept (no connection, a timeout, or
//! any answer but 200), and the version that answered each one tallied.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub sent: u64,
    pub failed: u64,
    /// Answers by the version the app said it is.
    pub versions: BTreeMap<String, u64>,
    /// The first failures, in words.
    pub failures: Vec<String>,
}

impl LoadStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &LoadStats) -> LoadStats {
        let mut versions = self.versions.clone();
        for (v, n) in &earlier.versions {
            if let Some(m) = versions.get_mut(v) {
                *m = m.saturating_sub(*n);
            }
        }
        versions.retain(|_, n| *n > 0);
        LoadStats {
            sent: self.sent - earlier.sent,
            failed: self.failed - earlier.failed,
            versions,
            failures: self.failures[earlier.failures.len().min(self.failures.len())..].to_vec(),
        }
    }

    /// The share of answers from `version`, in percent.
    pub fn share(&self, version: &str) -> f64 {
        let total: u64 = self.versions.values().sum();
        if total == 0 {
            return 0.0;
        }
        100.0 * *self.versions.get(version).unwrap_or(&0) as f64 / total as f64
    }
}

#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<LoadStats>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// `clients` loops, each sending `GET url` one after another with `pause` between.
    pub fn start(url: &str, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(LoadStats::default()));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop, stats) = (url.to_owned(), stop.clone(), stats.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .unwrap_or_default();
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = one(&http, &url).await;
                        record(&stats, outcome);
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load { stop, stats, tasks }
    }

    pub fn snapshot(&self) -> LoadStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the clients once their requests in flight are answered.
    pub async fn stop(self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats.clone()
    }
}

fn record(stats: &Mutex<LoadStats>, outcome: Result<String, String>) {
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    s.sent += 1;
    match outcome {
        Ok(version) => *s.versions.entry(version).or_default() += 1,
        Err(why) => {
            s.failed += 1;
            if s.failures.len() < 50 {
                s.failures.push(why);
            }
        }
    }
}

async fn one(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{status}, body cut: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            body.chars().take(120).collect::<String>()
        ));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| format!("200 but not the app: {body:.80}"))?;
    Ok(json["version"].as_str().unwrap_or("?").to_owned())
}
