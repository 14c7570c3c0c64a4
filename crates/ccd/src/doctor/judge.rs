//! Judgements on what `ccd doctor` read: pure functions of the facts.

use std::collections::BTreeSet;

use ccd_cloud::inspect::{Nat, Rule, Subnet};

/// What the specs in the store ask of the network.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Ports the instances must admit: apps' and health checks'.
    pub ports: BTreeSet<u16>,
    /// Apps exposed on an internal load balancer.
    pub internal_apps: Vec<String>,
    /// Container images the instances pull.
    pub images: BTreeSet<String>,
}

/// Private Google Access reaches Google's registries only.
fn on_google_registry(image: &str) -> bool {
    let host = image.split('/').next().unwrap_or_default();
    host.ends_with(".pkg.dev") || host == "gcr.io" || host.ends_with(".gcr.io")
}

/// Whether instances of `subnet`, which have no external address, can pull
/// their images: Ok(how) or Err(what is missing and the fix).
pub fn egress(
    subnet: &Subnet,
    region: &str,
    nats: &[Nat],
    images: &BTreeSet<String>,
) -> Result<String, String> {
    let nat = nats
        .iter()
        .find(|n| n.all_subnetworks || n.subnetworks.contains(&subnet.name));
    if let Some(n) = nat {
        return Ok(format!(
            "Cloud NAT {} on router {} covers subnetwork {}",
            n.name, n.router, subnet.name
        ));
    }
    let nat_fix = format!(
        "gcloud compute routers create ccd-nat --network {net} --region {region} && gcloud compute routers nats create ccd-nat --router ccd-nat --region {region} --auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges",
        net = subnet.network
    );
    if subnet.private_google_access {
        let elsewhere: Vec<&str> = images
            .iter()
            .filter(|i| !on_google_registry(i))
            .map(String::as_str)
            .collect();
        if elsewhere.is_empty() {
            return Ok(format!(
                "Private Google Access on subnetwork {} reaches Artifact Registry",
                subnet.name
            ));
        }
        return Err(format!(
            "subnetwork {} has Private Google Access but no Cloud NAT, and images {} are outside Google's registries: move them to Artifact Registry, or add Cloud NAT: {nat_fix}",
            subnet.name,
            elsewhere.join(", ")
        ));
    }
    Err(format!(
        "instances on subnetwork {s} have no external address, so they cannot pull images without Private Google Access or Cloud NAT: gcloud compute networks subnets update {s} --region {region} --enable-private-ip-google-access (or Cloud NAT: {nat_fix})",
        s = subnet.name
    ))
}

/// The region's active proxy-only subnet of `network`, for internal load balancers.
pub fn proxy_only<'a>(subnets: &'a [Subnet], network: &str) -> Option<&'a Subnet> {
    subnets.iter().find(|s| {
        s.network == network
            && matches!(
                s.purpose.as_str(),
                "REGIONAL_MANAGED_PROXY" | "INTERNAL_HTTPS_LOAD_BALANCER"
            )
            && s.role == "ACTIVE"
    })
}

/// `80`, `8000-9000` or empty (all ports) as inclusive ranges.
fn ranges(ports: &[String]) -> Vec<(u16, u16)> {
    if ports.is_empty() {
        return vec![(0, 65535)];
    }
    ports
        .iter()
        .filter_map(|p| match p.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => p.parse().ok().map(|n| (n, n)),
        })
        .collect()
}

/// Rules not made by ccd that admit ports to ccd's instances beyond what
/// the specs ask for: each as `name: what it admits`. A rule reaches ccd's
/// instances when it targets every instance or a `ccd-` tag; ICMP and
/// protocols without ports are left out.
pub fn broad_rules(rules: &[Rule], wanted: &BTreeSet<u16>) -> Vec<String> {
    let mut out = Vec::new();
    for r in rules {
        let reaches_ccd = r.target_accounts.is_empty()
            && (r.target_tags.is_empty() || r.target_tags.iter().any(|t| t.starts_with("ccd-")));
        if r.ccd_app.is_some() || !r.ingress || !r.allow || r.disabled || !reaches_ccd {
            continue;
        }
        let mut extra = Vec::new();
        for (protocol, ports) in &r.admits {
            if !matches!(protocol.as_str(), "tcp" | "udp" | "all" | "sctp") {
                continue;
            }
            for (lo, hi) in ranges(ports) {
                let asked = wanted.range(lo..=hi).count();
                if usize::from(hi - lo) + 1 > asked {
                    extra.push(if lo == hi {
                        format!("{protocol}:{lo}")
                    } else {
                        format!("{protocol}:{lo}-{hi}")
                    });
                }
            }
        }
        if !extra.is_empty() {
            let whom = if r.target_tags.is_empty() {
                "every instance".to_owned()
            } else {
                format!("tags {}", r.target_tags.join(","))
            };
            let from = if r.sources.is_empty() {
                "anywhere".to_owned()
            } else {
                r.sources.join(",")
            };
            out.push(format!(
                "{}: admits {} to {whom} from {from}",
                r.name,
                extra.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(name: &str, pga: bool) -> Subnet {
        Subnet {
            name: name.to_owned(),
            network: "default".to_owned(),
            range: "10.132.0.0/20".to_owned(),
            private_google_access: pga,
            purpose: "PRIVATE".to_owned(),
            role: String::new(),
        }
    }

    fn nat(all: bool, subnetworks: &[&str]) -> Nat {
        Nat {
            router: "r1".to_owned(),
            name: "n1".to_owned(),
            all_subnetworks: all,
            subnetworks: subnetworks.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn images(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn egress_needs_private_google_access_or_a_nat_covering_the_subnetwork() {
        let ar = images(&["europe-docker.pkg.dev/acme/apps/web:1"]);
        let none = egress(&subnet("default", false), "europe-west1", &[], &ar).unwrap_err();
        assert!(none.contains("--enable-private-ip-google-access"), "{none}");
        assert!(
            none.contains("gcloud compute routers nats create"),
            "{none}"
        );
        let pga = egress(&subnet("default", true), "europe-west1", &[], &ar).unwrap();
        assert!(pga.contains("Private Google Access"), "{pga}");
        let all = egress(&subnet("default", false), "r", &[nat(true, &[])], &ar).unwrap();
        assert!(all.contains("Cloud NAT n1 on router r1"), "{all}");
        // A NAT listing only other subnetworks does not help.
        let other = egress(&subnet("default", false), "r", &[nat(false, &["b"])], &ar);
        assert!(other.is_err());
        assert!(
            egress(
                &subnet("default", false),
                "r",
                &[nat(false, &["default"])],
                &ar
            )
            .is_ok()
        );
    }

    #[test]
    fn private_google_access_does_not_reach_docker_hub() {
        let hub = images(&["docker.io/library/nginx:1", "gcr.io/p/a:1"]);
        let e = egress(&subnet("s", true), "r", &[], &hub).unwrap_err();
        assert!(
            e.contains("docker.io/library/nginx:1") && !e.contains("gcr.io/p/a"),
            "{e}"
        );
        assert!(egress(&subnet("s", true), "r", &[nat(true, &[])], &hub).is_ok());
    }

    #[test]
    fn a_proxy_only_subnet_of_either_purpose_counts_when_active_on_the_network() {
        let mut p = subnet("proxy", false);
        p.purpose = "INTERNAL_HTTPS_LOAD_BALANCER".to_owned();
        p.role = "ACTIVE".to_owned();
        let mut backup = p.clone();
        backup.role = "BACKUP".to_owned();
        assert_eq!(proxy_only(std::slice::from_ref(&backup), "default"), None);
        assert_eq!(proxy_only(&[backup, p.clone()], "default"), Some(&p));
        assert_eq!(proxy_only(std::slice::from_ref(&p), "other-vpc"), None);
        p.purpose = "REGIONAL_MANAGED_PROXY".to_owned();
        assert_eq!(proxy_only(std::slice::from_ref(&p), "default"), Some(&p));
    }

    fn rule(name: &str, admits: &[(&str, &[&str])]) -> Rule {
        Rule {
            name: name.to_owned(),
            ccd_app: None,
            ingress: true,
            allow: true,
            disabled: false,
            sources: vec!["10.128.0.0/9".to_owned()],
            target_tags: Vec::new(),
            target_accounts: Vec::new(),
            admits: admits
                .iter()
                .map(|(p, ports)| {
                    (
                        (*p).to_owned(),
                        ports.iter().map(|s| (*s).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn rules_admitting_ports_no_spec_asks_for_are_named() {
        let wanted: BTreeSet<u16> = [8080, 9090].into();
        let internal = rule(
            "default-allow-internal",
            &[("tcp", &["0-65535"]), ("udp", &["0-65535"]), ("icmp", &[])],
        );
        let exact = rule("web-8080", &[("tcp", &["8080", "9090"])]);
        let mut mine = rule("ccd-web", &[("tcp", &[])]);
        mine.ccd_app = Some("web".to_owned());
        let mut elsewhere = rule("db", &[("tcp", &["5432"])]);
        elsewhere.target_tags = vec!["postgres".to_owned()];
        let mut off = rule("off", &[("all", &[])]);
        off.disabled = true;
        let got = broad_rules(&[internal, exact, mine, elsewhere, off], &wanted);
        assert_eq!(
            got,
            [
                "default-allow-internal: admits tcp:0-65535, udp:0-65535 to every instance from 10.128.0.0/9"
            ]
        );
        let ssh = rule("default-allow-ssh", &[("tcp", &["22"])]);
        assert_eq!(broad_rules(&[ssh], &wanted).len(), 1);
    }
}
