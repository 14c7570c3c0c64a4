//! The checks that ask the cloud: credentials, project, APIs, network,
//! subnetwork, egress, proxy-only subnet, firewall breadth, permissions.

use std::path::Path;

use ccd_cloud::inspect::{Inspector, Subnet};
use ccd_cloud::{CloudError, GceConfig, permissions};

use super::Report;
use super::judge::{self, Needs};
use crate::controller::ControllerConfig;

const LOCAL: &str = "not checked: the local cloud does not serve this";

/// Whether the project answered with the credentials found (the checks
/// that follow, here and in `services.rs`, only mean something then).
pub(super) async fn checks(
    config: &ControllerConfig,
    path: &Path,
    needs: &Needs,
    r: &mut Report,
) -> bool {
    // A local cloud is one on this machine (or one given a token file); any
    // other endpoint is Compute Engine behind another address and gets the
    // real checks.
    let local = config.local_cloud();
    let endpoint_token = match config.endpoint_token() {
        Ok(token) => token,
        Err(e) => {
            r.fail("credentials", format!("{e:#}"));
            return false;
        }
    };
    let gce = GceConfig {
        project: config.project.clone(),
        region: config.region.clone(),
        endpoint: config.endpoint.clone(),
        endpoint_token,
        network: config.network.clone(),
        subnetwork: config.subnetwork.clone(),
        ..GceConfig::default()
    };
    let inspector = match Inspector::new(&gce).await {
        Ok(i) => i,
        Err(e) => {
            r.fail("credentials", format!("{e}; {}", credentials_fix()));
            return false;
        }
    };
    let i = &inspector;
    match (
        &config.endpoint,
        &config.endpoint_token_file,
        i.credentials().await,
    ) {
        (Some(endpoint), Some(file), _) => r.ok(
            "credentials",
            format!(
                "the local cloud's token from {} for {endpoint}",
                file.display()
            ),
        ),
        (_, _, Ok(())) => r.ok(
            "credentials",
            "Application Default Credentials give a token",
        ),
        (_, _, Err(e)) => {
            r.fail("credentials", format!("{e}; {}", credentials_fix()));
            return false;
        }
    }
    let (p, region) = (&config.project, &config.region);
    if let Err(e) = i.region().await {
        let fix = match e {
            _ if local => format!(
                "check \"endpoint\" and \"endpointTokenFile\" in {}: is the local cloud running, and is the file its data folder's `token`?",
                path.display()
            ),
            CloudError::NotFound { .. } => format!(
                "check \"project\" and \"region\" in {}: project {p} or region {region} does not exist",
                path.display()
            ),
            _ => format!(
                "enable Compute Engine (gcloud services enable compute.googleapis.com --project {p}) and grant the role (deploy/bootstrap.sh)"
            ),
        };
        r.fail("project", format!("{e}; {fix}"));
        return false;
    }
    r.ok(
        "project",
        format!("project {p} answers; region {region} exists"),
    );
    if local {
        r.warn("apis", LOCAL);
    } else {
        apis(i, config, needs, r).await;
    }
    network(i, config, path, needs, r).await;
    if local {
        r.warn("permissions", LOCAL);
    } else {
        let all = permissions::all();
        match i.missing_permissions(&all).await {
            Ok(missing) if missing.is_empty() => r.ok(
                "permissions",
                format!("all {} permissions of role {} held", all.len(), permissions::ROLE_ID),
            ),
            Ok(missing) => r.fail(
                "permissions",
                format!(
                    "missing {}: {}; run deploy/bootstrap.sh (it updates role {}), or: ccd doctor --print-role > role.yaml && gcloud iam roles update {} --project {p} --file role.yaml",
                    missing.len(),
                    missing.join(", "),
                    permissions::ROLE_ID,
                    permissions::ROLE_ID
                ),
            ),
            Err(e) => r.fail("permissions", format!("{e}; enable cloudresourcemanager.googleapis.com")),
        }
    }
    true
}

fn credentials_fix() -> &'static str {
    "run `gcloud auth application-default login`, or run on a VM whose service account is the controller's"
}

async fn apis(i: &Inspector, config: &ControllerConfig, needs: &Needs, r: &mut Report) {
    let mut services = vec![
        "compute.googleapis.com",
        "secretmanager.googleapis.com",
        "iam.googleapis.com",
        "monitoring.googleapis.com",
        "storage.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    ];
    if config.pubsub.is_some() {
        services.push("pubsub.googleapis.com");
    }
    // The apps' services: what the specs ask for and the configuration places.
    let asked = needs.services.keys().copied().collect();
    let configured = config
        .services
        .as_ref()
        .map(crate::gcp_services::ServicesSettings::placed)
        .unwrap_or_default();
    services.extend(judge::service_apis(&asked, &configured));
    let (mut off, mut errors) = (Vec::new(), Vec::new());
    for s in &services {
        match i.service_enabled(s).await {
            Ok(true) => {}
            Ok(false) => off.push(*s),
            Err(e) => errors.push(format!("{s}: {e}")),
        }
    }
    let p = &config.project;
    if !errors.is_empty() {
        r.fail(
            "apis",
            format!(
                "{}; enable serviceusage.googleapis.com and grant the role (deploy/bootstrap.sh)",
                errors.join("; ")
            ),
        );
    } else if off.is_empty() {
        r.ok("apis", format!("enabled: {}", services.join(", ")));
    } else {
        r.fail(
            "apis",
            format!(
                "not enabled: {}; gcloud services enable {} --project {p}",
                off.join(", "),
                off.join(" ")
            ),
        );
    }
}

async fn network(
    i: &Inspector,
    config: &ControllerConfig,
    path: &Path,
    needs: &Needs,
    r: &mut Report,
) {
    let (net, region, p) = (i.network_name(), &config.region, &config.project);
    match i.network_exists().await {
        Ok(true) => r.ok("network", format!("{net} exists")),
        Ok(false) => {
            return r.fail(
                "network",
                format!(
                    "network {net} not found in project {p}: set \"network\": \"NAME\" in {} to an existing one, or create it: gcloud compute networks create {net} --subnet-mode=auto --project {p}",
                    path.display()
                ),
            );
        }
        Err(e) => return r.fail("network", e),
    }
    let subnets = match i.subnetworks().await {
        Ok(s) => s,
        Err(e) => return r.fail("subnetwork", e),
    };
    let wanted = config
        .subnetwork
        .as_deref()
        .map(|s| s.rsplit('/').next().unwrap_or(s));
    let subnet = match pick(&subnets, net, wanted) {
        Ok(s) => {
            r.ok(
                "subnetwork",
                format!("{} ({}) in {region}", s.name, s.range),
            );
            s
        }
        Err(e) => {
            return r.fail(
                "subnetwork",
                format!("{e} (\"subnetwork\" in {})", path.display()),
            );
        }
    };
    let nats = if subnet.private_google_access {
        Ok(Vec::new())
    } else {
        i.nats().await
    };
    match nats {
        Ok(nats) => match judge::egress(subnet, region, &nats, &needs.images) {
            Ok(how) => r.ok("egress", how),
            Err(fix) => r.fail("egress", fix),
        },
        Err(_) if config.local_cloud() => r.warn("egress", LOCAL),
        Err(e) => r.fail("egress", e),
    }
    if needs.internal_apps.is_empty() {
        r.ok("proxy-only subnet", "no internal app needs one");
    } else if let Some(s) = judge::proxy_only(&subnets, net) {
        r.ok(
            "proxy-only subnet",
            format!("{} ({}, {}) in {region}", s.name, s.range, s.purpose),
        );
    } else if config.local_cloud() {
        r.warn(
            "proxy-only subnet",
            "not checked: the local cloud's internal load balancers need none",
        );
    } else {
        r.fail(
            "proxy-only subnet",
            format!(
                "internal apps {} need one in {region}: gcloud compute networks subnets create proxy-only-{region} --purpose=REGIONAL_MANAGED_PROXY --role=ACTIVE --network {net} --region {region} --range 10.129.0.0/23",
                needs.internal_apps.join(", ")
            ),
        );
    }
    match i.firewalls().await {
        Ok(rules) => {
            let broad = judge::broad_rules(&rules, &needs.ports);
            let asked: Vec<String> = needs.ports.iter().map(|p| format!("tcp:{p}")).collect();
            for b in &broad {
                r.warn(
                    "firewall",
                    format!(
                        "{b}; the specs ask for {}: narrow it with --target-tags or --rules, or delete it (gcloud compute firewall-rules update|delete NAME)",
                        if asked.is_empty() { "no port".to_owned() } else { asked.join(",") }
                    ),
                );
            }
            if broad.is_empty() {
                r.ok(
                    "firewall",
                    format!("no rule of {net} admits more than the specs ask for"),
                );
            }
        }
        Err(e) => r.fail("firewall", e),
    }
}

/// The subnetwork the controller uses: the named one, else the network's
/// `default` (or only) one in the region.
fn pick<'a>(
    subnets: &'a [Subnet],
    network: &str,
    wanted: Option<&str>,
) -> Result<&'a Subnet, String> {
    let private: Vec<&Subnet> = subnets.iter().filter(|s| s.purpose == "PRIVATE").collect();
    match wanted {
        Some(name) => {
            let s = private.iter().find(|s| s.name == name).ok_or_else(|| {
                format!("subnetwork {name} not found in the region: create it or name another")
            })?;
            if s.network != network {
                return Err(format!(
                    "subnetwork {name} belongs to network {}, not {network}",
                    s.network
                ));
            }
            Ok(s)
        }
        None => {
            let mine: Vec<&&Subnet> = private.iter().filter(|s| s.network == network).collect();
            mine.iter()
                .find(|s| s.name == "default")
                .or(mine.first())
                .map(|s| **s)
                .ok_or_else(|| format!("network {network} has no subnetwork in the region: create one with --enable-private-ip-google-access and name it"))
        }
    }
}
