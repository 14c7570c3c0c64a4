//! What `ccd doctor` reads of a project: facts, not judgements (the binary
//! judges them). Reads only; every call here has its row in
//! [`permissions::TABLE`](super::permissions::TABLE), as the adapter's do.

use google_cloud_api_serviceusage_v1::client::ServiceUsage;
use google_cloud_auth::credentials::{AccessTokenCredentials, Credentials};
use google_cloud_compute_v1::client::{Firewalls, Networks, Regions, Routers, Subnetworks};
use google_cloud_compute_v1::model::{Firewall, Subnetwork, firewall, router_nat};
use google_cloud_resourcemanager_v3::client::Projects;

use super::call::classify;
use super::marker::{name_of, word};
use super::{GceConfig, invalid};
use crate::CloudError;
use crate::model::{APP_LABEL, MANAGED_LABEL};

/// A subnetwork of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub name: String,
    /// The network's name.
    pub network: String,
    pub range: String,
    pub private_google_access: bool,
    /// `PRIVATE`, `REGIONAL_MANAGED_PROXY`, `INTERNAL_HTTPS_LOAD_BALANCER`…
    pub purpose: String,
    /// `ACTIVE` or `BACKUP` for proxy-only subnets, empty otherwise.
    pub role: String,
}

/// A Cloud NAT gateway on a router of the network in the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat {
    pub router: String,
    pub name: String,
    /// It translates every subnetwork of the region.
    pub all_subnetworks: bool,
    /// Otherwise these (names).
    pub subnetworks: Vec<String>,
}

/// An ingress or egress rule of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// The app ccd made it for; `None` when ccd did not make it.
    pub ccd_app: Option<String>,
    pub ingress: bool,
    pub allow: bool,
    pub disabled: bool,
    pub sources: Vec<String>,
    /// Empty target tags and accounts: the rule applies to every instance.
    pub target_tags: Vec<String>,
    pub target_accounts: Vec<String>,
    /// `(protocol, ports)`; empty ports mean all of them.
    pub admits: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
struct Clients {
    networks: Networks,
    subnetworks: Subnetworks,
    routers: Routers,
    firewalls: Firewalls,
    regions: Regions,
    services: ServiceUsage,
    projects: Projects,
}

/// Reads a project's network setup and ccd's standing in it.
#[derive(Debug)]
pub struct Inspector {
    config: GceConfig,
    /// Ours, to show that a token can be had (`None` on a local cloud).
    token: Option<AccessTokenCredentials>,
    c: Clients,
}

macro_rules! build {
    ($ty:ty, $creds:expr, $endpoint:expr) => {{
        let mut b = <$ty>::builder().with_credentials($creds.clone());
        if let Some(endpoint) = $endpoint {
            b = b.with_endpoint(endpoint.clone());
        }
        b.build().await.map_err(|e| CloudError::Other {
            resource: format!("client {}", stringify!($ty)),
            message: e.to_string(),
        })?
    }};
}

impl Inspector {
    /// Clients for `config`'s project; nothing is sent yet.
    pub async fn new(config: &GceConfig) -> Result<Self, CloudError> {
        let (creds, token) = match &config.endpoint_token {
            Some(local) => (super::bearer::credentials(local)?, None),
            None => {
                let token = google_cloud_auth::credentials::Builder::default()
                    .build_access_token_credentials()
                    .map_err(|e| invalid(format!("Application Default Credentials: {e}")))?;
                (Credentials::from(token.clone()), Some(token))
            }
        };
        let endpoint = config.endpoint.as_ref();
        // Service Usage and Resource Manager are never asked on a local cloud.
        let google: Option<&String> = None;
        let c = Clients {
            networks: build!(Networks, creds, endpoint),
            subnetworks: build!(Subnetworks, creds, endpoint),
            routers: build!(Routers, creds, endpoint),
            firewalls: build!(Firewalls, creds, endpoint),
            regions: build!(Regions, creds, endpoint),
            services: build!(ServiceUsage, creds, google),
            projects: build!(Projects, creds, google),
        };
        Ok(Inspector {
            config: config.clone(),
            token,
            c,
        })
    }

    /// The network's name (`default` for `global/networks/default`).
    pub fn network_name(&self) -> &str {
        name_of(&self.config.network)
    }

    /// An access token from Application Default Credentials; `Ok` on a local cloud.
    pub async fn credentials(&self) -> Result<(), CloudError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        token
            .access_token()
            .await
            .map(|_| ())
            .map_err(|e| CloudError::Other {
                resource: "Application Default Credentials".to_owned(),
                message: e.to_string(),
            })
    }

    /// Reads the region: the project answers, Compute is on, the region exists.
    pub async fn region(&self) -> Result<(), CloudError> {
        let (p, r) = (&self.config.project, &self.config.region);
        let get = self.c.regions.get().set_project(p).set_region(r);
        get.send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&format!("projects/{p}/regions/{r}"), &e).into())
    }

    /// Whether `service` (`compute.googleapis.com`) is enabled in the project.
    pub async fn service_enabled(&self, service: &str) -> Result<bool, CloudError> {
        let name = format!("projects/{}/services/{service}", self.config.project);
        let got = self.c.services.get_service().set_name(&name).send().await;
        let service = got.map_err(|e| CloudError::from(classify(&name, &e)))?;
        Ok(service.state == google_cloud_api_serviceusage_v1::model::State::Enabled)
    }

    /// The permissions of `wanted` the caller lacks on the project.
    pub async fn missing_permissions(&self, wanted: &[&str]) -> Result<Vec<String>, CloudError> {
        let resource = format!("projects/{}", self.config.project);
        let mut missing: Vec<String> = Vec::new();
        // testIamPermissions takes at most 100 permissions per call.
        for chunk in wanted.chunks(100) {
            let test = self
                .c
                .projects
                .test_iam_permissions()
                .set_resource(&resource);
            let held = test
                .set_permissions(chunk.iter().copied())
                .send()
                .await
                .map_err(|e| CloudError::from(classify(&resource, &e)))?
                .permissions;
            let lacking = chunk.iter().filter(|p| !held.iter().any(|h| h == *p));
            missing.extend(lacking.map(|p| (*p).to_owned()));
        }
        Ok(missing)
    }

    /// Whether the configured network exists.
    pub async fn network_exists(&self) -> Result<bool, CloudError> {
        let (p, name) = (&self.config.project, self.network_name());
        let get = self.c.networks.get().set_project(p).set_network(name);
        match get.send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(&format!("global/networks/{name}"), &e).into() {
                CloudError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Every subnetwork of the region, of any network.
    pub async fn subnetworks(&self) -> Result<Vec<Subnet>, CloudError> {
        let (p, r) = (&self.config.project, &self.config.region);
        let resource = format!("regions/{r}/subnetworks");
        let (mut out, mut token) = (Vec::new(), String::new());
        loop {
            let list = self.c.subnetworks.list().set_project(p).set_region(r);
            let page = list
                .set_page_token(&token)
                .send()
                .await
                .map_err(|e| CloudError::from(classify(&resource, &e)))?;
            out.extend(page.items.iter().map(subnet));
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }

    /// The Cloud NAT gateways of the network's routers in the region.
    pub async fn nats(&self) -> Result<Vec<Nat>, CloudError> {
        let (p, r) = (&self.config.project, &self.config.region);
        let resource = format!("regions/{r}/routers");
        let (mut out, mut token) = (Vec::new(), String::new());
        loop {
            let list = self.c.routers.list().set_project(p).set_region(r);
            let page = list
                .set_page_token(&token)
                .send()
                .await
                .map_err(|e| CloudError::from(classify(&resource, &e)))?;
            for router in &page.items {
                if router.network.as_deref().map(name_of) != Some(self.network_name()) {
                    continue;
                }
                let router_name = router.name.clone().unwrap_or_default();
                out.extend(router.nats.iter().map(|n| {
                    Nat {
                        router: router_name.clone(),
                        name: n.name.clone().unwrap_or_default(),
                        all_subnetworks: !matches!(
                            n.source_subnetwork_ip_ranges_to_nat,
                            Some(router_nat::SourceSubnetworkIpRangesToNat::ListOfSubnetworks)
                        ),
                        subnetworks: n
                            .subnetworks
                            .iter()
                            .filter_map(|s| s.name.as_deref().map(|l| name_of(l).to_owned()))
                            .collect(),
                    }
                }));
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }

    /// The network's firewall rules.
    pub async fn firewalls(&self) -> Result<Vec<Rule>, CloudError> {
        let p = &self.config.project;
        let (mut out, mut token) = (Vec::new(), String::new());
        loop {
            let list = self
                .c
                .firewalls
                .list()
                .set_project(p)
                .set_page_token(&token);
            let page = list
                .send()
                .await
                .map_err(|e| CloudError::from(classify("global/firewalls", &e)))?;
            out.extend(
                page.items
                    .iter()
                    .filter(|f| f.network.as_deref().map(name_of) == Some(self.network_name()))
                    .map(rule),
            );
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }
}

fn subnet(s: &Subnetwork) -> Subnet {
    Subnet {
        name: s.name.clone().unwrap_or_default(),
        network: s
            .network
            .as_deref()
            .map(name_of)
            .unwrap_or_default()
            .to_owned(),
        range: s.ip_cidr_range.clone().unwrap_or_default(),
        private_google_access: s.private_ip_google_access == Some(true),
        purpose: s
            .purpose
            .as_ref()
            .and_then(|p| p.name())
            .unwrap_or("PRIVATE")
            .to_owned(),
        role: s
            .role
            .as_ref()
            .and_then(|r| r.name())
            .unwrap_or_default()
            .to_owned(),
    }
}

fn rule(f: &Firewall) -> Rule {
    let description = f.description.as_deref();
    let ccd_app = (word(description, MANAGED_LABEL) == Some("true"))
        .then(|| word(description, APP_LABEL).map(str::to_owned))
        .flatten();
    let allow = f.denied.is_empty();
    let admits = if allow {
        f.allowed
            .iter()
            .map(|a| (a.ip_protocol.clone().unwrap_or_default(), a.ports.clone()))
            .collect()
    } else {
        Vec::new()
    };
    Rule {
        name: f.name.clone().unwrap_or_default(),
        ccd_app,
        ingress: !matches!(f.direction, Some(firewall::Direction::Egress)),
        allow,
        disabled: f.disabled == Some(true),
        sources: f.source_ranges.clone(),
        target_tags: f.target_tags.clone(),
        target_accounts: f.target_service_accounts.clone(),
        admits,
    }
}
