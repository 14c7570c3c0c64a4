//! Health checks, backend services, URL maps, SSL certificates, target HTTPS
//! proxies, global addresses, global forwarding rules and firewalls through
//! the official SDK: the generic methods only (insert, get, list, patch,
//! delete) and the reference rules between them.

use crate::common;

use common::{PROJECT, ZONE, assert_error, done, simulated_template};
use google_cloud_compute_v1::client::{
    BackendServices, Firewalls, GlobalAddresses, GlobalForwardingRules, HealthChecks,
    InstanceGroupManagers, InstanceTemplates, SslCertificates, TargetHttpsProxies, UrlMaps,
};
use google_cloud_compute_v1::model;
use google_cloud_gax::paginator::{ItemPaginator as _, Paginator as _};

fn http_check(name: &str) -> model::HealthCheck {
    model::HealthCheck::new()
        .set_name(name)
        .set_type(model::health_check::Type::Http)
        .set_http_health_check(
            model::HTTPHealthCheck::new()
                .set_port(8080)
                .set_request_path("/healthz"),
        )
}

#[tokio::test]
async fn health_checks_http_and_tcp() {
    let cloud = common::start().await;
    let checks = client!(HealthChecks, cloud);

    done(
        checks
            .insert()
            .set_project(PROJECT)
            .set_body(http_check("hc-http"))
            .poller(),
    )
    .await;
    let tcp = model::HealthCheck::new()
        .set_name("hc-tcp")
        .set_type(model::health_check::Type::Tcp)
        .set_check_interval_sec(10)
        .set_timeout_sec(3)
        .set_tcp_health_check(model::TCPHealthCheck::new().set_port(9000));
    done(checks.insert().set_project(PROJECT).set_body(tcp).poller()).await;

    let http = checks
        .get()
        .set_project(PROJECT)
        .set_health_check("hc-http")
        .send()
        .await
        .unwrap();
    assert_eq!(http.r#type, Some(model::health_check::Type::Http));
    let probe = http.http_health_check.clone().expect("httpHealthCheck");
    assert_eq!(
        (probe.port, probe.request_path.as_deref()),
        (Some(8080), Some("/healthz"))
    );
    // Compute's defaults.
    assert_eq!(
        (
            http.check_interval_sec,
            http.timeout_sec,
            http.healthy_threshold,
            http.unhealthy_threshold
        ),
        (Some(5), Some(5), Some(2), Some(2))
    );
    assert!(
        http.self_link
            .as_deref()
            .is_some_and(|l| l.ends_with("/global/healthChecks/hc-http"))
    );

    let tcp = checks
        .get()
        .set_project(PROJECT)
        .set_health_check("hc-tcp")
        .send()
        .await
        .unwrap();
    assert_eq!(tcp.r#type, Some(model::health_check::Type::Tcp));
    assert_eq!(tcp.tcp_health_check.and_then(|t| t.port), Some(9000));
    assert_eq!(
        (tcp.check_interval_sec, tcp.timeout_sec),
        (Some(10), Some(3))
    );

    let mut names = Vec::new();
    let mut list = checks.list().set_project(PROJECT).by_item();
    while let Some(hc) = list.next().await.transpose().unwrap() {
        names.push(hc.name.unwrap());
    }
    assert_eq!(names, ["hc-http", "hc-tcp"]);

    // patch merges: the probe is kept, the interval changes.
    let patch = model::HealthCheck::new()
        .set_check_interval_sec(15)
        .set_healthy_threshold(3);
    done(
        checks
            .patch()
            .set_project(PROJECT)
            .set_health_check("hc-http")
            .set_body(patch)
            .poller(),
    )
    .await;
    let http = checks
        .get()
        .set_project(PROJECT)
        .set_health_check("hc-http")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (http.check_interval_sec, http.healthy_threshold),
        (Some(15), Some(3))
    );
    assert_eq!(http.http_health_check, Some(probe));

    // A timeout longer than the interval is refused.
    let bad = http_check("hc-bad")
        .set_check_interval_sec(5)
        .set_timeout_sec(10);
    assert_error(
        checks
            .insert()
            .set_project(PROJECT)
            .set_body(bad)
            .send()
            .await,
        400,
        "invalid",
    );

    done(
        checks
            .delete()
            .set_project(PROJECT)
            .set_health_check("hc-tcp")
            .poller(),
    )
    .await;
    assert_error(
        checks
            .get()
            .set_project(PROJECT)
            .set_health_check("hc-tcp")
            .send()
            .await,
        404,
        "notFound",
    );
    common::finish(cloud).await;
}

#[tokio::test]
async fn firewalls_insert_get_list_patch_delete() {
    let cloud = common::start().await;
    let firewalls = client!(Firewalls, cloud);
    let rule = model::Firewall::new()
        .set_name("allow-lb")
        .set_source_ranges(["35.191.0.0/16", "130.211.0.0/22"])
        .set_target_tags(["web"])
        .set_allowed([model::firewall::Allowed::new()
            .set_ip_protocol("tcp")
            .set_ports(["8080"])]);
    done(
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(rule)
            .poller(),
    )
    .await;

    let got = firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("allow-lb")
        .send()
        .await
        .unwrap();
    assert_eq!(got.direction, Some(model::firewall::Direction::Ingress));
    assert_eq!((got.priority, got.disabled), (Some(1000), Some(false)));
    assert!(
        got.network
            .as_deref()
            .is_some_and(|n| n.ends_with("/global/networks/default")),
        "{got:?}"
    );
    assert_eq!(got.source_ranges, ["35.191.0.0/16", "130.211.0.0/22"]);
    assert_eq!(got.allowed[0].ports, ["8080"]);

    let patch =
        model::Firewall::new()
            .set_priority(900)
            .set_allowed([model::firewall::Allowed::new()
                .set_ip_protocol("tcp")
                .set_ports(["8080", "8443"])]);
    done(
        firewalls
            .patch()
            .set_project(PROJECT)
            .set_firewall("allow-lb")
            .set_body(patch)
            .poller(),
    )
    .await;
    let got = firewalls
        .get()
        .set_project(PROJECT)
        .set_firewall("allow-lb")
        .send()
        .await
        .unwrap();
    assert_eq!(got.priority, Some(900));
    assert_eq!(got.allowed[0].ports, ["8080", "8443"]);
    assert_eq!(
        got.target_tags,
        ["web"],
        "patch keeps what it does not name"
    );

    // A rule with neither allowed nor denied is refused.
    let empty = model::Firewall::new()
        .set_name("nothing")
        .set_source_ranges(["0.0.0.0/0"]);
    assert_error(
        firewalls
            .insert()
            .set_project(PROJECT)
            .set_body(empty)
            .send()
            .await,
        400,
        "invalid",
    );

    let mut names = Vec::new();
    let mut list = firewalls.list().set_project(PROJECT).by_item();
    while let Some(f) = list.next().await.transpose().unwrap() {
        names.push(f.name.unwrap());
    }
    assert_eq!(names, ["allow-lb"]);

    done(
        firewalls
            .delete()
            .set_project(PROJECT)
            .set_firewall("allow-lb")
            .poller(),
    )
    .await;
    assert_error(
        firewalls
            .get()
            .set_project(PROJECT)
            .set_firewall("allow-lb")
            .send()
            .await,
        404,
        "notFound",
    );
    common::finish(cloud).await;
}

#[tokio::test]
async fn list_pagination_returns_every_item_once_and_filters_by_name() {
    let cloud = common::start().await;
    let firewalls = client!(Firewalls, cloud);
    for i in 0..7 {
        let rule = model::Firewall::new()
            .set_name(format!("fw-{i}"))
            .set_source_ranges(["10.0.0.0/8"])
            .set_allowed([model::firewall::Allowed::new()
                .set_ip_protocol("tcp")
                .set_ports([format!("{}", 8000 + i)])]);
        done(
            firewalls
                .insert()
                .set_project(PROJECT)
                .set_body(rule)
                .poller(),
        )
        .await;
    }

    let mut pages = firewalls
        .list()
        .set_project(PROJECT)
        .set_max_results(3_u32)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await.transpose().unwrap() {
        sizes.push(page.items.len());
    }
    assert_eq!(sizes, [3, 3, 1]);

    let mut names = Vec::new();
    let mut items = firewalls
        .list()
        .set_project(PROJECT)
        .set_max_results(3_u32)
        .by_item();
    while let Some(f) = items.next().await.transpose().unwrap() {
        names.push(f.name.unwrap());
    }
    names.sort();
    assert_eq!(names, (0..7).map(|i| format!("fw-{i}")).collect::<Vec<_>>());

    let filtered = firewalls
        .list()
        .set_project(PROJECT)
        .set_filter("name = \"fw-3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        filtered
            .items
            .iter()
            .map(|f| f.name.as_deref())
            .collect::<Vec<_>>(),
        [Some("fw-3")]
    );
    assert_eq!(filtered.next_page_token.as_deref().unwrap_or(""), "");
    let none = firewalls
        .list()
        .set_project(PROJECT)
        .set_filter("name = \"missing\"")
        .send()
        .await
        .unwrap();
    assert!(none.items.is_empty());
    common::finish(cloud).await;
}

#[tokio::test]
async fn ssl_certificates_managed_and_self_managed() {
    let cloud = common::start().await;
    let certs = client!(SslCertificates, cloud);

    let managed = model::SslCertificate::new()
        .set_name("managed")
        .set_type(model::ssl_certificate::Type::Managed)
        .set_managed(
            model::SslCertificateManagedSslCertificate::new().set_domains(["app.example.com"]),
        );
    done(
        certs
            .insert()
            .set_project(PROJECT)
            .set_body(managed)
            .poller(),
    )
    .await;
    let got = certs
        .get()
        .set_project(PROJECT)
        .set_ssl_certificate("managed")
        .send()
        .await
        .unwrap();
    assert_eq!(got.r#type, Some(model::ssl_certificate::Type::Managed));
    let status = got.managed.expect("managed");
    assert_eq!(
        status.status,
        Some(model::ssl_certificate_managed_ssl_certificate::Status::Active)
    );
    assert_eq!(
        status.domain_status.get("app.example.com"),
        Some(&model::ssl_certificate_managed_ssl_certificate::DomainStatus::Active)
    );
    assert!(
        got.certificate
            .as_deref()
            .is_some_and(|c| c.contains("-----BEGIN CERTIFICATE-----")),
        "a certificate is issued"
    );
    assert_eq!(got.private_key, None, "a private key is never returned");
    assert_eq!(got.subject_alternative_names, ["app.example.com"]);

    let pair = ccd_lb::self_signed_certificate(&["own.example.com".to_owned()]).unwrap();
    let own = model::SslCertificate::new()
        .set_name("own")
        .set_certificate(&pair.cert_chain_pem)
        .set_private_key(&pair.private_key_pem);
    done(certs.insert().set_project(PROJECT).set_body(own).poller()).await;
    let got = certs
        .get()
        .set_project(PROJECT)
        .set_ssl_certificate("own")
        .send()
        .await
        .unwrap();
    assert_eq!(got.r#type, Some(model::ssl_certificate::Type::SelfManaged));
    assert_eq!(
        got.certificate.as_deref(),
        Some(pair.cert_chain_pem.as_str())
    );
    assert_eq!(got.private_key, None, "a private key is never returned");

    // A self-managed certificate needs its PEM pair; a managed one its domains.
    let bare = model::SslCertificate::new().set_name("bare");
    assert_error(
        certs
            .insert()
            .set_project(PROJECT)
            .set_body(bare)
            .send()
            .await,
        400,
        "required",
    );
    let no_domains = model::SslCertificate::new()
        .set_name("nodomains")
        .set_type(model::ssl_certificate::Type::Managed);
    assert_error(
        certs
            .insert()
            .set_project(PROJECT)
            .set_body(no_domains)
            .send()
            .await,
        400,
        "required",
    );

    let mut list = certs.list().set_project(PROJECT).by_item();
    let mut names = Vec::new();
    while let Some(c) = list.next().await.transpose().unwrap() {
        assert_eq!(c.private_key, None);
        names.push(c.name.unwrap());
    }
    assert_eq!(names, ["managed", "own"]);
    done(
        certs
            .delete()
            .set_project(PROJECT)
            .set_ssl_certificate("own")
            .poller(),
    )
    .await;
    common::finish(cloud).await;
}

/// The global external Application Load Balancer chain, built in Compute's
/// order from a managed group; every link refuses deletion while used, and
/// the chain comes down in reverse order.
#[tokio::test]
async fn an_https_load_balancer_chain_is_built_and_torn_down_in_order() {
    let cloud = common::start().await;
    let templates = client!(InstanceTemplates, cloud);
    let igm = client!(InstanceGroupManagers, cloud);
    let checks = client!(HealthChecks, cloud);
    let services = client!(BackendServices, cloud);
    let url_maps = client!(UrlMaps, cloud);
    let certs = client!(SslCertificates, cloud);
    let proxies = client!(TargetHttpsProxies, cloud);
    let addresses = client!(GlobalAddresses, cloud);
    let rules = client!(GlobalForwardingRules, cloud);

    done(
        templates
            .insert()
            .set_project(PROJECT)
            .set_body(simulated_template("tpl"))
            .poller(),
    )
    .await;
    let group = model::InstanceGroupManager::new()
        .set_name("web")
        .set_base_instance_name("web")
        .set_instance_template("global/instanceTemplates/tpl")
        .set_target_size(1);
    done(
        igm.insert()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_body(group)
            .poller(),
    )
    .await;
    let mig = igm
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance_group_manager("web")
        .send()
        .await
        .unwrap();
    let group_link = mig.instance_group.expect("instanceGroup");

    done(
        checks
            .insert()
            .set_project(PROJECT)
            .set_body(http_check("hc"))
            .poller(),
    )
    .await;
    let hc_link = checks
        .get()
        .set_project(PROJECT)
        .set_health_check("hc")
        .send()
        .await
        .unwrap()
        .self_link
        .unwrap();

    let service = model::BackendService::new()
        .set_name("web-bs")
        .set_load_balancing_scheme(model::backend_service::LoadBalancingScheme::ExternalManaged)
        .set_protocol(model::backend_service::Protocol::Http)
        .set_port_name("http")
        .set_health_checks([hc_link.clone()])
        .set_backends([model::Backend::new()
            .set_group(&group_link)
            .set_balancing_mode(model::backend::BalancingMode::Utilization)
            .set_max_utilization(0.8)]);
    done(
        services
            .insert()
            .set_project(PROJECT)
            .set_body(service)
            .poller(),
    )
    .await;
    let bs = services
        .get()
        .set_project(PROJECT)
        .set_backend_service("web-bs")
        .send()
        .await
        .unwrap();
    assert_eq!(bs.backends.len(), 1);
    assert_eq!(bs.backends[0].group.as_deref(), Some(group_link.as_str()));
    assert_eq!(bs.backends[0].capacity_scaler, Some(1.0));
    assert_eq!(bs.health_checks, std::slice::from_ref(&hc_link));
    assert_eq!(
        bs.load_balancing_scheme,
        Some(model::backend_service::LoadBalancingScheme::ExternalManaged)
    );
    assert_eq!(bs.timeout_sec, Some(30));
    let bs_link = bs.self_link.clone().unwrap();

    // Backend services carry a fingerprint: a stale one is refused.
    let patch = model::BackendService::new()
        .set_timeout_sec(60)
        .set_or_clear_fingerprint(bs.fingerprint.clone());
    done(
        services
            .patch()
            .set_project(PROJECT)
            .set_backend_service("web-bs")
            .set_body(patch)
            .poller(),
    )
    .await;
    let patch = model::BackendService::new()
        .set_timeout_sec(90)
        .set_or_clear_fingerprint(bs.fingerprint.clone());
    assert_error(
        services
            .patch()
            .set_project(PROJECT)
            .set_backend_service("web-bs")
            .set_body(patch)
            .send()
            .await,
        412,
        "conditionNotMet",
    );
    let bs = services
        .get()
        .set_project(PROJECT)
        .set_backend_service("web-bs")
        .send()
        .await
        .unwrap();
    assert_eq!(bs.timeout_sec, Some(60));

    // A backend naming a group that does not exist is refused.
    let dangling = model::BackendService::new()
        .set_name("dangling")
        .set_backends([
            model::Backend::new().set_group(format!("zones/{ZONE}/instanceGroups/nope"))
        ]);
    assert_error(
        services
            .insert()
            .set_project(PROJECT)
            .set_body(dangling)
            .send()
            .await,
        404,
        "notFound",
    );

    let map = model::UrlMap::new()
        .set_name("web-map")
        .set_default_service(&bs_link);
    done(
        url_maps
            .insert()
            .set_project(PROJECT)
            .set_body(map)
            .poller(),
    )
    .await;
    let map = url_maps
        .get()
        .set_project(PROJECT)
        .set_url_map("web-map")
        .send()
        .await
        .unwrap();
    assert_eq!(map.default_service.as_deref(), Some(bs_link.as_str()));
    assert!(map.fingerprint.is_some());
    let map_link = map.self_link.unwrap();

    let cert = model::SslCertificate::new()
        .set_name("web-cert")
        .set_type(model::ssl_certificate::Type::Managed)
        .set_managed(
            model::SslCertificateManagedSslCertificate::new().set_domains(["app.example.com"]),
        );
    done(certs.insert().set_project(PROJECT).set_body(cert).poller()).await;
    let cert_link = certs
        .get()
        .set_project(PROJECT)
        .set_ssl_certificate("web-cert")
        .send()
        .await
        .unwrap()
        .self_link
        .unwrap();

    let proxy = model::TargetHttpsProxy::new()
        .set_name("web-proxy")
        .set_url_map(&map_link)
        .set_ssl_certificates([cert_link.clone()]);
    done(
        proxies
            .insert()
            .set_project(PROJECT)
            .set_body(proxy)
            .poller(),
    )
    .await;
    let proxy = proxies
        .get()
        .set_project(PROJECT)
        .set_target_https_proxy("web-proxy")
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.url_map.as_deref(), Some(map_link.as_str()));
    assert_eq!(proxy.ssl_certificates, std::slice::from_ref(&cert_link));
    let proxy_link = proxy.self_link.unwrap();

    done(
        addresses
            .insert()
            .set_project(PROJECT)
            .set_body(model::Address::new().set_name("web-ip"))
            .poller(),
    )
    .await;
    let address = addresses
        .get()
        .set_project(PROJECT)
        .set_address("web-ip")
        .send()
        .await
        .unwrap();
    assert!(
        address
            .self_link
            .as_deref()
            .is_some_and(|l| l.ends_with("/global/addresses/web-ip"))
    );
    // A reserved address without an IP gets one; read it back.
    let ip = address.address.clone().expect("an IP is allocated");
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
    assert_eq!(address.status, Some(model::address::Status::Reserved));
    assert_eq!(
        address.address_type,
        Some(model::address::AddressType::External)
    );
    let mut list = addresses.list().set_project(PROJECT).by_item();
    let mut names = Vec::new();
    while let Some(a) = list.next().await.transpose().unwrap() {
        names.push(a.name.unwrap());
    }
    assert_eq!(names, ["web-ip"]);

    let rule = model::ForwardingRule::new()
        .set_name("web-https")
        .set_ip_protocol(model::forwarding_rule::IPProtocol::Tcp)
        .set_ip_address(address.self_link.clone().unwrap())
        .set_port_range("443")
        .set_target(&proxy_link)
        .set_load_balancing_scheme(model::forwarding_rule::LoadBalancingScheme::ExternalManaged);
    done(rules.insert().set_project(PROJECT).set_body(rule).poller()).await;
    let rule = rules
        .get()
        .set_project(PROJECT)
        .set_forwarding_rule("web-https")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.target.as_deref(), Some(proxy_link.as_str()));
    assert_eq!(rule.port_range.as_deref(), Some("443-443"));
    // Given an address by reference, the rule reads back with its IP.
    assert_eq!(rule.ip_address.as_deref(), Some(ip.as_str()));
    assert_eq!(
        rule.ip_protocol,
        Some(model::forwarding_rule::IPProtocol::Tcp)
    );
    assert_eq!(
        rule.load_balancing_scheme,
        Some(model::forwarding_rule::LoadBalancingScheme::ExternalManaged)
    );
    let mut list = rules.list().set_project(PROJECT).by_item();
    let mut names = Vec::new();
    while let Some(r) = list.next().await.transpose().unwrap() {
        names.push(r.name.unwrap());
    }
    assert_eq!(names, ["web-https"]);

    // Nothing still named by another resource can be deleted.
    let in_use = "resourceInUseByAnotherResource";
    assert_error(
        proxies
            .delete()
            .set_project(PROJECT)
            .set_target_https_proxy("web-proxy")
            .send()
            .await,
        400,
        in_use,
    );
    assert_error(
        url_maps
            .delete()
            .set_project(PROJECT)
            .set_url_map("web-map")
            .send()
            .await,
        400,
        in_use,
    );
    assert_error(
        certs
            .delete()
            .set_project(PROJECT)
            .set_ssl_certificate("web-cert")
            .send()
            .await,
        400,
        in_use,
    );
    assert_error(
        services
            .delete()
            .set_project(PROJECT)
            .set_backend_service("web-bs")
            .send()
            .await,
        400,
        in_use,
    );
    assert_error(
        checks
            .delete()
            .set_project(PROJECT)
            .set_health_check("hc")
            .send()
            .await,
        400,
        in_use,
    );
    assert_error(
        igm.delete()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .send()
            .await,
        400,
        in_use,
    );

    // Reverse dependency order.
    done(
        rules
            .delete()
            .set_project(PROJECT)
            .set_forwarding_rule("web-https")
            .poller(),
    )
    .await;
    done(
        proxies
            .delete()
            .set_project(PROJECT)
            .set_target_https_proxy("web-proxy")
            .poller(),
    )
    .await;
    done(
        url_maps
            .delete()
            .set_project(PROJECT)
            .set_url_map("web-map")
            .poller(),
    )
    .await;
    done(
        certs
            .delete()
            .set_project(PROJECT)
            .set_ssl_certificate("web-cert")
            .poller(),
    )
    .await;
    done(
        services
            .delete()
            .set_project(PROJECT)
            .set_backend_service("web-bs")
            .poller(),
    )
    .await;
    done(
        checks
            .delete()
            .set_project(PROJECT)
            .set_health_check("hc")
            .poller(),
    )
    .await;
    done(
        igm.delete()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance_group_manager("web")
            .poller(),
    )
    .await;
    done(
        templates
            .delete()
            .set_project(PROJECT)
            .set_instance_template("tpl")
            .poller(),
    )
    .await;
    done(
        addresses
            .delete()
            .set_project(PROJECT)
            .set_address("web-ip")
            .poller(),
    )
    .await;
    assert_error(
        rules
            .get()
            .set_project(PROJECT)
            .set_forwarding_rule("web-https")
            .send()
            .await,
        404,
        "notFound",
    );
    assert_error(
        services
            .get()
            .set_project(PROJECT)
            .set_backend_service("web-bs")
            .send()
            .await,
        404,
        "notFound",
    );
    common::finish(cloud).await;
}
