//! Ingress firewall rules to the app's instances (by their network tag).
//! Firewalls have no fingerprint: a changed rule is replaced whole.

use google_cloud_compute_v1::model::{Firewall, Subnetwork, firewall, subnetwork};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::GceCloud;
use super::call::{Kind, Outcome};
use super::marker::{self, name_of};
use crate::model::{FirewallSpec, LB_PROXIES, instance_tag};

/// `sources` with [`LB_PROXIES`] replaced by the proxies' ranges, in order.
fn expand(sources: &[String], proxies: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in sources {
        let add = if s == LB_PROXIES {
            proxies
        } else {
            std::slice::from_ref(s)
        };
        for a in add {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
    }
    out
}

/// A proxy-only subnet, under either purpose Compute has used for it
/// (`INTERNAL_HTTPS_LOAD_BALANCER` is the older name, still found in
/// projects made before `REGIONAL_MANAGED_PROXY`). Filtered here, not in
/// the list call, so that both are found.
fn is_proxy_only(s: &Subnetwork) -> bool {
    use subnetwork::Purpose;
    matches!(
        s.purpose,
        Some(Purpose::RegionalManagedProxy | Purpose::InternalHttpsLoadBalancer)
    )
}

impl GceCloud {
    fn render_firewall(&self, spec: &FirewallSpec) -> Firewall {
        Firewall::new()
            .set_name(&spec.name)
            .set_description(marker::description(&spec.app, &[]))
            .set_network(&self.config.network)
            .set_direction(firewall::Direction::Ingress)
            .set_priority(1000)
            .set_source_ranges(spec.sources.clone())
            .set_target_tags([instance_tag(&spec.app)])
            .set_allowed([firewall::Allowed::new()
                .set_ip_protocol("tcp")
                .set_ports([spec.port.to_string()])])
    }

    /// The region's proxy-only subnet ranges, when `spec` asks for them.
    /// Found once; none found (or a cloud without subnetworks, like the
    /// local cloud, whose proxies come from the health-check ranges) is asked
    /// again next time, as the subnet may be created later.
    async fn lb_proxy_ranges(&self, spec: &FirewallSpec) -> Outcome<Vec<String>> {
        if !spec.sources.iter().any(|s| s == LB_PROXIES) {
            return Ok(Vec::new());
        }
        if let Some(ranges) = self.proxy_ranges.get() {
            return Ok(ranges.clone());
        }
        let resource = format!("regions/{}/subnetworks", self.region());
        let network = name_of(&self.config.network).to_owned();
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let list = self
                .c
                .subnetworks
                .list()
                .set_project(self.project())
                .set_region(self.region())
                .set_page_token(&token)
                .send();
            let page = match self.read(&resource, list).await {
                Ok(page) => page,
                Err(f) if f.kind == Kind::NotFound => return Ok(Vec::new()),
                Err(f) => return Err(f),
            };
            out.extend(
                page.items
                    .into_iter()
                    .filter(is_proxy_only)
                    .filter(|s| s.network.as_deref().map(name_of) == Some(network.as_str()))
                    .filter_map(|s| s.ip_cidr_range),
            );
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => break,
            }
        }
        out.sort();
        if !out.is_empty() {
            let _ = self.proxy_ranges.set(out.clone());
        }
        Ok(out)
    }

    /// The rule in ccd's terms, when it is one ccd made for `app`.
    fn parse_firewall(app: &str, f: &Firewall) -> Option<FirewallSpec> {
        if !marker::owned_by(f.description.as_deref(), app) {
            return None;
        }
        let port = f
            .allowed
            .first()
            .and_then(|a| a.ports.first())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Some(FirewallSpec {
            app: app.to_owned(),
            name: f.name.clone()?,
            port,
            sources: f.source_ranges.clone(),
        })
    }

    #[tracing::instrument(skip_all, fields(app = %app))]
    pub(crate) async fn list_firewalls_impl(&self, app: &str) -> Outcome<Vec<FirewallSpec>> {
        let mut out = Vec::new();
        let mut token = String::new();
        // Firewall rules take no labels: the server-side filter is the exact
        // description ccd writes, so a pass reads the app's rules only, not
        // every rule of the project; ownership is checked again below.
        let filter = format!("description = \"{}\"", marker::description(app, &[]));
        loop {
            let list = self
                .c
                .firewalls
                .list()
                .set_project(self.project())
                .set_filter(&filter)
                .set_page_token(&token)
                .send();
            let page = self.read("global/firewalls", list).await?;
            for rule in page
                .items
                .iter()
                .filter_map(|f| Self::parse_firewall(app, f))
            {
                self.seen
                    .saw(&format!("global/firewalls/{}", rule.name), true);
                out.push(rule);
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(app = %spec.app, firewall = %spec.name))]
    pub(crate) async fn apply_firewall_impl(&self, spec: &FirewallSpec) -> Outcome<()> {
        let resource = format!("global/firewalls/{}", spec.name);
        let c = &self.c.firewalls;
        let get = || {
            c.get()
                .set_project(self.project())
                .set_firewall(&spec.name)
                .send()
        };
        let spec = &FirewallSpec {
            sources: expand(&spec.sources, &self.lb_proxy_ranges(spec).await?),
            ..spec.clone()
        };
        if spec.sources.is_empty() {
            // A rule without sources would admit everyone: have none instead.
            return match self.find(&resource, get()).await? {
                Some(current) => {
                    marker::check_owned(&resource, &spec.app, &current)?;
                    self.delete_firewall_impl(&spec.app, &spec.name).await
                }
                None => Ok(()),
            };
        }
        let want = self.render_firewall(spec);
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
        marker::check_owned(&resource, &spec.app, &current)?;
        let mut sources = current.source_ranges.clone();
        sources.sort();
        let mut want_sources = spec.sources.clone();
        want_sources.sort();
        let same = Self::parse_firewall(&spec.app, &current).is_some_and(|c| c.port == spec.port)
            && sources == want_sources
            && current.target_tags == want.target_tags
            && current.allowed.len() == 1;
        if same {
            return Ok(());
        }
        let update = c
            .update()
            .set_project(self.project())
            .set_firewall(&spec.name)
            .set_body(want);
        self.mutate(&resource, idempotent!(update)).await?;
        tracing::info!(resource, "firewall rule updated");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(app = %app, firewall = %name))]
    pub(crate) async fn delete_firewall_impl(&self, app: &str, name: &str) -> Outcome<()> {
        let c = &self.c.firewalls;
        let get = c.get().set_project(self.project()).set_firewall(name);
        let delete = c.delete().set_project(self.project()).set_firewall(name);
        let resource = format!("global/firewalls/{name}");
        self.remove_owned(app, &resource, get.send(), idempotent!(delete))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_only_subnets_are_found_under_the_old_purpose_too() {
        use subnetwork::Purpose;
        let with = |p: Purpose| Subnetwork::new().set_purpose(p);
        assert!(is_proxy_only(&with(Purpose::RegionalManagedProxy)));
        assert!(is_proxy_only(&with(Purpose::InternalHttpsLoadBalancer)));
        assert!(!is_proxy_only(&with(Purpose::Private)));
        assert!(!is_proxy_only(&Subnetwork::new()));
    }

    #[test]
    fn the_proxy_placeholder_becomes_ranges_or_nothing() {
        let ask = vec![LB_PROXIES.to_owned()];
        assert_eq!(expand(&ask, &["10.129.0.0/23".into()]), ["10.129.0.0/23"]);
        assert!(
            expand(&ask, &[]).is_empty(),
            "no proxy-only subnet: no sources, so no rule (never an open one)"
        );
        let plain = vec!["10.0.0.0/8".to_owned()];
        assert_eq!(expand(&plain, &["10.129.0.0/23".into()]), plain);
    }
}
