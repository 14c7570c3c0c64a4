//! HTTPS frontends: ALPN h2/http1.1, SNI certificate choice, certificates replaced live.

mod common;

use std::net::SocketAddr;

use ccd_lb::{
    CertificatePem, Frontend, FrontendConfig, HealthState, RouteAction, UrlMap,
    self_signed_certificate,
};
use common::*;

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

#[tokio::test]
async fn certificate_is_chosen_by_sni_with_the_first_as_default() {
    let first = self_signed_certificate(&["first.test".to_owned()]).unwrap();
    let second = self_signed_certificate(&["*.second.test".to_owned()]).unwrap();
    let (frontend, _backend) = https_frontend(vec![first.clone(), second.clone()]).await;
    let port = frontend.local_addr().port();

    let second_client = tls_client(&second, "www.second.test", frontend.local_addr())
        .build()
        .unwrap();
    let response = second_client
        .get(format!("https://www.second.test:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // An unknown name gets the first certificate, which a client trusting it accepts only
    // when that name is on it.
    let unknown = tls_client(&first, "first.test", frontend.local_addr())
        .resolve("unknown.test", frontend.local_addr())
        .build()
        .unwrap();
    assert!(
        unknown
            .get(format!("https://unknown.test:{port}/"))
            .send()
            .await
            .is_err()
    );
    let response = unknown
        .get(format!("https://first.test:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
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

    assert!(trusts_new().get(&url).send().await.is_err(), "new cert served too early");
    frontend.set_certificates(&[new.clone()]).unwrap();
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
