//! Load balancers: a chain of resources, each naming the one before it,
//! created in dependency order and deleted in reverse. External: global
//! HTTPS (EXTERNAL_MANAGED) with a managed certificate. Internal: regional
//! HTTP (INTERNAL_MANAGED, Envoy), which on Compute Engine needs the
//! region's proxy-only subnet to exist (a network prerequisite ccd does not
//! own, as every internal load balancer of the region shares it).

mod external;
mod internal;

use std::time::Duration;

use google_cloud_compute_v1::model::{
    Backend, BackendService, ConnectionDraining, backend, backend_service,
};
use sha2::{Digest, Sha256};

use super::GceCloud;
use super::call::{Failure, Kind, Outcome};
use super::marker::{self, name_of};
use crate::model::{GroupId, LbId, LbKind, LbPiece, LbPieceKind, LbState, LoadBalancerSpec};

/// The names of a load balancer's pieces: `{name}-{piece}`.
struct Names {
    hc: String,
    bs: String,
    um: String,
    proxy: String,
    ip: String,
    fr: String,
    /// Certificates are immutable: each set of domains gets its own, `{name}-cert-{hash}`.
    cert_prefix: String,
}

impl Names {
    fn of(name: &str) -> Self {
        Names {
            hc: format!("{name}-hc"),
            bs: format!("{name}-bs"),
            um: format!("{name}-um"),
            proxy: format!("{name}-proxy"),
            ip: format!("{name}-ip"),
            fr: format!("{name}-fr"),
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

/// The backend service ccd wants: the group behind the named port, probed
/// by the balancer's check, draining leaving instances for `drain`.
fn desired_backend(
    spec: &LoadBalancerSpec,
    name: &str,
    scheme: backend_service::LoadBalancingScheme,
    health_check: String,
    group: String,
) -> BackendService {
    BackendService::new()
        .set_name(name)
        .set_description(marker::description(&spec.app, &[]))
        .set_load_balancing_scheme(scheme)
        .set_protocol(backend_service::Protocol::Http)
        .set_port_name(&spec.port_name)
        .set_timeout_sec(30)
        .set_health_checks([health_check])
        .set_connection_draining(
            ConnectionDraining::new().set_draining_timeout_sec(secs(spec.drain)),
        )
        .set_backends([Backend::new()
            .set_group(group)
            .set_balancing_mode(backend::BalancingMode::Utilization)
            .set_capacity_scaler(1.0)])
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Whether a backend service serves the same group, port and check, with the same drain.
fn backend_matches(current: &BackendService, want: &BackendService) -> bool {
    let groups = |b: &BackendService| -> Vec<String> {
        b.backends
            .iter()
            .filter_map(|x| {
                x.group
                    .as_deref()
                    .map(|g| g.split("/projects/").nth(1).unwrap_or(g).to_owned())
            })
            .collect()
    };
    let checks = |b: &BackendService| -> Vec<String> {
        b.health_checks
            .iter()
            .map(|h| name_of(h).to_owned())
            .collect()
    };
    let drain = |b: &BackendService| {
        b.connection_draining
            .as_ref()
            .and_then(|d| d.draining_timeout_sec)
    };
    groups(current) == groups(want)
        && checks(current) == checks(want)
        && current.port_name == want.port_name
        && drain(current) == drain(want)
}

impl GceCloud {
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

    #[tracing::instrument(skip_all, fields(app = %spec.app, lb = %spec.name))]
    pub(crate) async fn apply_load_balancer_impl(
        &self,
        spec: &LoadBalancerSpec,
    ) -> Outcome<LbState> {
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
            self.internal_state(&id.app, &names).await
        } else {
            self.external_state(&id.app, &names).await
        }
    }

    /// Whether any piece exists, in one read: the health check is created
    /// first and deleted last, so it exists while any other piece does.
    pub(crate) async fn has_load_balancer_impl(&self, id: &LbId) -> Outcome<bool> {
        let names = Names::of(&id.name);
        let (p, r) = (self.project(), self.region());
        let found = if id.internal {
            let get = self.c.rhealth_checks.get().set_project(p).set_region(r);
            let get = get.set_health_check(&names.hc).send();
            self.find(&self.regional("healthChecks", &names.hc), get)
                .await?
                .is_some()
        } else {
            let get = self.c.health_checks.get().set_project(p);
            let get = get.set_health_check(&names.hc).send();
            let resource = format!("global/healthChecks/{}", names.hc);
            self.find(&resource, get).await?.is_some()
        };
        Ok(found)
    }

    #[tracing::instrument(skip_all, fields(app = %id.app, lb = %id.name))]
    pub(crate) async fn delete_load_balancer_impl(&self, id: &LbId) -> Outcome<()> {
        let names = Names::of(&id.name);
        if id.internal {
            self.delete_internal(&names).await
        } else {
            self.delete_external(&id.app, &names).await
        }
    }
}
