//! Backend services, global (external balancers) or regional (internal
//! ones): created, corrected, found by their marker, deleted.

use google_cloud_compute_v1::model::BackendService;
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::backends;
use crate::gce::GceCloud;
use crate::gce::call::Outcome;
use crate::model::LoadBalancerSpec;

impl GceCloud {
    /// Creates the backend service, or patches it when it differs (unless
    /// another balancer owns it).
    pub(super) async fn ensure_backend_service(
        &self,
        spec: &LoadBalancerSpec,
        internal: bool,
        want: BackendService,
    ) -> Outcome<()> {
        let name = want.name.clone().unwrap_or_default();
        let resource = self.lb_resource(internal, "backendServices", &name);
        let (p, r) = (self.project(), self.region());
        let current = if internal {
            let get = self.c.rbackends.get().set_project(p).set_region(r);
            self.find(&resource, get.set_backend_service(&name).send())
                .await?
        } else {
            let get = self.c.backends.get().set_project(p);
            self.find(&resource, get.set_backend_service(&name).send())
                .await?
        };
        let current = match current {
            None if internal => {
                let insert = self.c.rbackends.insert().set_project(p).set_region(r);
                return self
                    .create(&resource, idempotent!(insert.set_body(want)))
                    .await;
            }
            None => {
                let insert = self.c.backends.insert().set_project(p).set_body(want);
                return self.create(&resource, idempotent!(insert)).await;
            }
            Some(current) => current,
        };
        backends::check_owner(&resource, &current, spec)?;
        if backends::matches(&current, &want) {
            return Ok(());
        }
        let body = want.set_or_clear_fingerprint(current.fingerprint);
        if internal {
            let patch = self.c.rbackends.patch().set_project(p).set_region(r);
            let patch = patch.set_backend_service(&name).set_body(body);
            self.mutate(&resource, idempotent!(patch)).await?;
        } else {
            let patch = self.c.backends.patch().set_project(p);
            let patch = patch.set_backend_service(&name).set_body(body);
            self.mutate(&resource, idempotent!(patch)).await?;
        }
        tracing::info!(resource, "backend service updated");
        Ok(())
    }

    /// The names of load balancer `lb`'s backend services, sorted.
    pub(super) async fn lb_backend_services(
        &self,
        internal: bool,
        app: &str,
        lb: &str,
    ) -> Outcome<Vec<String>> {
        let (p, r) = (self.project(), self.region());
        let resource = if internal {
            format!("regions/{r}/backendServices")
        } else {
            "global/backendServices".to_owned()
        };
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = if internal {
                let list = self.c.rbackends.list().set_project(p).set_region(r);
                self.read(&resource, list.set_page_token(&token).send())
                    .await?
            } else {
                let list = self.c.backends.list().set_project(p);
                self.read(&resource, list.set_page_token(&token).send())
                    .await?
            };
            out.extend(
                page.items
                    .into_iter()
                    .filter(|s| backends::belongs_to(s, app, lb))
                    .filter_map(|s| s.name),
            );
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    pub(super) async fn delete_backend_service(&self, internal: bool, name: &str) -> Outcome<()> {
        let resource = self.lb_resource(internal, "backendServices", name);
        let (p, r) = (self.project(), self.region());
        if internal {
            let delete = self.c.rbackends.delete().set_project(p).set_region(r);
            let delete = delete.set_backend_service(name);
            self.remove(&resource, idempotent!(delete)).await
        } else {
            let delete = self.c.backends.delete().set_project(p);
            let delete = delete.set_backend_service(name);
            self.remove(&resource, idempotent!(delete)).await
        }
    }

    /// Deletes the balancer's backend services not in `keep`: once the URL
    /// map no longer names them, nothing sends them requests.
    pub(super) async fn delete_backend_services_except(
        &self,
        internal: bool,
        app: &str,
        lb: &str,
        keep: &[String],
    ) -> Outcome<()> {
        for name in self.lb_backend_services(internal, app, lb).await? {
            if !keep.contains(&name) {
                self.delete_backend_service(internal, &name).await?;
            }
        }
        Ok(())
    }
}
