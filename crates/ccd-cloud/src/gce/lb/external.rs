//! The global external HTTPS load balancer: health check → a backend
//! service per group → URL map (weights) → managed certificate → target
//! HTTPS proxy → global address → global forwarding rule on 443.

use google_cloud_compute_v1::model::{
    Address, ForwardingRule, SslCertificate, SslCertificateManagedSslCertificate, TargetHttpsProxy,
    forwarding_rule, ssl_certificate,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::{Names, piece};
use crate::gce::GceCloud;
use crate::gce::call::{Outcome, with_fresh_fingerprint};
use crate::gce::marker::{self, name_of};
use crate::model::{LbId, LbPieceKind as P, LbState, LoadBalancerSpec};

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
        let (um, cert_link) = (
            self.link(&format!("global/urlMaps/{}", n.um)),
            self.link(&format!("global/sslCertificates/{cert}")),
        );
        with_fresh_fingerprint(|| self.ensure_https_proxy(&spec.app, &n.proxy, &um, &cert_link))
            .await?;
        // Certificates for domains no longer served, now that the proxy lets go of them.
        for old in self
            .app_certificates(&spec.app, &n.cert_prefix)
            .await?
            .into_iter()
            .filter(|c| *c != cert)
        {
            self.delete_certificate(&old).await?;
        }
        let ip = self.ensure_global_address(spec, &n.ip).await?;
        let proxy = self.link(&format!("global/targetHttpsProxies/{}", n.proxy));
        self.ensure_global_rule(spec, &n.fr, &ip, &proxy).await
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

    /// The app's certificates named `{prefix}*`.
    async fn app_certificates(&self, app: &str, prefix: &str) -> Outcome<Vec<String>> {
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
                    .filter_map(|c| c.name)
                    .filter(|n| n.starts_with(prefix)),
            );
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
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
        cert: &str,
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
                    .set_ssl_certificates([cert]);
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
                let certs: Vec<&str> = current
                    .ssl_certificates
                    .iter()
                    .map(|c| name_of(c))
                    .collect();
                if certs == [name_of(cert)]
                    && current.url_map.as_deref().map(name_of) == Some(name_of(url_map))
                {
                    return Ok(());
                }
                let body = TargetHttpsProxy::new()
                    .set_url_map(url_map)
                    .set_ssl_certificates([cert])
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
            .set_port_range("443")
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
        let cert_name = certs
            .first()
            .cloned()
            .unwrap_or_else(|| n.cert_prefix.trim_end_matches('-').to_owned());
        Ok(LbState {
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
                ])
                .collect(),
        })
    }

    pub(super) async fn delete_external(&self, id: &LbId, n: &Names) -> Outcome<()> {
        let (p, app) = (self.project(), id.app.as_str());
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
            self.delete_certificate(&cert).await?;
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
