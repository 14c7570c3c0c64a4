//! `GET /metrics` (Prometheus text) and `GET /healthz` for the controller
//! process: the runtime's reconcile metrics and the cloud calls it sent.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use ccd_bus::{DropReason, Drops};
use ccd_cloud::{ApiCalls, GceCloud};
use ccd_runtime::Metrics;
use ccd_runtime::lease::{ElectorMetrics, Leadership};

/// Serves the metrics on `listen` until the process ends; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    runtime: Vec<Metrics>,
    cloud: Arc<GceCloud>,
    drops: Option<Arc<Drops>>,
    election: Election,
    notices: Option<Arc<crate::notifications::NoticeCounts>>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {listen}"))?;
    let bound = listener.local_addr()?;
    let render = move || {
        let mut out = Metrics::render_all(&runtime);
        render_api_calls(&mut out, cloud.api_calls());
        if let Some(drops) = &drops {
            render_drops(&mut out, drops);
        }
        render_election(&mut out, &election);
        if let Some(notices) = &notices {
            notices.render(&mut out);
        }
        out
    };
    let app = Router::new()
        .route("/metrics", get(move || std::future::ready(render())))
        .route("/healthz", get(|| std::future::ready("ok\n")));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    Ok(bound)
}

/// This process's place in the leader election, for `ccd_leader`.
#[derive(Debug, Clone)]
pub struct Election {
    pub leadership: Leadership,
    /// `None` for a controller alone by configuration.
    pub counts: Option<Arc<ElectorMetrics>>,
}

impl Election {
    pub fn alone() -> Self {
        Self {
            leadership: Leadership::alone(),
            counts: None,
        }
    }
}

fn render_election(out: &mut String, election: &Election) {
    let leading = u8::from(election.leadership.epoch().is_some());
    let _ = writeln!(
        out,
        "# HELP ccd_leader 1 while this process leads (and may change the cloud), 0 on a standby.\n\
         # TYPE ccd_leader gauge\nccd_leader {leading}"
    );
    let Some(counts) = &election.counts else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP ccd_leader_election_total What the leader election saw: acquisitions, leases lost, unreadable lease objects, store errors.\n\
         # TYPE ccd_leader_election_total counter"
    );
    for (event, n) in [
        ("acquired", &counts.acquired),
        ("lost", &counts.lost),
        ("unreadable_lease", &counts.unreadable),
        ("store_error", &counts.store_errors),
    ] {
        let n = n.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "ccd_leader_election_total{{event=\"{event}\"}} {n}");
    }
}

fn render_drops(out: &mut String, drops: &Drops) {
    let _ = writeln!(
        out,
        "# HELP ccd_bus_messages_dropped_total Bus messages dropped as malformed, of an unknown schema, duplicated or stale.\n\
         # TYPE ccd_bus_messages_dropped_total counter"
    );
    for reason in DropReason::ALL {
        let _ = writeln!(
            out,
            "ccd_bus_messages_dropped_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            drops.get(reason)
        );
    }
}

fn render_api_calls(out: &mut String, calls: ApiCalls) {
    let _ = writeln!(
        out,
        "# HELP ccd_cloud_api_calls_total Calls sent to the cloud's API, by kind.\n\
         # TYPE ccd_cloud_api_calls_total counter"
    );
    for (kind, n) in [
        ("read", calls.reads),
        ("mutation", calls.mutations),
        ("operation_poll", calls.operation_polls),
    ] {
        let _ = writeln!(out, "ccd_cloud_api_calls_total{{kind=\"{kind}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_calls_render_as_one_counter_family() {
        let mut out = String::new();
        render_api_calls(
            &mut out,
            ApiCalls {
                reads: 7,
                mutations: 2,
                operation_polls: 3,
            },
        );
        assert_eq!(
            out.matches("# TYPE ccd_cloud_api_calls_total counter")
                .count(),
            1
        );
        assert!(out.contains("ccd_cloud_api_calls_total{kind=\"read\"} 7\n"));
        assert!(out.contains("ccd_cloud_api_calls_total{kind=\"mutation\"} 2\n"));
        assert!(out.contains("ccd_cloud_api_calls_total{kind=\"operation_poll\"} 3\n"));
    }
}
