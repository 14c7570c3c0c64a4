//! The global external HTTPS load balancer: health check → a backend
//! service per group → URL map (weights) → managed certificate → target
//! HTTPS proxy → global address → global forwarding rule on 443; and on the
//! same address, port 80: a redirect URL map → target HTTP proxy → rule.

use google_cloud_compute_v1::model::{
    Address, ForwardingRule, SslCertificate, SslCertificateManagedSslCertificate, TargetHttpProxy,
    TargetHttpsProxy, forwarding_rule, ssl_certificate,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::{Names, piece, url_map};
use crate::gce::GceCloud;
use crate::gce::call::{Outcome, with_fresh_fingerprint};
use crate::gce::marker::{self, name_of};
use crate::model::{CertificateState, LbId, LbPieceKind as P, LbState, LoadBalancerSpec};

impl GceCloud {
    pub(super) async fn apply_external(
        &self,
        spec: &LoadBalancerSpec,
        n: &Names,
        domains: &[String],
    ) -> Outcome<()> {
        self.apply_routing(spec, n, false).await?;
        let cert = n.cert(domains);
        self.ensure_certificate(&spec.app, &cert, domains).await?;
        let ours = self.app_certificates(&spec.app, &n.cert_prefix).await?;
        let active = ours
            .iter()
            .any(|c| c.name.as_deref() == Some(cert.as_str()) && state_of(c).active());
        let attached = self.attached_certificates(&n.proxy).await?;
        let attach = certificates_to_attach(&cert, active, &attached, &ours);
        let um = self.link(&format!("global/urlMaps/{}", n.um));
        let links: Vec<String> = attach
            .iter()
            .map(|c| self.link(&format!("global/sslCertificates/{c}")))
            .collect();
        with_fresh_fingerprint(|| self.ensure_https_proxy(&spec.app, &n.proxy, &um, &links))
            .await?;
        // Certificates for domains no longer served, once the proxy lets go of them.
        for old in ours.iter().filter_map(|c| c.name.as_deref()) {
            if !attach.iter().any(|a| a == old) {
                self.delete_certificate(old).await?;
            }
        }
        let ip = self.ensure_global_address(spec, &n.ip).await?;
        let proxy = self.link(&format!("global/targetHttpsProxies/{}", n.proxy));
        self.ensure_global_rule(spec, &n.fr, &ip, &proxy, 443)
            .await?;
        // Port 80 on the same address answers with a redirect to HTTPS.
        let redirect = url_map::https_redirect(&spec.app, &n.redirect_um);
        with_fresh_fingerprint(|| self.ensure_url_map(&spec.app, false, redirect.clone())).await?;
        let um = self.link(&format!("global/urlMaps/{}", n.redirect_um));
        self.ensure_redirect_proxy(&spec.app, &n.http_proxy, &um)
            .await?;
        let proxy = self.link(&format!("global/targetHttpProxies/{}", n.http_proxy));
        self.ensure_global_rule(spec, &n.http_fr, &ip, &proxy, 80)
            .await
    }

    /// The redirect's target HTTP proxy (global).
    async fn ensure_redirect_proxy(&self, app: &str, name: &str, url_map: &str) -> Outcome<()> {
        let resource = format!("global/targetHttpProxies/{name}");
        let c = &self.c.http_proxies;
        let get = c
            .get()
            .set_project(self.project())
            .set_target_http_proxy(name);
        if let Some(current) = self.find(&resource, get.send()).await? {
            return marker::check_owned(&resource, app, &current);
        }
        let body = TargetHttpProxy::new()
            .set_name(name)
            .set_description(marker::description(app, &[]))
            .set_url_map(url_map);
        let insert = c.insert().set_project(self.project()).set_body(body);
        self.create(&resource, idempotent!(insert)).await
    }

    async fn ensure_certificate(&self, app: &str, name: &str, domains: &[String]) -> Outcome<()> {
        let resource = format!("global/sslCertificates/{name}");
        let get = self
            .c
            .certs
            .get()
            .set_project(self.project())
            .set_ssl_certificate(name)
            .send();
        if let Some(current) = self.find(&resource, get).await? {
            return marker::check_owned(&resource, app, &current);
        }
        let body = SslCertificate::new()
            .set_name(name)
            .set_description(marker::description(app, &[]))
            .set_type(ssl_certificate::Type::Managed)
            .set_managed(SslCertificateManagedSslCertificate::new().set_domains(domains.to_vec()));
        let insert = self
            .c
            .certs
            .insert()
            .set_project(self.project())
            .set_body(body);
        self.create(&resource, idempotent!(insert)).await
    }

    /// The names of the certificates the HTTPS proxy serves now.
    async fn attached_certificates(&self, proxy: &str) -> Outcome<Vec<String>> {
        let resource = format!("global/targetHttpsProxies/{proxy}");
        let get = self.c.https_proxies.get().set_project(self.project());
        let found = self
            .find(&resource, get.set_target_https_proxy(proxy).send())
            .await?;
        Ok(found
            .map(|p| {
                p.ssl_certificates
                    .iter()
                    .map(|c| name_of(c).to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The app's certificates named `{prefix}*`, oldest first.
    async fn app_certificates(&self, app: &str, prefix: &str) -> Outcome<Vec<SslCertificate>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let list = self
                .c
                .certs
                .list()
                .set_project(self.project())
                .set_page_token(&token)
                .send();
            let page = self.read("global/sslCertificates", list).await?;
            out.extend(
                page.items
                    .into_iter()
                    .filter(|c| marker::owned_by(c.description.as_deref(), app))
                    .filter(|c| c.name.as_deref().is_some_and(|n| n.starts_with(prefix))),
            );
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => {
                    out.sort_by(|a, b| a.creation_timestamp.cmp(&b.creation_timestamp));
                    return Ok(out);
                }
            }
        }
    }

    async fn delete_certificate(&self, name: &str) -> Outcome<()> {
        let delete = self
            .c
            .certs
            .delete()
            .set_project(self.project())
            .set_ssl_certificate(name);
        self.remove(
            &format!("global/sslCertificates/{name}"),
            idempotent!(delete),
        )
        .await
    }

    async fn ensure_https_proxy(
        &self,
        app: &str,
        name: &str,
        url_map: &str,
        certs: &[String],
    ) -> Outcome<()> {
        let resource = format!("global/targetHttpsProxies/{name}");
        let get = self
            .c
            .https_proxies
            .get()
            .set_project(self.project())
            .set_target_https_proxy(name)
            .send();
        match self.find(&resource, get).await? {
            None => {
                let body = TargetHttpsProxy::new()
                    .set_name(name)
                    .set_description(marker::description(app, &[]))
                    .set_url_map(url_map)
                    .set_ssl_certificates(certs.to_vec());
                let insert = self
                    .c
                    .https_proxies
                    .insert()
                    .set_project(self.project())
                    .set_body(body);
                self.create(&resource, idempotent!(insert)).await
            }
            Some(current) => {
                marker::check_owned(&resource, app, &current)?;
                let now: Vec<&str> = current
                    .ssl_certificates
                    .iter()
                    .map(|c| name_of(c))
                    .collect();
                let want: Vec<&str> = certs.iter().map(|c| name_of(c)).collect();
                if now == want && current.url_map.as_deref().map(name_of) == Some(name_of(url_map))
                {
                    return Ok(());
                }
                let body = TargetHttpsProxy::new()
                    .set_url_map(url_map)
                    .set_ssl_certificates(certs.to_vec())
                    .set_or_clear_fingerprint(current.fingerprint);
                let patch = self
                    .c
                    .https_proxies
                    .patch()
                    .set_project(self.project())
                    .set_target_https_proxy(name)
                    .set_body(body);
                self.mutate(&resource, idempotent!(patch)).await?;
                tracing::info!(resource, "target proxy updated");
                Ok(())
            }
        }
    }

    /// Reserves the address; returns it.
    async fn ensure_global_address(&self, spec: &LoadBalancerSpec, name: &str) -> Outcome<String> {
        let resource = format!("global/addresses/{name}");
        let get = || {
            self.c
                .global_addresses
                .get()
                .set_project(self.project())
                .set_address(name)
                .send()
        };
        if let Some(current) = self.find(&resource, get()).await? {
            marker::check_owned(&resource, &spec.app, &current)?;
            return Ok(current.address.unwrap_or_default());
        }
        let body = Address::new()
            .set_name(name)
            .set_description(marker::description(&spec.app, &[]))
            .set_labels(marker::labels(&spec.app, &spec.labels));
        let insert = self
            .c
            .global_addresses
            .insert()
            .set_project(self.project())
            .set_body(body);
        self.create(&resource, idempotent!(insert)).await?;
        let address = self.read(&resource, get()).await?;
        Ok(address.address.unwrap_or_default())
    }

    async fn ensure_global_rule(
        &self,
        spec: &LoadBalancerSpec,
        name: &str,
        ip: &str,
        proxy: &str,
        port: u16,
    ) -> Outcome<()> {
        let resource = format!("global/forwardingRules/{name}");
        let get = self
            .c
            .global_rules
            .get()
            .set_project(self.project())
            .set_forwarding_rule(name)
            .send();
        if let Some(current) = self.find(&resource, get).await? {
            marker::check_owned(&resource, &spec.app, &current)?;
            // A forwarding rule is immutable but for its target; ccd never changes the target's name.
            if current.target.as_deref().map(name_of) != Some(name_of(proxy)) {
                tracing::warn!(resource, target = ?current.target, "forwarding rule points elsewhere; delete the load balancer to rebuild it");
            }
            return Ok(());
        }
        let body = ForwardingRule::new()
            .set_name(name)
            .set_description(marker::description(&spec.app, &[]))
            .set_labels(marker::labels(&spec.app, &spec.labels))
            .set_ip_address(ip)
            .set_ip_protocol(forwarding_rule::IPProtocol::Tcp)
            .set_port_range(port.to_string())
            .set_target(proxy)
            .set_load_balancing_scheme(forwarding_rule::LoadBalancingScheme::ExternalManaged);
        let insert = self
            .c
            .global_rules
            .insert()
            .set_project(self.project())
            .set_body(body);
        self.create(&resource, idempotent!(insert)).await
    }

    pub(super) async fn external_state(&self, id: &LbId, n: &Names) -> Outcome<LbState> {
        let p = self.project();
        let at = |collection: &str, name: &str| format!("global/{collection}/{name}");
        let hc = self
            .c
            .health_checks
            .get()
            .set_project(p)
            .set_health_check(&n.hc);
        let hc = self.find(&at("healthChecks", &n.hc), hc.send()).await?;
        let services = self.backend_pieces(false, &id.app, &id.name).await?;
        let um = self.c.url_maps.get().set_project(p).set_url_map(&n.um);
        let um = self.find(&at("urlMaps", &n.um), um.send()).await?;
        let certs = self.app_certificates(&id.app, &n.cert_prefix).await?;
        let proxy = self
            .c
            .https_proxies
            .get()
            .set_project(p)
            .set_target_https_proxy(&n.proxy);
        let proxy = self
            .find(&at("targetHttpsProxies", &n.proxy), proxy.send())
            .await?;
        let ip = self
            .c
            .global_addresses
            .get()
            .set_project(p)
            .set_address(&n.ip);
        let ip = self.find(&at("addresses", &n.ip), ip.send()).await?;
        let fr = self
            .c
            .global_rules
            .get()
            .set_project(p)
            .set_forwarding_rule(&n.fr);
        let fr = self.find(&at("forwardingRules", &n.fr), fr.send()).await?;
        let redirect = self
            .c
            .url_maps
            .get()
            .set_project(p)
            .set_url_map(&n.redirect_um);
        let redirect = self
            .find(&at("urlMaps", &n.redirect_um), redirect.send())
            .await?;
        let http_proxy = self.c.http_proxies.get().set_project(p);
        let http_proxy = http_proxy.set_target_http_proxy(&n.http_proxy);
        let http_proxy = self
            .find(&at("targetHttpProxies", &n.http_proxy), http_proxy.send())
            .await?;
        let http_fr = self.c.global_rules.get().set_project(p);
        let http_fr = http_fr.set_forwarding_rule(&n.http_fr);
        let http_fr = self
            .find(&at("forwardingRules", &n.http_fr), http_fr.send())
            .await?;
        let newest = certs.last();
        let cert_name = newest
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| n.cert_prefix.trim_end_matches('-').to_owned());
        Ok(LbState {
            certificate: newest.map(state_of),
            address: ip
                .as_ref()
                .and_then(|a| a.address.as_deref())
                .and_then(|a| a.parse().ok()),
            pieces: std::iter::once(piece(P::HealthCheck, &n.hc, hc.is_some()))
                .chain(services)
                .chain([
                    piece(P::UrlMap, &n.um, um.is_some()),
                    piece(P::Certificate, &cert_name, !certs.is_empty()),
                    piece(P::TargetProxy, &n.proxy, proxy.is_some()),
                    piece(P::Address, &n.ip, ip.is_some()),
                    piece(P::ForwardingRule, &n.fr, fr.is_some()),
                    piece(P::UrlMap, &n.redirect_um, redirect.is_some()),
                    piece(P::TargetProxy, &n.http_proxy, http_proxy.is_some()),
                    piece(P::ForwardingRule, &n.http_fr, http_fr.is_some()),
                ])
                .collect(),
        })
    }

    pub(super) async fn delete_external(&self, id: &LbId, n: &Names) -> Outcome<()> {
        let (p, app) = (self.project(), id.app.as_str());
        let c = &self.c.global_rules;
        let get = c.get().set_project(p).set_forwarding_rule(&n.http_fr);
        let delete = c.delete().set_project(p).set_forwarding_rule(&n.http_fr);
        let resource = format!("global/forwardingRules/{}", n.http_fr);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        let c = &self.c.http_proxies;
        let get = c.get().set_project(p).set_target_http_proxy(&n.http_proxy);
        let delete = c
            .delete()
            .set_project(p)
            .set_target_http_proxy(&n.http_proxy);
        let resource = format!("global/targetHttpProxies/{}", n.http_proxy);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        let c = &self.c.url_maps;
        let get = c.get().set_project(p).set_url_map(&n.redirect_um);
        let delete = c.delete().set_project(p).set_url_map(&n.redirect_um);
        let resource = format!("global/urlMaps/{}", n.redirect_um);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        let c = &self.c.global_rules;
        let get = c.get().set_project(p).set_forwarding_rule(&n.fr);
        let delete = c.delete().set_project(p).set_forwarding_rule(&n.fr);
        let resource = format!("global/forwardingRules/{}", n.fr);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        let c = &self.c.https_proxies;
        let get = c.get().set_project(p).set_target_https_proxy(&n.proxy);
        let delete = c.delete().set_project(p).set_target_https_proxy(&n.proxy);
        let resource = format!("global/targetHttpsProxies/{}", n.proxy);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        for cert in self.app_certificates(app, &n.cert_prefix).await? {
            if let Some(name) = &cert.name {
                self.delete_certificate(name).await?;
            }
        }
        let c = &self.c.url_maps;
        let get = c.get().set_project(p).set_url_map(&n.um);
        let delete = c.delete().set_project(p).set_url_map(&n.um);
        let resource = format!("global/urlMaps/{}", n.um);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        self.delete_backend_services_except(false, app, &id.name, &[])
            .await?;
        let c = &self.c.global_addresses;
        let get = c.get().set_project(p).set_address(&n.ip);
        let delete = c.delete().set_project(p).set_address(&n.ip);
        let resource = format!("global/addresses/{}", n.ip);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        // Last, as it was first: while any piece exists, so does the check.
        self.delete_global_health_check(app, &n.hc).await
    }
}

/// A certificate as ccd reports it: its status and each domain's.
fn state_of(c: &SslCertificate) -> CertificateState {
    let managed = c.managed.as_ref();
    let word = |n: Option<&str>| n.unwrap_or("UNKNOWN").to_owned();
    CertificateState {
        name: c.name.clone().unwrap_or_default(),
        status: word(
            managed
                .and_then(|m| m.status.as_ref())
                .and_then(|s| s.name()),
        ),
        domains: managed
            .map(|m| {
                m.domain_status
                    .iter()
                    .map(|(d, s)| (d.clone(), word(s.name())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The certificates the HTTPS proxy should serve: the one for the spec's
/// domains, and, until it is ACTIVE, those of the app it serves now, so
/// that HTTPS keeps working while the new one is provisioned (Google
/// provisions only a certificate a proxy serves).
fn certificates_to_attach(
    wanted: &str,
    wanted_active: bool,
    attached: &[String],
    ours: &[SslCertificate],
) -> Vec<String> {
    let mut out = vec![wanted.to_owned()];
    if !wanted_active {
        for name in attached {
            let is_ours = ours.iter().any(|c| c.name.as_deref() == Some(name));
            if is_ours && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_certificate_serves_until_the_new_one_is_active() {
        let ours = [
            SslCertificate::new().set_name("web-cert-old"),
            SslCertificate::new().set_name("web-cert-new"),
        ];
        let attached = ["web-cert-old".to_owned(), "someone-elses".to_owned()];
        assert_eq!(
            certificates_to_attach("web-cert-new", false, &attached, &ours),
            ["web-cert-new", "web-cert-old"],
            "both while the new one provisions; never a certificate ccd did not make"
        );
        assert_eq!(
            certificates_to_attach("web-cert-new", true, &attached, &ours),
            ["web-cert-new"]
        );
        assert_eq!(
            certificates_to_attach("web-cert-new", false, &[], &ours),
            ["web-cert-new"],
            "a first certificate is served at once, so that it can be provisioned"
        );
    }

    #[test]
    fn a_certificates_state_names_each_domain() {
        use google_cloud_compute_v1::model::ssl_certificate_managed_ssl_certificate::{
            DomainStatus, Status,
        };
        let c = SslCertificate::new().set_name("web-cert-1").set_managed(
            SslCertificateManagedSslCertificate::new()
                .set_status(Status::Provisioning)
                .set_domain_status([("shop.example.com", DomainStatus::FailedNotVisible)]),
        );
        let s = state_of(&c);
        assert!(!s.active());
        assert_eq!(s.status, "PROVISIONING");
        assert_eq!(s.domains["shop.example.com"], "FAILED_NOT_VISIBLE");
    }
}
