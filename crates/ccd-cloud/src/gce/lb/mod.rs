//! Load balancers: a chain of resources, each naming the one before it,
//! created in dependency order and deleted in reverse. External: global
//! HTTPS (EXTERNAL_MANAGED) with a managed certificate. Internal: regional
//! HTTP (INTERNAL_MANAGED, Envoy), which on Compute Engine needs the
//! region's proxy-only subnet to exist (a network prerequisite ccd does not
//! own, as every internal load balancer of the region shares it).

mod backends;
mod external;
mod internal;
mod services;
mod url_map;

use google_cloud_compute_v1::model::backend_service;
use sha2::{Digest, Sha256};

use super::GceCloud;
use super::call::{Failure, Kind, Outcome, with_fresh_fingerprint};
use super::health;
use crate::model::{GroupId, LbId, LbKind, LbPiece, LbPieceKind, LbState, LoadBalancerSpec};

/// The names of a load balancer's own pieces: `{name}-{piece}` (its backend
/// services are named after their groups: [`backends::service_name`]).
struct Names {
    hc: String,
    um: String,
    proxy: String,
    ip: String,
    fr: String,
    /// The HTTP-to-HTTPS redirect on port 80 (external balancers): its URL
    /// map, target HTTP proxy and forwarding rule, on the same address.
    redirect_um: String,
    http_proxy: String,
    http_fr: String,
    /// Certificates are immutable: each set of domains gets its own, `{name}-cert-{hash}`.
    cert_prefix: String,
}

impl Names {
    fn of(name: &str) -> Self {
        Names {
            hc: format!("{name}-hc"),
            um: format!("{name}-um"),
            proxy: format!("{name}-proxy"),
            ip: format!("{name}-ip"),
            fr: format!("{name}-fr"),
            redirect_um: format!("{name}-redirect"),
            http_proxy: format!("{name}-http-proxy"),
            http_fr: format!("{name}-http-fr"),
            cert_prefix: format!("{name}-cert-"),
        }
    }

    fn cert(&self, domains: &[String]) -> String {
        let mut sorted = domains.to_vec();
        sorted.sort();
        let digest = Sha256::digest(sorted.join(",").as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("{}{hex}", self.cert_prefix)
    }
}

fn piece(kind: LbPieceKind, name: &str, exists: bool) -> LbPiece {
    LbPiece {
        kind,
        name: name.to_owned(),
        exists,
    }
}

impl GceCloud {
    /// Where a piece lives: the region for an internal balancer, global otherwise.
    fn lb_resource(&self, internal: bool, collection: &str, name: &str) -> String {
        if internal {
            format!("regions/{}/{collection}/{name}", self.region())
        } else {
            format!("global/{collection}/{name}")
        }
    }

    /// The group's instance group link, which backends name.
    async fn group_link(&self, id: &GroupId) -> Outcome<String> {
        let resource = self.group_resource(id);
        let group = self.find_group(id).await?;
        group.and_then(|g| g.instance_group).ok_or_else(|| {
            Failure::new(
                Kind::NotFound,
                &resource,
                "the load balancer's group does not exist",
            )
        })
    }

    /// The health check, a backend service per group and the URL map
    /// routing to them by weight; then the balancer's backend services the
    /// map no longer names are deleted. Every backend service the map names
    /// exists before the map is written, so its one write moves traffic.
    async fn apply_routing(
        &self,
        spec: &LoadBalancerSpec,
        n: &Names,
        internal: bool,
    ) -> Outcome<()> {
        // Every group first: a missing one stops the call before anything changes.
        let mut groups = Vec::with_capacity(spec.backends.len());
        for b in &spec.backends {
            let link = self.group_link(&b.group).await?;
            groups.push((backends::service_name(&b.group), link, b.weight));
        }
        let check = health::render(&spec.app, &n.hc, &spec.health);
        let scheme = if internal {
            self.ensure_region_health_check(&spec.app, check).await?;
            backend_service::LoadBalancingScheme::InternalManaged
        } else {
            self.ensure_global_health_check(&spec.app, check).await?;
            backend_service::LoadBalancingScheme::ExternalManaged
        };
        let hc = self.link(&self.lb_resource(internal, "healthChecks", &n.hc));
        let mut routes = Vec::with_capacity(groups.len());
        let mut keep = Vec::with_capacity(groups.len());
        for (name, group, weight) in groups {
            let want = backends::desired(spec, &name, scheme.clone(), hc.clone(), group);
            with_fresh_fingerprint(|| self.ensure_backend_service(spec, internal, want.clone()))
                .await?;
            let link = self.link(&self.lb_resource(internal, "backendServices", &name));
            routes.push((link, weight));
            keep.push(name);
        }
        let want = url_map::desired(&spec.app, &n.um, &routes, spec.retry.as_ref());
        with_fresh_fingerprint(|| self.ensure_url_map(&spec.app, internal, want.clone())).await?;
        self.delete_backend_services_except(internal, &spec.app, &spec.name, &keep)
            .await
    }

    /// The balancer's backend services as pieces; one missing piece when it
    /// has none, so that a balancer without any is not complete.
    async fn backend_pieces(&self, internal: bool, app: &str, lb: &str) -> Outcome<Vec<LbPiece>> {
        let names = self.lb_backend_services(internal, app, lb).await?;
        if names.is_empty() {
            let name = backends::legacy_service_name(lb);
            return Ok(vec![piece(LbPieceKind::BackendService, &name, false)]);
        }
        Ok(names
            .iter()
            .map(|name| piece(LbPieceKind::BackendService, name, true))
            .collect())
    }

    #[tracing::instrument(skip_all, fields(app = %spec.app, lb = %spec.name))]
    pub(crate) async fn apply_load_balancer_impl(
        &self,
        spec: &LoadBalancerSpec,
    ) -> Outcome<LbState> {
        backends::validate(spec)?;
        let names = Names::of(&spec.name);
        match &spec.kind {
            LbKind::External { domains } => self.apply_external(spec, &names, domains).await?,
            LbKind::Internal { port } => self.apply_internal(spec, &names, *port).await?,
        }
        self.get_load_balancer_impl(&spec.id()).await
    }

    #[tracing::instrument(skip_all, fields(app = %id.app, lb = %id.name))]
    pub(crate) async fn get_load_balancer_impl(&self, id: &LbId) -> Outcome<LbState> {
        let names = Names::of(&id.name);
        if id.internal {
            self.internal_state(id, &names).await
        } else {
            self.external_state(id, &names).await
        }
    }

    /// Which kinds exist, in one read: the health check is created first and
    /// deleted last, so it exists while any other piece does, and one
    /// aggregated list finds the global one (external) and the region's
    /// (internal) together.
    pub(crate) async fn load_balancers_impl(&self, app: &str, name: &str) -> Outcome<Vec<LbId>> {
        let hc = Names::of(name).hc;
        let filter = format!("name = \"{hc}\"");
        let region = format!("regions/{}", self.region());
        let (mut external, mut internal) = (false, false);
        let mut token = String::new();
        loop {
            let list = self
                .c
                .health_checks
                .aggregated_list()
                .set_project(self.project())
                .set_filter(&filter)
                .set_page_token(&token)
                .send();
            let page = self.read("aggregated/healthChecks", list).await?;
            for (scope, listed) in &page.items {
                let here = listed
                    .health_checks
                    .iter()
                    .any(|h| h.name.as_deref() == Some(hc.as_str()));
                external |= here && scope == "global";
                internal |= here && *scope == region;
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => break,
            }
        }
        let id = |internal| LbId {
            app: app.to_owned(),
            name: name.to_owned(),
            internal,
        };
        let mut out = Vec::new();
        if external {
            out.push(id(false));
        }
        if internal {
            out.push(id(true));
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(app = %id.app, lb = %id.name))]
    pub(crate) async fn delete_load_balancer_impl(&self, id: &LbId) -> Outcome<()> {
        let names = Names::of(&id.name);
        if id.internal {
            self.delete_internal(id, &names).await
        } else {
            self.delete_external(id, &names).await
        }
    }
}
