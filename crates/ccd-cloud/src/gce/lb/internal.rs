//! The regional internal HTTP load balancer (INTERNAL_MANAGED): regional
//! health check → a regional backend service per group → regional URL map
//! (weights) → regional
//! target HTTP proxy → internal address → regional forwarding rule on the
//! app's port, in the configured network and subnetwork.

use google_cloud_compute_v1::model::{
    Address, ForwardingRule, TargetHttpProxy, address, forwarding_rule,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::{Names, piece};
use crate::gce::GceCloud;
use crate::gce::call::Outcome;
use crate::gce::marker::{self, name_of};
use crate::model::{LbId, LbPieceKind as P, LbState, LoadBalancerSpec};

impl GceCloud {
    fn subnetwork(&self) -> String {
        self.config
            .subnetwork
            .clone()
            .unwrap_or_else(|| format!("regions/{}/subnetworks/default", self.region()))
    }

    pub(super) fn regional(&self, collection: &str, name: &str) -> String {
        format!("regions/{}/{collection}/{name}", self.region())
    }

    pub(super) async fn apply_internal(
        &self,
        spec: &LoadBalancerSpec,
        n: &Names,
        port: u16,
    ) -> Outcome<()> {
        self.apply_routing(spec, n, true).await?;
        let um = self.link(&self.regional("urlMaps", &n.um));
        self.ensure_http_proxy(&spec.app, &n.proxy, &um).await?;
        let ip = self.ensure_internal_address(spec, &n.ip).await?;
        let proxy = self.link(&self.regional("targetHttpProxies", &n.proxy));
        self.ensure_region_rule(spec, &n.fr, &ip, &proxy, port)
            .await
    }

    async fn ensure_http_proxy(&self, app: &str, name: &str, url_map: &str) -> Outcome<()> {
        let (p, r) = (self.project(), self.region());
        let resource = self.regional("targetHttpProxies", name);
        let get = self
            .c
            .rhttp_proxies
            .get()
            .set_project(p)
            .set_region(r)
            .set_target_http_proxy(name)
            .send();
        if let Some(current) = self.find(&resource, get).await? {
            return marker::check_owned(&resource, app, &current);
        }
        let body = TargetHttpProxy::new()
            .set_name(name)
            .set_description(marker::description(app, &[]))
            .set_url_map(url_map);
        let insert = self
            .c
            .rhttp_proxies
            .insert()
            .set_project(p)
            .set_region(r)
            .set_body(body);
        self.create(&resource, idempotent!(insert)).await
    }

    /// Reserves an internal address in the subnetwork, so the balancer keeps
    /// its address when the forwarding rule is rebuilt; returns it.
    async fn ensure_internal_address(
        &self,
        spec: &LoadBalancerSpec,
        name: &str,
    ) -> Outcome<String> {
        let (p, r) = (self.project(), self.region());
        let resource = self.regional("addresses", name);
        let get = || {
            self.c
                .addresses
                .get()
                .set_project(p)
                .set_region(r)
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
            .set_labels(marker::labels(&spec.app, &spec.labels))
            .set_address_type(address::AddressType::Internal)
            .set_subnetwork(self.subnetwork());
        let insert = self
            .c
            .addresses
            .insert()
            .set_project(p)
            .set_region(r)
            .set_body(body);
        self.create(&resource, idempotent!(insert)).await?;
        let address = self.read(&resource, get()).await?;
        Ok(address.address.unwrap_or_default())
    }

    async fn ensure_region_rule(
        &self,
        spec: &LoadBalancerSpec,
        name: &str,
        ip: &str,
        proxy: &str,
        port: u16,
    ) -> Outcome<()> {
        let (p, r) = (self.project(), self.region());
        let resource = self.regional("forwardingRules", name);
        if let Some(current) = self
            .find(
                &resource,
                self.c
                    .rules
                    .get()
                    .set_project(p)
                    .set_region(r)
                    .set_forwarding_rule(name)
                    .send(),
            )
            .await?
        {
            marker::check_owned(&resource, &spec.app, &current)?;
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
            .set_network(&self.config.network)
            .set_subnetwork(self.subnetwork())
            .set_load_balancing_scheme(forwarding_rule::LoadBalancingScheme::InternalManaged);
        let insert = self
            .c
            .rules
            .insert()
            .set_project(p)
            .set_region(r)
            .set_body(body);
        self.create(&resource, idempotent!(insert)).await
    }

    pub(super) async fn internal_state(&self, id: &LbId, n: &Names) -> Outcome<LbState> {
        let (p, r) = (self.project(), self.region());
        let hc = self
            .c
            .rhealth_checks
            .get()
            .set_project(p)
            .set_region(r)
            .set_health_check(&n.hc)
            .send();
        let hc = self.find(&self.regional("healthChecks", &n.hc), hc).await?;
        let services = self.backend_pieces(true, &id.app, &id.name).await?;
        let um = self
            .c
            .rurl_maps
            .get()
            .set_project(p)
            .set_region(r)
            .set_url_map(&n.um)
            .send();
        let um = self.find(&self.regional("urlMaps", &n.um), um).await?;
        let proxy = self
            .c
            .rhttp_proxies
            .get()
            .set_project(p)
            .set_region(r)
            .set_target_http_proxy(&n.proxy)
            .send();
        let proxy = self
            .find(&self.regional("targetHttpProxies", &n.proxy), proxy)
            .await?;
        let ip = self
            .c
            .addresses
            .get()
            .set_project(p)
            .set_region(r)
            .set_address(&n.ip)
            .send();
        let ip = self.find(&self.regional("addresses", &n.ip), ip).await?;
        let fr = self
            .c
            .rules
            .get()
            .set_project(p)
            .set_region(r)
            .set_forwarding_rule(&n.fr)
            .send();
        let fr = self
            .find(&self.regional("forwardingRules", &n.fr), fr)
            .await?;
        Ok(LbState {
            certificate: None,
            address: ip
                .as_ref()
                .and_then(|a| a.address.as_deref())
                .and_then(|a| a.parse().ok()),
            pieces: std::iter::once(piece(P::HealthCheck, &n.hc, hc.is_some()))
                .chain(services)
                .chain([
                    piece(P::UrlMap, &n.um, um.is_some()),
                    piece(P::TargetProxy, &n.proxy, proxy.is_some()),
                    piece(P::Address, &n.ip, ip.is_some()),
                    piece(P::ForwardingRule, &n.fr, fr.is_some()),
                ])
                .collect(),
        })
    }

    pub(super) async fn delete_internal(&self, id: &LbId, n: &Names) -> Outcome<()> {
        let (p, r, app) = (self.project(), self.region(), id.app.as_str());
        let c = &self.c.rules;
        let get = c
            .get()
            .set_project(p)
            .set_region(r)
            .set_forwarding_rule(&n.fr);
        let delete = c
            .delete()
            .set_project(p)
            .set_region(r)
            .set_forwarding_rule(&n.fr);
        let resource = self.regional("forwardingRules", &n.fr);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        let c = &self.c.rhttp_proxies;
        let get = c.get().set_project(p).set_region(r);
        let get = get.set_target_http_proxy(&n.proxy);
        let delete = c.delete().set_project(p).set_region(r);
        let delete = delete.set_target_http_proxy(&n.proxy);
        let resource = self.regional("targetHttpProxies", &n.proxy);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        let c = &self.c.rurl_maps;
        let get = c.get().set_project(p).set_region(r).set_url_map(&n.um);
        let delete = c.delete().set_project(p).set_region(r).set_url_map(&n.um);
        let resource = self.regional("urlMaps", &n.um);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        self.delete_backend_services_except(true, app, &id.name, &[])
            .await?;
        let c = &self.c.addresses;
        let get = c.get().set_project(p).set_region(r).set_address(&n.ip);
        let delete = c.delete().set_project(p).set_region(r).set_address(&n.ip);
        let resource = self.regional("addresses", &n.ip);
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await?;
        // Last, as it was first: while any piece exists, so does the check.
        self.delete_region_health_check(app, &n.hc).await
    }
}
