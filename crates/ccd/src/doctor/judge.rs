//! Judgements on what `ccd doctor` read: pure functions of the facts.

use std::collections::BTreeSet;

use ccd_cloud::inspect::{Nat, Rule, Subnet};
use ccd_services_gcp::inspect::{BucketFacts, SqlInstanceFacts};

/// What the specs in the store ask of the network.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Ports the instances must admit: apps' and health checks'.
    pub ports: BTreeSet<u16>,
    /// Apps exposed on an internal load balancer.
    pub internal_apps: Vec<String>,
    /// Container images the instances pull.
    pub images: BTreeSet<String>,
    /// The services the specs ask for (`sql`, `nosql`, `storage`, `logs`,
    /// `cache`), each with the apps asking.
    pub services: std::collections::BTreeMap<&'static str, Vec<String>>,
    /// Buckets the specs name for their files (`services.storage.bucket`).
    pub spec_buckets: BTreeSet<String>,
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

/// The APIs the apps' services need beyond ccd's own (Secret Manager and
/// Cloud Storage are among those): for each service a spec asks for or the
/// configuration places (`configured`: `sql`, `nosql`, `storage`, `logs`).
pub fn service_apis(asked: &BTreeSet<&str>, configured: &BTreeSet<&str>) -> Vec<&'static str> {
    let wants = |k: &str| asked.contains(k) || configured.contains(k);
    let mut out = Vec::new();
    if wants("sql") {
        out.push("sqladmin.googleapis.com");
    }
    if wants("nosql") {
        out.push("firestore.googleapis.com");
    }
    if wants("logs") {
        out.push("logging.googleapis.com");
    }
    out
}

/// Whether the configured Cloud SQL instance (`services.sql.instance`) is
/// one ccd can use: it exists, runs PostgreSQL, lets IAM principals log in
/// and takes SQL through the Admin API. Ok(what was seen) or Err(every
/// problem, each with its fix).
pub fn sql_instance(
    instance: &str,
    project: &str,
    region: &str,
    facts: Option<&SqlInstanceFacts>,
) -> Result<String, String> {
    let Some(f) = facts else {
        return Err(format!(
            "no Cloud SQL instance {instance} in project {project} (services.sql.instance): \
             create one (gcloud sql instances create {instance} --database-version=POSTGRES_16 \
             --region {region} --database-flags=cloudsql.iam_authentication=on --project \
             {project}), or name an existing PostgreSQL instance"
        ));
    };
    let mut problems = Vec::new();
    if !f.database_version.starts_with("POSTGRES") {
        problems.push(format!(
            "it runs {}, and ccd's SQL service needs PostgreSQL: name a PostgreSQL instance in \
             services.sql.instance",
            f.database_version
        ));
    }
    if !f.iam_authentication {
        problems.push(format!(
            "IAM database authentication is off, so apps cannot log in as their service \
             accounts: gcloud sql instances patch {instance} --database-flags=\
             cloudsql.iam_authentication=on --project {project} (list the instance's other \
             flags too: the command replaces them)"
        ));
    }
    if !f.data_api {
        problems.push(format!(
            "the Data API is not allowed, so ccd cannot run the SQL that makes each app's user \
             own its database: gcloud sql instances patch {instance} \
             --data-api-access=ALLOW_DATA_API --project {project}"
        ));
    }
    if problems.is_empty() {
        Ok(format!(
            "{}: {}, IAM authentication on, Data API allowed (not visible from here: the \
             controller's IAM database user must be in cloudsqlsuperuser, deploy/README.md)",
            f.resource, f.database_version
        ))
    } else {
        Err(format!("{}: {}", f.resource, problems.join("; ")))
    }
}

/// Whether a bucket the services use exists (`field` says where it was
/// named) and, for the apps' files (`folders`), has uniform bucket-level
/// access, which managed folders need.
pub fn bucket(
    field: &str,
    name: &str,
    region: &str,
    folders: bool,
    facts: Option<&BucketFacts>,
) -> Result<String, String> {
    let Some(f) = facts else {
        return Err(format!(
            "gs://{name} ({field}) does not exist: create it (gcloud storage buckets create \
             gs://{name} --location {region} --uniform-bucket-level-access) or name another"
        ));
    };
    if folders && !f.uniform_access {
        return Err(format!(
            "gs://{name} ({field}) has no uniform bucket-level access, and the apps' managed \
             folders need it: gcloud storage buckets update gs://{name} \
             --uniform-bucket-level-access"
        ));
    }
    Ok(format!(
        "gs://{name} ({field}) exists{}",
        if folders {
            ", uniform bucket-level access on"
        } else {
            ""
        }
    ))
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

#[cfg(test)]
mod services_tests {
    use super::*;

    fn instance(version: &str, iam: bool, data_api: bool) -> SqlInstanceFacts {
        SqlInstanceFacts {
            resource: "projects/p/instances/main".to_owned(),
            database_version: version.to_owned(),
            iam_authentication: iam,
            data_api,
        }
    }

    #[test]
    fn a_postgres_instance_with_iam_login_and_the_data_api_is_ready() {
        let ok = sql_instance(
            "main",
            "p",
            "europe-west1",
            Some(&instance("POSTGRES_16", true, true)),
        );
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            ok.contains("POSTGRES_16") && ok.contains("cloudsqlsuperuser"),
            "{ok}"
        );
    }

    #[test]
    fn each_missing_setting_of_the_instance_names_its_fix() {
        let missing = sql_instance("main", "p", "europe-west1", None).unwrap_err();
        assert!(
            missing.contains("services.sql.instance")
                && missing.contains("gcloud sql instances create main"),
            "{missing}"
        );
        let mysql =
            sql_instance("main", "p", "r", Some(&instance("MYSQL_8_0", true, true))).unwrap_err();
        assert!(
            mysql.contains("MYSQL_8_0") && mysql.contains("PostgreSQL"),
            "{mysql}"
        );
        let no_iam = sql_instance(
            "main",
            "p",
            "r",
            Some(&instance("POSTGRES_16", false, true)),
        )
        .unwrap_err();
        assert!(
            no_iam.contains("cloudsql.iam_authentication=on"),
            "{no_iam}"
        );
        assert!(!no_iam.contains("data-api-access"), "{no_iam}");
        let no_api = sql_instance(
            "main",
            "p",
            "r",
            Some(&instance("POSTGRES_16", true, false)),
        )
        .unwrap_err();
        assert!(
            no_api.contains("--data-api-access=ALLOW_DATA_API"),
            "{no_api}"
        );
        // Both at once: both fixes, in one line.
        let both = sql_instance(
            "main",
            "p",
            "r",
            Some(&instance("POSTGRES_16", false, false)),
        )
        .unwrap_err();
        assert!(
            both.contains("iam_authentication") && both.contains("ALLOW_DATA_API"),
            "{both}"
        );
    }

    #[test]
    fn a_files_bucket_needs_uniform_access_and_a_logs_bucket_only_to_exist() {
        let plain = BucketFacts {
            name: "b".to_owned(),
            uniform_access: false,
        };
        let uniform = BucketFacts {
            uniform_access: true,
            ..plain.clone()
        };
        let gone = bucket("services.logs.bucket", "b", "r", false, None).unwrap_err();
        assert!(
            gone.contains("services.logs.bucket") && gone.contains("buckets create gs://b"),
            "{gone}"
        );
        assert!(bucket("services.logs.bucket", "b", "r", false, Some(&plain)).is_ok());
        let files = bucket("services.storage.bucket", "b", "r", true, Some(&plain)).unwrap_err();
        assert!(files.contains("--uniform-bucket-level-access"), "{files}");
        assert!(bucket("services.storage.bucket", "b", "r", true, Some(&uniform)).is_ok());
    }

    #[test]
    fn the_apis_follow_what_the_specs_ask_and_the_configuration_places() {
        let none = BTreeSet::new();
        assert!(service_apis(&none, &none).is_empty());
        let asked: BTreeSet<&str> = ["nosql"].into();
        let configured: BTreeSet<&str> = ["sql", "logs", "storage"].into();
        assert_eq!(
            service_apis(&asked, &configured),
            [
                "sqladmin.googleapis.com",
                "firestore.googleapis.com",
                "logging.googleapis.com"
            ]
        );
    }
}
