#![allow(clippy::unwrap_used, clippy::expect_used)]
//! HTTPS and host names: a load balancer reached by IP, with a certificate nobody verifies.

mod support;

use std::time::Duration;

use ccd_probe::{ProbeCounts, ProbeTarget, Prober};
use support::{Mode, TestServer, target, wait_prober};

const INTERVAL: Duration = Duration::from_millis(50);
const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_self_signed_certificate_is_accepted_and_the_host_name_is_sent_as_sni_and_host() {
    let server = TestServer::start_tls(Mode::Status(200), "app.example.test").await;
    let prober = Prober::start(
        ProbeTarget {
            host: Some("app.example.test".to_owned()),
            ..target(format!("https://{}", server.addr), INTERVAL, TIMEOUT)
        },
        ProbeCounts::default(),
    )
    .unwrap();
    let counts = wait_prober("answered", &prober, |c| c.sent >= 3).await;
    assert_eq!(counts.failed, 0, "{counts:?}");
    let port = server.addr.port();
    assert!(
        server
            .seen()
            .iter()
            .all(|seen| *seen == (format!("app.example.test:{port}"), "/healthz".to_owned())),
        "{:?}",
        server.seen()
    );
    let names = server.server_names();
    assert!(!names.is_empty());
    assert!(
        names
            .iter()
            .all(|n| n.as_deref() == Some("app.example.test")),
        "{names:?}"
    );
}

#[tokio::test]
async fn without_a_host_name_the_address_is_probed_as_is() {
    // The certificate names something else entirely: still accepted.
    let server = TestServer::start_tls(Mode::Status(200), "elsewhere.test").await;
    let url = format!("https://{}", server.addr);
    let prober = Prober::start(target(url, INTERVAL, TIMEOUT), ProbeCounts::default()).unwrap();
    let counts = wait_prober("answered", &prober, |c| c.sent >= 3).await;
    assert_eq!(counts.failed, 0, "{counts:?}");
    let addr = server.addr.to_string();
    assert!(
        server.seen().iter().all(|(host, _)| *host == addr),
        "{:?}",
        server.seen()
    );
    // No SNI for an IP address.
    assert!(server.server_names().iter().all(Option::is_none));
}

#[tokio::test]
async fn plain_http_sends_the_host_name_too() {
    let server = TestServer::start(Mode::Status(200)).await;
    let prober = Prober::start(
        ProbeTarget {
            host: Some("app.example.test".to_owned()),
            ..target(server.url(), INTERVAL, TIMEOUT)
        },
        ProbeCounts::default(),
    )
    .unwrap();
    wait_prober("answered", &prober, |c| c.sent - c.failed >= 3).await;
    let expected = format!("app.example.test:{}", server.addr.port());
    assert!(
        server.seen().iter().all(|(host, _)| *host == expected),
        "{:?}",
        server.seen()
    );
}

#[tokio::test]
async fn a_plain_http_server_behind_an_https_url_is_a_failure() {
    let server = TestServer::start(Mode::Status(200)).await;
    let url = format!("https://{}", server.addr);
    let prober = Prober::start(target(url, INTERVAL, TIMEOUT), ProbeCounts::default()).unwrap();
    let counts = wait_prober("failed", &prober, |c| c.failed >= 3).await;
    assert_eq!(counts.failed, counts.sent, "{counts:?}");
}
