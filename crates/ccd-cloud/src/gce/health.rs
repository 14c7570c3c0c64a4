//! Health checks from ccd's health definition: global ones (autohealing,
//! external load balancers) and regional ones (internal load balancers).

use std::time::Duration;

use google_cloud_compute_v1::model::{HTTPHealthCheck, HealthCheck, TCPHealthCheck, health_check};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::GceCloud;
use super::call::Outcome;
use super::marker::{self, check_owned};
use crate::model::{HealthCheckSpec, HealthDefinition, Probe};

/// Whole seconds, at least one (Compute's smallest interval and timeout).
fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub(crate) fn render(app: &str, name: &str, def: &HealthDefinition) -> HealthCheck {
    let hc = HealthCheck::new()
        .set_name(name)
        .set_description(marker::description(app, &[]))
        .set_check_interval_sec(secs(def.interval))
        .set_timeout_sec(secs(def.timeout))
        .set_healthy_threshold(count(def.healthy_threshold))
        .set_unhealthy_threshold(count(def.unhealthy_threshold));
    match &def.probe {
        Probe::Http { path, port } => hc.set_type(health_check::Type::Http).set_http_health_check(
            HTTPHealthCheck::new()
                .set_port(i32::from(*port))
                .set_request_path(path),
        ),
        Probe::Tcp { port } => hc
            .set_type(health_check::Type::Tcp)
            .set_tcp_health_check(TCPHealthCheck::new().set_port(i32::from(*port))),
    }
}

/// Whether `current` probes and times as `want` does (output fields aside).
pub(crate) fn matches(current: &HealthCheck, want: &HealthCheck) -> bool {
    let http = |h: &HealthCheck| {
        h.http_health_check
            .as_ref()
            .map(|p| (p.port, p.request_path.clone()))
    };
    let tcp = |h: &HealthCheck| h.tcp_health_check.as_ref().map(|p| p.port);
    current.r#type == want.r#type
        && current.check_interval_sec == want.check_interval_sec
        && current.timeout_sec == want.timeout_sec
        && current.healthy_threshold == want.healthy_threshold
        && current.unhealthy_threshold == want.unhealthy_threshold
        && http(current) == http(want)
        && tcp(current) == tcp(want)
}

impl GceCloud {
    /// Creates the global check or replaces it (`update`, so that a probe of
    /// another type leaves nothing of the old one behind).
    pub(crate) async fn ensure_global_health_check(
        &self,
        app: &str,
        want: HealthCheck,
    ) -> Outcome<()> {
        let name = want.name.clone().unwrap_or_default();
        let resource = format!("global/healthChecks/{name}");
        let c = &self.c.health_checks;
        let get = || {
            c.get()
                .set_project(self.project())
                .set_health_check(&name)
                .send()
        };
        let insert = || {
            let insert = c
                .insert()
                .set_project(self.project())
                .set_body(want.clone());
            idempotent!(insert)
        };
        let Some(current) = self.find_or_insert(&resource, get, insert).await? else {
            return Ok(());
        };
        check_owned(&resource, app, &current)?;
        if matches(&current, &want) {
            return Ok(());
        }
        let update = c
            .update()
            .set_project(self.project())
            .set_health_check(&name)
            .set_body(want);
        self.mutate(&resource, idempotent!(update)).await?;
        tracing::info!(resource, "health check updated");
        Ok(())
    }

    pub(crate) async fn ensure_region_health_check(
        &self,
        app: &str,
        want: HealthCheck,
    ) -> Outcome<()> {
        let name = want.name.clone().unwrap_or_default();
        let resource = format!("regions/{}/healthChecks/{name}", self.region());
        let (c, p, r) = (&self.c.rhealth_checks, self.project(), self.region());
        let get = || {
            c.get()
                .set_project(p)
                .set_region(r)
                .set_health_check(&name)
                .send()
        };
        let insert = || {
            let insert = c
                .insert()
                .set_project(p)
                .set_region(r)
                .set_body(want.clone());
            idempotent!(insert)
        };
        let Some(current) = self.find_or_insert(&resource, get, insert).await? else {
            return Ok(());
        };
        check_owned(&resource, app, &current)?;
        if matches(&current, &want) {
            return Ok(());
        }
        let update = c
            .update()
            .set_project(p)
            .set_region(r)
            .set_health_check(&name)
            .set_body(want);
        self.mutate(&resource, idempotent!(update)).await?;
        tracing::info!(resource, "health check updated");
        Ok(())
    }

    pub(crate) async fn delete_global_health_check(&self, app: &str, name: &str) -> Outcome<()> {
        let c = &self.c.health_checks;
        let get = c.get().set_project(self.project()).set_health_check(name);
        let delete = c
            .delete()
            .set_project(self.project())
            .set_health_check(name);
        let resource = format!("global/healthChecks/{name}");
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await
    }

    pub(crate) async fn delete_region_health_check(&self, app: &str, name: &str) -> Outcome<()> {
        let (c, p, r) = (&self.c.rhealth_checks, self.project(), self.region());
        let get = c.get().set_project(p).set_region(r).set_health_check(name);
        let delete = c
            .delete()
            .set_project(p)
            .set_region(r)
            .set_health_check(name);
        let resource = format!("regions/{r}/healthChecks/{name}");
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await
    }

    #[tracing::instrument(skip_all, fields(app = %spec.app, health_check = %spec.name))]
    pub(crate) async fn apply_health_check_impl(&self, spec: &HealthCheckSpec) -> Outcome<()> {
        self.ensure_global_health_check(&spec.app, render(&spec.app, &spec.name, &spec.health))
            .await
    }

    #[tracing::instrument(skip_all, fields(app = %app, health_check = %name))]
    pub(crate) async fn delete_health_check_impl(&self, app: &str, name: &str) -> Outcome<()> {
        self.delete_global_health_check(app, name).await
    }
}
