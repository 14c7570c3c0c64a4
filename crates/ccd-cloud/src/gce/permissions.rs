//! The IAM permissions ccd's controller needs, one row per call it makes:
//! the single source of the custom role `ccdController` (`ccd doctor
//! --print-role`) and of `ccd doctor`'s permission check. A test reads the
//! adapter's source and fails on any call without a row, and on any row no
//! call needs, so the role can neither lag behind the code nor outgrow it.
//!
//! Permissions follow the "IAM Permissions" section of each method in
//! Compute's API reference: a call needs the permission of its own verb and
//! `use`/`useReadOnly` (or `actAs`) on every resource its body names.

/// Who makes a call, which says how the table is kept honest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `GceCloud`: `self.c.<client>.<method>()` in `gce/`, checked against the source.
    Adapter,
    /// The SDK's operation poller after every mutation; no call in the source.
    Poller,
    /// `ccd doctor`'s look at the project (`gce/inspect.rs`), checked against the source.
    Doctor,
    /// The Pub/Sub bus of the health and scaling reconcilers (crate ccd-bus).
    Bus,
    /// `GceCloud` too, but held through the bootstrap's conditional binding
    /// of `roles/resourcemanager.projectIamAdmin` ([`GRANT_CONDITION`]:
    /// only the apps' project roles may be granted or revoked), never
    /// through the custom role, which would let its holder grant itself
    /// anything. Checked against the source like `Adapter`.
    Delegated,
}

/// One call and what it needs.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    /// The field of the adapter's `Clients` (or the inspector's) holding the SDK client.
    pub client: &'static str,
    /// The SDK method, as called.
    pub method: &'static str,
    pub permissions: &'static [&'static str],
    pub caller: Caller,
}

const fn row(
    client: &'static str,
    method: &'static str,
    permissions: &'static [&'static str],
    caller: Caller,
) -> Need {
    Need {
        client,
        method,
        permissions,
        caller,
    }
}

use Caller::{Adapter, Bus, Delegated, Doctor, Poller};

/// A group of instances that run as a service account: creating or changing
/// one needs `actAs` on that account.
const GROUP_WRITE: [&str; 3] = [
    "compute.instanceTemplates.useReadOnly",
    "compute.healthChecks.useReadOnly",
    "iam.serviceAccounts.actAs",
];
const IGM_CREATE: [&str; 4] = [
    "compute.instanceGroupManagers.create",
    GROUP_WRITE[0],
    GROUP_WRITE[1],
    GROUP_WRITE[2],
];
const IGM_UPDATE_TEMPLATE: [&str; 4] = [
    "compute.instanceGroupManagers.update",
    GROUP_WRITE[0],
    GROUP_WRITE[1],
    GROUP_WRITE[2],
];

/// Every call ccd's controller makes, and the permissions each needs.
#[rustfmt::skip] // a table: one row per call
pub const TABLE: &[Need] = &[
    // Instance templates (global).
    row("templates", "insert", &[
        "compute.instanceTemplates.create", "compute.networks.use", "compute.subnetworks.use",
        "iam.serviceAccounts.actAs",
    ], Adapter),
    row("templates", "get", &["compute.instanceTemplates.get"], Adapter),
    row("templates", "list", &["compute.instanceTemplates.list"], Adapter),
    row("templates", "delete", &["compute.instanceTemplates.delete"], Adapter),
    // Managed instance groups: zonal (igm) and regional (rigm) share permissions.
    row("igm", "get", &["compute.instanceGroupManagers.get"], Adapter),
    row("igm", "insert", &IGM_CREATE, Adapter),
    row("igm", "patch", &IGM_UPDATE_TEMPLATE, Adapter),
    row("igm", "resize", &["compute.instanceGroupManagers.update"], Adapter),
    row("igm", "recreate_instances", &["compute.instanceGroupManagers.update"], Adapter),
    row("igm", "list_managed_instances", &["compute.instanceGroupManagers.get"], Adapter),
    row("igm", "delete", &["compute.instanceGroupManagers.delete"], Adapter),
    row("igm", "list", &["compute.instanceGroupManagers.list"], Adapter),
    row("rigm", "get", &["compute.instanceGroupManagers.get"], Adapter),
    row("rigm", "insert", &IGM_CREATE, Adapter),
    row("rigm", "patch", &IGM_UPDATE_TEMPLATE, Adapter),
    row("rigm", "resize", &["compute.instanceGroupManagers.update"], Adapter),
    row("rigm", "recreate_instances", &["compute.instanceGroupManagers.update"], Adapter),
    row("rigm", "list_managed_instances", &["compute.instanceGroupManagers.get"], Adapter),
    row("rigm", "delete", &["compute.instanceGroupManagers.delete"], Adapter),
    row("rigm", "list", &["compute.instanceGroupManagers.list"], Adapter),
    row("groups", "get", &["compute.instanceGroups.get"], Adapter),
    row("groups", "set_named_ports", &["compute.instanceGroups.update"], Adapter),
    row("rgroups", "get", &["compute.instanceGroups.get"], Adapter),
    row("rgroups", "set_named_ports", &["compute.instanceGroups.update"], Adapter),
    row("instances", "list", &["compute.instances.list"], Adapter),
    row("regions", "get", &["compute.regions.get"], Adapter),
    row("subnetworks", "list", &["compute.subnetworks.list"], Adapter),
    // Health checks.
    row("health_checks", "get", &["compute.healthChecks.get"], Adapter),
    row("health_checks", "insert", &["compute.healthChecks.create"], Adapter),
    row("health_checks", "update", &["compute.healthChecks.update"], Adapter),
    row("health_checks", "delete", &["compute.healthChecks.delete"], Adapter),
    // Global and regional health checks in one list: whether a load balancer of either kind exists.
    row("health_checks", "aggregated_list", &[
        "compute.healthChecks.list", "compute.regionHealthChecks.list",
    ], Adapter),
    row("rhealth_checks", "get", &["compute.regionHealthChecks.get"], Adapter),
    row("rhealth_checks", "insert", &["compute.regionHealthChecks.create"], Adapter),
    row("rhealth_checks", "update", &["compute.regionHealthChecks.update"], Adapter),
    row("rhealth_checks", "delete", &["compute.regionHealthChecks.delete"], Adapter),
    // Backend services: they name a health check and the groups.
    row("backends", "get", &["compute.backendServices.get"], Adapter),
    row("backends", "list", &["compute.backendServices.list"], Adapter),
    row("backends", "insert", &[
        "compute.backendServices.create", "compute.healthChecks.useReadOnly", "compute.instanceGroups.use",
    ], Adapter),
    row("backends", "patch", &[
        "compute.backendServices.update", "compute.healthChecks.useReadOnly", "compute.instanceGroups.use",
    ], Adapter),
    row("backends", "delete", &["compute.backendServices.delete"], Adapter),
    row("rbackends", "get", &["compute.regionBackendServices.get"], Adapter),
    row("rbackends", "list", &["compute.regionBackendServices.list"], Adapter),
    row("rbackends", "insert", &[
        "compute.regionBackendServices.create", "compute.regionHealthChecks.useReadOnly",
        "compute.instanceGroups.use",
    ], Adapter),
    row("rbackends", "patch", &[
        "compute.regionBackendServices.update", "compute.regionHealthChecks.useReadOnly",
        "compute.instanceGroups.use",
    ], Adapter),
    row("rbackends", "delete", &["compute.regionBackendServices.delete"], Adapter),
    // URL maps: they name backend services.
    row("url_maps", "get", &["compute.urlMaps.get"], Adapter),
    row("url_maps", "insert", &["compute.urlMaps.create", "compute.backendServices.use"], Adapter),
    row("url_maps", "update", &["compute.urlMaps.update", "compute.backendServices.use"], Adapter),
    row("url_maps", "delete", &["compute.urlMaps.delete"], Adapter),
    row("rurl_maps", "get", &["compute.regionUrlMaps.get"], Adapter),
    row("rurl_maps", "insert", &[
        "compute.regionUrlMaps.create", "compute.regionBackendServices.use",
    ], Adapter),
    row("rurl_maps", "update", &[
        "compute.regionUrlMaps.update", "compute.regionBackendServices.use",
    ], Adapter),
    row("rurl_maps", "delete", &["compute.regionUrlMaps.delete"], Adapter),
    // Certificates and proxies.
    row("certs", "get", &["compute.sslCertificates.get"], Adapter),
    row("certs", "list", &["compute.sslCertificates.list"], Adapter),
    row("certs", "insert", &["compute.sslCertificates.create"], Adapter),
    row("certs", "delete", &["compute.sslCertificates.delete"], Adapter),
    row("https_proxies", "get", &["compute.targetHttpsProxies.get"], Adapter),
    row("https_proxies", "insert", &[
        "compute.targetHttpsProxies.create", "compute.urlMaps.use", "compute.sslCertificates.get",
    ], Adapter),
    row("https_proxies", "patch", &[
        "compute.targetHttpsProxies.update", "compute.urlMaps.use", "compute.sslCertificates.get",
    ], Adapter),
    row("https_proxies", "delete", &["compute.targetHttpsProxies.delete"], Adapter),
    // The external balancer's HTTP-to-HTTPS redirect on port 80.
    row("http_proxies", "get", &["compute.targetHttpProxies.get"], Adapter),
    row("http_proxies", "insert", &[
        "compute.targetHttpProxies.create", "compute.urlMaps.use",
    ], Adapter),
    row("http_proxies", "delete", &["compute.targetHttpProxies.delete"], Adapter),
    row("rhttp_proxies", "get", &["compute.regionTargetHttpProxies.get"], Adapter),
    row("rhttp_proxies", "insert", &[
        "compute.regionTargetHttpProxies.create", "compute.regionUrlMaps.use",
    ], Adapter),
    row("rhttp_proxies", "delete", &["compute.regionTargetHttpProxies.delete"], Adapter),
    // Addresses and forwarding rules (both carry labels).
    row("global_addresses", "get", &["compute.globalAddresses.get"], Adapter),
    row("global_addresses", "insert", &[
        "compute.globalAddresses.create", "compute.globalAddresses.setLabels",
    ], Adapter),
    row("global_addresses", "delete", &["compute.globalAddresses.delete"], Adapter),
    row("addresses", "get", &["compute.addresses.get"], Adapter),
    row("addresses", "insert", &[
        "compute.addresses.createInternal", "compute.addresses.setLabels", "compute.subnetworks.use",
    ], Adapter),
    row("addresses", "delete", &["compute.addresses.deleteInternal"], Adapter),
    row("global_rules", "get", &["compute.globalForwardingRules.get"], Adapter),
    row("global_rules", "insert", &[
        "compute.globalForwardingRules.create", "compute.globalForwardingRules.setLabels",
        "compute.globalAddresses.use", "compute.targetHttpsProxies.use",
        "compute.targetHttpProxies.use",
    ], Adapter),
    row("global_rules", "delete", &["compute.globalForwardingRules.delete"], Adapter),
    row("rules", "get", &["compute.forwardingRules.get"], Adapter),
    row("rules", "insert", &[
        "compute.forwardingRules.create", "compute.forwardingRules.setLabels",
        "compute.addresses.useInternal", "compute.regionTargetHttpProxies.use", "compute.networks.use",
        "compute.subnetworks.use",
    ], Adapter),
    row("rules", "delete", &["compute.forwardingRules.delete"], Adapter),
    // Firewall rules change the network's policy.
    row("firewalls", "get", &["compute.firewalls.get"], Adapter),
    row("firewalls", "list", &["compute.firewalls.list"], Adapter),
    row("firewalls", "insert", &["compute.firewalls.create", "compute.networks.updatePolicy"], Adapter),
    row("firewalls", "update", &["compute.firewalls.update", "compute.networks.updatePolicy"], Adapter),
    row("firewalls", "delete", &["compute.firewalls.delete", "compute.networks.updatePolicy"], Adapter),
    // Cloud Monitoring: a canary's traffic.
    row("metrics", "list_time_series", &["monitoring.timeSeries.list"], Adapter),
    // The operation of every mutation, waited for until DONE (polled when it has no name).
    row("global_operations", "wait", &["compute.globalOperations.get"], Adapter),
    row("region_operations", "wait", &["compute.regionOperations.get"], Adapter),
    row("zone_operations", "wait", &["compute.zoneOperations.get"], Adapter),
    row("operations", "get", &[
        "compute.globalOperations.get", "compute.regionOperations.get", "compute.zoneOperations.get",
    ], Poller),
    // ccd doctor.
    row("networks", "get", &["compute.networks.get"], Doctor),
    row("routers", "list", &["compute.routers.list"], Doctor),
    row("services", "get_service", &["serviceusage.services.get"], Doctor),
    // Asking which permissions one holds needs none.
    row("projects", "test_iam_permissions", &[], Doctor),
    // The bus (topics are made by deploy/bootstrap.sh; the bus makes its subscriptions).
    row("pubsub", "publish", &["pubsub.topics.publish"], Bus),
    row("pubsub", "get_subscription", &["pubsub.subscriptions.get"], Bus),
    row("pubsub", "create_subscription", &[
        "pubsub.subscriptions.create", "pubsub.topics.attachSubscription",
    ], Bus),
    row("pubsub", "streaming_pull", &["pubsub.subscriptions.consume"], Bus),
    // The apps' own service accounts (gce/identity.rs).
    row("iam", "create_service_account", &["iam.serviceAccounts.create"], Adapter),
    row("iam", "get_service_account", &["iam.serviceAccounts.get"], Adapter),
    row("iam", "delete_service_account", &["iam.serviceAccounts.delete"], Adapter),
    row("secrets", "get_iam_policy", &["secretmanager.secrets.getIamPolicy"], Adapter),
    row("secrets", "set_iam_policy", &["secretmanager.secrets.setIamPolicy"], Adapter),
    row("registry", "get_iam_policy", &["artifactregistry.repositories.getIamPolicy"], Adapter),
    row("registry", "set_iam_policy", &["artifactregistry.repositories.setIamPolicy"], Adapter),
    row("projects", "get_iam_policy", &["resourcemanager.projects.getIamPolicy"], Adapter),
    row("projects", "set_iam_policy", &["resourcemanager.projects.setIamPolicy"], Delegated),
];

/// The custom role's ID in the project.
pub const ROLE_ID: &str = "ccdController";

/// The predefined role the bootstrap grants the controller on the project
/// under [`GRANT_CONDITION`], for the [`Delegated`] rows.
pub const GRANTOR_ROLE: &str = "roles/resourcemanager.projectIamAdmin";

/// The IAM condition on [`GRANTOR_ROLE`]: the controller may grant and
/// revoke the apps' project roles and nothing else (Google's "limited IAM
/// admin": the `modifiedGrantsByRole` API attribute).
pub fn grant_condition() -> String {
    let roles: Vec<String> = crate::identity::PROJECT_ROLES
        .iter()
        .map(|r| format!("'{r}'"))
        .collect();
    format!(
        "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{}])",
        roles.join(", ")
    )
}

/// Every permission of the custom role, sorted, each once: the table's,
/// but for the [`Delegated`] rows.
pub fn all() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = TABLE
        .iter()
        .filter(|n| n.caller != Delegated)
        .flat_map(|n| n.permissions.iter().copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The role as `gcloud iam roles create|update ROLE --file` reads it.
pub fn role_yaml() -> String {
    let mut out = String::from(
        "# Generated by `ccd doctor --print-role` from ccd-cloud's permission table; do not edit.\n\
         title: ccd controller\n\
         description: What ccd's controller calls on Compute Engine, Monitoring, Pub/Sub and IAM.\n\
         stage: GA\n\
         includedPermissions:\n",
    );
    for p in all() {
        out.push_str("- ");
        out.push_str(p);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    type Calls = BTreeSet<(String, String)>;
    /// A macro's name -> the position of its method argument, and the clients it calls.
    type Macros = BTreeMap<String, (usize, Vec<String>)>;

    /// Identifiers (`$method` included) and single punctuation characters;
    /// comments, strings and char literals left out, lifetimes too.
    fn tokens(src: &str) -> Vec<String> {
        let b = src.as_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < b.len() {
            let Some(c) = src[i..].chars().next() else {
                break;
            };
            if c.is_whitespace() {
                i += c.len_utf8();
            } else if src[i..].starts_with("//") {
                i += src[i..].find('\n').unwrap_or(src.len() - i);
            } else if src[i..].starts_with("/*") {
                i += src[i..].find("*/").map_or(src.len() - i, |e| e + 2);
            } else if c == 'r' && (src[i + 1..].starts_with('"') || src[i + 1..].starts_with("#\""))
            {
                let hashes = src[i + 1..].bytes().take_while(|&h| h == b'#').count();
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                i = start + src[start..].find(&close).unwrap_or(src.len() - start) + close.len();
            } else if c == '"' {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            } else if c == '\'' {
                // 'x' or '\n' is a char; 'a (no closing quote) a lifetime.
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2 + src[i + 2..].find('\'').unwrap_or(0) + 1;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            } else if c.is_alphanumeric() || c == '_' || c == '$' {
                let len = src[i..]
                    .find(|x: char| !(x.is_alphanumeric() || x == '_' || x == '$'))
                    .unwrap_or(src.len() - i);
                out.push(src[i..i + len].to_owned());
                i += len;
            } else {
                out.push(c.to_string());
                i += c.len_utf8();
            }
        }
        out
    }

    /// The arguments of a macro call or matcher starting at `open` (a `(`),
    /// split at top-level commas, each joined back into one string.
    fn args(t: &[String], open: usize) -> Vec<String> {
        let (mut depth, mut out, mut cur) = (0, Vec::new(), String::new());
        for tok in &t[open..] {
            match tok.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                break;
            }
            if depth == 1 && (tok == "," || tok == "(") {
                if tok == "," {
                    out.push(std::mem::take(&mut cur));
                }
                continue;
            }
            cur.push_str(tok);
        }
        out.push(cur);
        out
    }

    /// The index of the bracket closing the one at `open`.
    fn group_end(t: &[String], open: usize) -> usize {
        let mut depth = 0;
        for (j, tok) in t.iter().enumerate().skip(open) {
            match tok.as_str() {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                return j;
            }
        }
        t.len()
    }

    /// `(client, method)` of every SDK call in one file: `.c.CLIENT.METHOD(`,
    /// through `let x = &self.c.CLIENT;` then `x.METHOD(`, and through macros
    /// whose body calls `.c.CLIENT.$m(` with `$m` an argument. A use of a
    /// client the scan cannot follow is an error: the table must not miss it.
    fn calls(src: &str, file: &str) -> Result<(Calls, Macros), String> {
        let t = tokens(src);
        let at = |i: usize| t.get(i).map_or("", String::as_str);
        let ident = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c == '_') && !s.is_empty();
        let mut out = BTreeSet::new();
        // Macros: name -> (position of `$m` among its arguments, clients).
        let mut macros = Macros::new();
        let mut aliases: BTreeMap<String, String> = BTreeMap::new();
        let mut current_macro: Option<(String, usize)> = None;
        let before = |i: usize, n: usize| i.checked_sub(n).map_or("", at);
        for i in 0..t.len() {
            if at(i) == "macro_rules" && at(i + 1) == "!" {
                let open = (i..t.len()).find(|&j| at(j) == "(").unwrap_or(i);
                current_macro = Some((at(i + 2).to_owned(), open));
            }
            if at(i) == "let" {
                // `let x = &self.c.A;` or `let (x, y) = (&self.c.A, ..);`
                let (names, values) = if at(i + 1) == "(" {
                    let end = group_end(&t, i + 1);
                    let values = if at(end + 1) == "=" && at(end + 2) == "(" {
                        args(&t, end + 2)
                    } else {
                        Vec::new()
                    };
                    (args(&t, i + 1), values)
                } else {
                    let end = (i..t.len()).find(|&j| at(j) == ";").unwrap_or(i);
                    let value: String = t[(i + 3).min(end)..end].concat();
                    (vec![at(i + 1).to_owned()], vec![value])
                };
                for (k, name) in names.iter().enumerate() {
                    let client = values.get(k).and_then(|v| v.strip_prefix("&self.c."));
                    match client.filter(|c| ident(c)) {
                        Some(client) => aliases.insert(name.clone(), client.to_owned()),
                        None => aliases.remove(name),
                    };
                }
                continue;
            }
            if at(i) == "." && at(i + 1) == "c" && at(i + 2) == "." {
                let client = at(i + 3);
                if at(i + 4) == "(" {
                    continue; // a method of the clients' struct itself (clone)
                }
                let method = at(i + 5);
                if at(i + 4) == "." && at(i + 6) == "(" && ident(method) {
                    out.insert((client.to_owned(), method.to_owned()));
                } else if at(i + 4) == "." && method.starts_with('$') {
                    let Some((name, open)) = &current_macro else {
                        return Err(format!("{file}: .c.{client}.{method} outside a macro"));
                    };
                    let pos = args(&t, *open)
                        .iter()
                        .position(|a| a.starts_with(&format!("{method}:")))
                        .ok_or_else(|| format!("{file}: macro {name} does not take {method}"))?;
                    macros
                        .entry(name.clone())
                        .or_insert((pos, Vec::new()))
                        .1
                        .push(client.to_owned());
                } else if (0..i)
                    .rev()
                    .map(at)
                    .find(|s| matches!(*s, "let" | ";" | "{" | "}"))
                    != Some("let")
                {
                    return Err(format!(
                        "{file}: cannot tell which method of client {client} is called near token {i}"
                    ));
                }
                continue;
            }
            if before(i, 1) != "."
                && at(i + 1) == "."
                && at(i + 3) == "("
                && let Some(client) = aliases.get(at(i))
            {
                out.insert((client.clone(), at(i + 2).to_owned()));
            }
        }
        Ok((out, macros))
    }

    /// The calls made through the macros (which may be used in other files than their own).
    fn macro_calls(src: &str, macros: &Macros) -> Calls {
        let t = tokens(src);
        let at = |i: usize| t.get(i).map_or("", String::as_str);
        let mut out = Calls::new();
        for (name, (pos, clients)) in macros {
            for i in 0..t.len() {
                if at(i) == name.as_str() && at(i + 1) == "!" && at(i + 2) == "(" {
                    let method = args(&t, i + 2).get(*pos).cloned().unwrap_or_default();
                    for client in clients {
                        out.insert((client.clone(), method.clone()));
                    }
                }
            }
        }
        out
    }

    fn calls_with_macros(src: &str) -> Calls {
        let (mut out, macros) = calls(src, "x.rs").unwrap();
        out.extend(macro_calls(src, &macros));
        out
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every call in the crate's source, with the files it is in.
    fn source_calls() -> BTreeMap<(String, String), Vec<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let texts: Vec<(String, String)> = files
            .iter()
            .map(|path| {
                let file = path.strip_prefix(&src).unwrap().display().to_string();
                (file, std::fs::read_to_string(path).unwrap())
            })
            .collect();
        let mut found: Vec<(String, Calls)> = Vec::new();
        let mut macros = Macros::new();
        for (file, text) in &texts {
            let (direct, defined) = calls(text, file).unwrap_or_else(|e| panic!("{e}"));
            found.push((file.clone(), direct));
            macros.extend(defined);
        }
        for (file, text) in &texts {
            found.push((file.clone(), macro_calls(text, &macros)));
        }
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (file, calls) in found {
            for call in calls {
                let files = out.entry(call).or_default();
                if !files.contains(&file) {
                    files.push(file.clone());
                }
            }
        }
        out
    }

    #[test]
    fn every_call_in_the_source_has_its_permissions_and_every_row_a_call() {
        let found = source_calls();
        assert!(
            found.contains_key(&("templates".to_owned(), "insert".to_owned()))
                && found.contains_key(&("rigm".to_owned(), "patch".to_owned()))
                && found.contains_key(&("rhealth_checks".to_owned(), "update".to_owned())),
            "the scan misses known calls: {found:?}"
        );
        let row = |c: &str, m: &str| TABLE.iter().find(|n| n.client == c && n.method == m);
        let missing: Vec<String> = found
            .iter()
            .filter(|((c, m), _)| {
                row(c, m).is_none_or(|n| !matches!(n.caller, Adapter | Delegated | Doctor))
            })
            .map(|((c, m), files)| format!("{c}.{m} (in {})", files.join(", ")))
            .collect();
        assert!(
            missing.is_empty(),
            "calls without a row (caller Adapter or Doctor) in gce/permissions.rs TABLE; add each with the IAM permissions its API reference lists: {missing:?}"
        );
        let stale: Vec<String> = TABLE
            .iter()
            .filter(|n| matches!(n.caller, Adapter | Delegated | Doctor))
            .filter(|n| !found.contains_key(&(n.client.to_owned(), n.method.to_owned())))
            .map(|n| format!("{}.{}", n.client, n.method))
            .collect();
        assert!(
            stale.is_empty(),
            "rows no call needs any more; remove them: {stale:?}"
        );
    }

    #[test]
    fn the_scan_follows_aliases_and_macros_and_refuses_what_it_cannot_follow() {
        let src = r#"
            macro_rules! m { ($s:ident, $method:ident) => { $s.c.igm.$method() } }
            fn f(&self) {
                let c = &self.c.health_checks;
                c.get(); // self.c.fake.call() in a comment
                let s = "self.c.fake.call()";
                self
                    .c
                    .templates
                    .insert();
                m!(self, resize);
                let (r, p) = (&self.c.rules, self.project());
                r.delete();
                let copy = self.c.clone();
            }
        "#;
        let got: Vec<String> = calls_with_macros(src)
            .into_iter()
            .map(|(c, m)| format!("{c}.{m}"))
            .collect();
        assert_eq!(
            got,
            [
                "health_checks.get",
                "igm.resize",
                "rules.delete",
                "templates.insert"
            ]
        );
        let err = calls("fn f(&self) { pass(&self.c.igm); }", "y.rs").unwrap_err();
        assert!(err.contains("y.rs") && err.contains("igm"), "{err}");
    }

    #[test]
    fn the_role_lists_every_permission_of_the_table_once() {
        let yaml = role_yaml();
        let listed: Vec<&str> = yaml.lines().filter_map(|l| l.strip_prefix("- ")).collect();
        for need in TABLE.iter().filter(|n| n.caller != Delegated) {
            for p in need.permissions {
                assert!(
                    listed.contains(p),
                    "{p} of {}.{} not in the role",
                    need.client,
                    need.method
                );
            }
        }
        // Held under the grant condition only: in the role, it would let
        // the controller grant itself any role.
        assert!(!listed.contains(&"resourcemanager.projects.setIamPolicy"));
        assert!(
            grant_condition()
                .contains("'roles/logging.logWriter', 'roles/monitoring.metricWriter'")
        );
        let unique: BTreeSet<&&str> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "a permission listed twice");
        assert!(
            listed.iter().all(|p| p.split('.').count() == 3),
            "{listed:?}"
        );
    }
}
