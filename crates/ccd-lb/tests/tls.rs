//! HTTPS frontends: ALPN h2/http1.1, SNI certificate choice, certificates replaced live.
// Helpers outside #[test] functions unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use ccd_lb::{
    CertificatePem, Frontend, FrontendConfig, HealthState, RouteAction, UrlMap,
    self_signed_certificate,
};
use common::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client that trusts only `root` and resolves `domain` to the frontend.
fn tls_client(root: &CertificatePem, domain: &str, frontend: SocketAddr) -> reqwest::ClientBuilder {
    let root = reqwest::Certificate::from_pem(root.cert_chain_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve(domain, frontend)
}

async fn https_frontend(certificates: Vec<CertificatePem>) -> (Frontend, TestBackend) {
    let a = TestBackend::start("a").await;
    let sick = TestBackend::start("sick").await;
    sick.set_healthy(false);
    let service = start_service("web", &[&a, &sick]);
    wait_for_health(&service, "a", HealthState::Healthy).await;
    wait_for_health(&service, "sick", HealthState::Unhealthy).await;
    let frontend = Frontend::bind(
        FrontendConfig::https("fr-https", localhost(), certificates),
        &UrlMap::new(RouteAction::service(service)),
    )
    .await
    .unwrap();
    (frontend, a)
}

#[tokio::test]
async fn https_negotiates_http2_and_reaches_healthy_backends_only() {
    let certificate = self_signed_certificate(&["app.test".to_owned()]).unwrap();
    let (frontend, _backend) = https_frontend(vec![certificate.clone()]).await;
    let url = format!("https://app.test:{}/", frontend.local_addr().port());

    let h2 = tls_client(&certificate, "app.test", frontend.local_addr())
        .build()
        .unwrap();
    for _ in 0..10 {
        let response = h2.get(&url).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-seen-proto"], "https");
        assert_eq!(response.text().await.unwrap(), "a");
    }

    let h1 = tls_client(&certificate, "app.test", frontend.local_addr())
        .http1_only()
        .build()
        .unwrap();
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "a");
}

/// The DER of the leaf certificate the frontend serves to a handshake for `server_name`.
async fn served_certificate(frontend: &Frontend, server_name: &str) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .resolve(server_name, frontend.local_addr())
        .build()
        .unwrap();
    let url = format!("https://{server_name}:{}/", frontend.local_addr().port());
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let tls = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .unwrap();
    tls.peer_certificate().unwrap().to_vec()
}

fn leaf_der(certificate: &CertificatePem) -> Vec<u8> {
    CertificateDer::from_pem_slice(certificate.cert_chain_pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn certificate_is_chosen_by_sni_with_the_first_as_default() {
    let first = self_signed_certificate(&["first.test".to_owned()]).unwrap();
    let second = self_signed_certificate(&["*.second.test".to_owned()]).unwrap();
    let (frontend, _backend) = https_frontend(vec![first.clone(), second.clone()]).await;

    assert_eq!(
        served_certificate(&frontend, "first.test").await,
        leaf_der(&first)
    );
    assert_eq!(
        served_certificate(&frontend, "www.second.test").await,
        leaf_der(&second)
    );
    assert_eq!(
        served_certificate(&frontend, "unknown.test").await,
        leaf_der(&first)
    );

    // A client that verifies names accepts the wildcard certificate.
    let verifying = tls_client(&second, "www.second.test", frontend.local_addr())
        .build()
        .unwrap();
    let url = format!("https://www.second.test:{}/", frontend.local_addr().port());
    assert_eq!(verifying.get(url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn certificates_can_be_replaced_while_serving() {
    let old = self_signed_certificate(&["app.test".to_owned()]).unwrap();
    let new = self_signed_certificate(&["app.test".to_owned()]).unwrap();
    let (frontend, _backend) = https_frontend(vec![old.clone()]).await;
    let url = format!("https://app.test:{}/", frontend.local_addr().port());
    let trusts_new = || {
        tls_client(&new, "app.test", frontend.local_addr())
            .build()
            .unwrap()
    };

    assert!(
        trusts_new().get(&url).send().await.is_err(),
        "new cert served too early"
    );
    frontend
        .set_certificates(std::slice::from_ref(&new))
        .unwrap();
    let response = trusts_new().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let plaintext = Frontend::bind(
        FrontendConfig::http("plain", localhost()),
        &UrlMap::new(RouteAction::service(start_service("x", &[]))),
    )
    .await
    .unwrap();
    assert!(plaintext.set_certificates(&[new]).is_err());
}
