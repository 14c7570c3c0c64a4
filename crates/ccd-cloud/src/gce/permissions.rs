//! The IAM permissions ccd's controller needs, one row per call it makes:
//! the single source of the custom role `ccdController` (`ccd doctor
//! --print-role`) and of `ccd doctor`'s permission check. A test reads the
//! adapter's source and fails on any call without a row, and on any row no
//! call needs, so the role can neither lag behind the code nor outgrow it.
//!
//! Permissions follow the "IAM Permissions" section of each method in
//! Compute's API reference: a call needs the permission of its own verb and
//! `use`/`useReadOnly` (or `actAs`) on every resource its body names.
//!
//! The apps' services on Google Cloud (crate ccd-services-gcp, which the
//! controller always runs there) have a table of their own, [`SERVICES`],
//! checked against that crate's source the same way; both are in the role.

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
    /// Made by the adapter, but the permissions are held only through the
    /// bootstrap's conditional binding of the role [`GRANTOR_ROLE_ID`]
    /// ([`grant_condition`]: only the roles in [`GRANTED_ROLES`] may be
    /// granted or revoked), never through the custom role, which would let
    /// its holder grant itself anything. Checked against the source like
    /// `Adapter`.
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

/// Every call of the apps' services on Google Cloud (crate
/// ccd-services-gcp, `self.c.<client>.<method>()` in its `src/`), and the
/// permissions each needs. Sources, one per API, each listing the
/// permission a method checks:
/// - Cloud SQL Admin: <https://cloud.google.com/sql/docs/postgres/audit-logging>
///   ("Methods by permission type": `operations.get` checks
///   `cloudsql.instances.get`); `executeSql` with `autoIamAuthn` also logs
///   in as the caller's IAM database user: `cloudsql.instances.login`
///   (<https://cloud.google.com/sql/docs/postgres/use-cloudsql-mcp>, "Execute
///   SQL queries": `executeSql` and `login`).
/// - Firestore Admin: <https://cloud.google.com/firestore/native/docs/audit-logging>
///   (`GetDatabase` checks `datastore.databases.getMetadata`, not `get`;
///   the long-running operations are read with `datastore.operations.get`).
/// - Secret Manager: <https://cloud.google.com/secret-manager/docs/audit-logging>.
/// - Cloud Logging: <https://cloud.google.com/logging/docs/access-control>
///   (`logging.sinks.*`, `logging.logEntries.list`).
/// - Cloud Storage: <https://cloud.google.com/storage/docs/access-control/iam-json>
///   (written there in lower case, `storage.managedfolders.*`; IAM's own
///   name is `storage.managedFolders.*`). Deleting a managed folder with
///   `allowNonEmpty` also checks `storage.managedFolders.setIamPolicy`.
/// - Resource Manager: as the adapter's rows above.
#[rustfmt::skip] // a table: one row per call
pub const SERVICES: &[Need] = &[
    // Cloud SQL (sql.rs, sql_exec.rs): the instance, a database and an IAM user per app.
    row("sql_instances", "get", &["cloudsql.instances.get"], Adapter),
    row("sql_instances", "execute_sql", &[
        "cloudsql.instances.executeSql", "cloudsql.instances.login",
    ], Adapter),
    row("sql_databases", "get", &["cloudsql.databases.get"], Adapter),
    row("sql_databases", "insert", &["cloudsql.databases.create"], Adapter),
    row("sql_databases", "delete", &["cloudsql.databases.delete"], Adapter),
    row("sql_users", "get", &["cloudsql.users.get"], Adapter),
    row("sql_users", "insert", &["cloudsql.users.create"], Adapter),
    row("sql_users", "delete", &["cloudsql.users.delete"], Adapter),
    row("sql_operations", "get", &["cloudsql.instances.get"], Adapter),
    // Firestore (firestore.rs): a named database per app; writes are polled operations.
    row("firestore", "get_database", &["datastore.databases.getMetadata"], Adapter),
    row("firestore", "create_database", &[
        "datastore.databases.create", "datastore.operations.get",
    ], Adapter),
    row("firestore", "update_database", &[
        "datastore.databases.update", "datastore.operations.get",
    ], Adapter),
    row("firestore", "delete_database", &[
        "datastore.databases.delete", "datastore.operations.get",
    ], Adapter),
    // Conditional project bindings (iam.rs): Cloud SQL login, Firestore per database.
    row("projects", "get_iam_policy", &["resourcemanager.projects.getIamPolicy"], Adapter),
    row("projects", "set_iam_policy", &["resourcemanager.projects.setIamPolicy"], Delegated),
    // Credentials (secrets.rs).
    row("secrets", "get_secret", &["secretmanager.secrets.get"], Adapter),
    row("secrets", "create_secret", &["secretmanager.secrets.create"], Adapter),
    row("secrets", "delete_secret", &["secretmanager.secrets.delete"], Adapter),
    row("secrets", "access_secret_version", &["secretmanager.versions.access"], Adapter),
    row("secrets", "add_secret_version", &["secretmanager.versions.add"], Adapter),
    // Logs (logging.rs): a sink per app, and `ccd logs`.
    row("sinks", "get_sink", &["logging.sinks.get"], Adapter),
    row("sinks", "create_sink", &["logging.sinks.create"], Adapter),
    row("sinks", "update_sink", &["logging.sinks.update"], Adapter),
    row("sinks", "delete_sink", &["logging.sinks.delete"], Adapter),
    row("entries", "list_log_entries", &["logging.logEntries.list"], Adapter),
    // Files (storage.rs): a managed folder per app, its policy, the sink writer on the logs bucket.
    row("storage", "get_managed_folder", &["storage.managedFolders.get"], Adapter),
    row("storage", "create_managed_folder", &["storage.managedFolders.create"], Adapter),
    row("storage", "delete_managed_folder", &[
        "storage.managedFolders.delete", "storage.managedFolders.setIamPolicy",
    ], Adapter),
    row("storage", "list_objects", &["storage.objects.list"], Adapter),
    row("storage", "delete_object", &["storage.objects.delete"], Adapter),
    row("storage", "get_iam_policy", &[
        "storage.buckets.getIamPolicy", "storage.managedFolders.getIamPolicy",
    ], Adapter),
    row("storage", "set_iam_policy", &[
        "storage.buckets.setIamPolicy", "storage.managedFolders.setIamPolicy",
    ], Delegated),
    // ccd doctor (inspect.rs): the buckets exist.
    row("storage", "get_bucket", &["storage.buckets.get"], Doctor),
];

/// The custom role's ID in the project.
pub const ROLE_ID: &str = "ccdController";

/// The custom role holding the [`Delegated`] rows' permissions (and
/// nothing else), which the bootstrap binds on the project under
/// [`grant_condition`] (`ccd doctor --print-grants-role`).
pub const GRANTOR_ROLE_ID: &str = "ccdControllerGrants";

/// Every role the controller grants, on the project (the apps' accounts'
/// log and metric writing; Cloud SQL login and Firestore, each under an
/// IAM condition naming one instance or database) or on a bucket or
/// managed folder (an app's files, a log sink's writer). The adapters
/// define them; a test in the `ccd` binary checks this list is exactly
/// theirs.
pub const GRANTED_ROLES: [&str; 7] = [
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/datastore.user",
    "roles/storage.objectUser",
    "roles/storage.objectCreator",
];

/// The IAM condition on [`GRANTOR_ROLE_ID`]: the controller may grant and
/// revoke [`GRANTED_ROLES`] and nothing else (Google's "limited IAM admin",
/// the `modifiedGrantsByRole` API attribute, which Resource Manager and
/// Cloud Storage recognize; at most 10 roles in one `hasOnly`).
pub fn grant_condition() -> String {
    let roles: Vec<String> = GRANTED_ROLES.iter().map(|r| format!("'{r}'")).collect();
    format!(
        "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{}])",
        roles.join(", ")
    )
}

/// Every row of both tables.
fn rows() -> impl Iterator<Item = &'static Need> {
    TABLE.iter().chain(SERVICES)
}

/// The permissions held only through [`GRANTOR_ROLE_ID`]: the
/// [`Delegated`] rows', sorted, each once.
pub fn delegated() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = rows()
        .filter(|n| n.caller == Delegated)
        .flat_map(|n| n.permissions.iter().copied())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Every permission of the custom role, sorted, each once: both tables',
/// but for the [`delegated`] ones.
pub fn all() -> Vec<&'static str> {
    let held_elsewhere = delegated();
    let mut out: Vec<&'static str> = rows()
        .filter(|n| n.caller != Delegated)
        .flat_map(|n| n.permissions.iter().copied())
        .filter(|p| !held_elsewhere.contains(p))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn yaml(title: &str, description: &str, permissions: &[&str]) -> String {
    let mut out = format!(
        "# Generated by `ccd doctor` from ccd-cloud's permission tables; do not edit.\n\
         title: {title}\n\
         description: {description}\n\
         stage: GA\n\
         includedPermissions:\n",
    );
    for p in permissions {
        out.push_str("- ");
        out.push_str(p);
        out.push('\n');
    }
    out
}

/// The role as `gcloud iam roles create|update ROLE --file` reads it.
pub fn role_yaml() -> String {
    yaml(
        "ccd controller",
        "What ccd's controller calls on Compute Engine, Monitoring, Pub/Sub, IAM and the apps' services.",
        &all(),
    )
}

/// [`GRANTOR_ROLE_ID`] as `gcloud iam roles create|update ROLE --file` reads it.
pub fn grants_role_yaml() -> String {
    yaml(
        "ccd controller grants",
        "Setting IAM policies, bound only under a condition naming the roles ccd grants its apps.",
        &delegated(),
    )
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
        // Names bound to the clients' struct itself: `let (c, p) = (&self.c, ..);`.
        let mut structs: BTreeSet<String> = BTreeSet::new();
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
                    match values.get(k).map(String::as_str) {
                        Some("&self.c") => structs.insert(name.clone()),
                        _ => structs.remove(name),
                    };
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
            if before(i, 1) != "." && at(i + 1) == "." && structs.contains(at(i)) {
                let (client, method) = (at(i + 2), at(i + 4));
                if at(i + 3) == "." && at(i + 5) == "(" && ident(client) && ident(method) {
                    out.insert((client.to_owned(), method.to_owned()));
                } else {
                    return Err(format!(
                        "{file}: cannot tell which client's method {} calls near token {i}",
                        at(i)
                    ));
                }
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

    /// Every call in a crate's source (`crates/CRATE/src`), with the files it is in.
    fn source_calls(krate: &str) -> BTreeMap<(String, String), Vec<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(krate)
            .join("src");
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

    /// The calls without a row (caller Adapter, Delegated or Doctor) in
    /// `table`, and the rows no call needs.
    fn unmatched(
        found: &BTreeMap<(String, String), Vec<String>>,
        table: &[Need],
    ) -> (Vec<String>, Vec<String>) {
        let checked = |n: &Need| matches!(n.caller, Adapter | Delegated | Doctor);
        let row = |c: &str, m: &str| table.iter().find(|n| n.client == c && n.method == m);
        let missing = found
            .iter()
            .filter(|((c, m), _)| row(c, m).is_none_or(|n| !checked(n)))
            .map(|((c, m), files)| format!("{c}.{m} (in {})", files.join(", ")))
            .collect();
        let stale = table
            .iter()
            .filter(|n| checked(n))
            .filter(|n| !found.contains_key(&(n.client.to_owned(), n.method.to_owned())))
            .map(|n| format!("{}.{}", n.client, n.method))
            .collect();
        (missing, stale)
    }

    fn has(found: &BTreeMap<(String, String), Vec<String>>, client: &str, method: &str) -> bool {
        found.contains_key(&(client.to_owned(), method.to_owned()))
    }

    #[test]
    fn every_call_in_the_source_has_its_permissions_and_every_row_a_call() {
        let found = source_calls("ccd-cloud");
        assert!(
            has(&found, "templates", "insert")
                && has(&found, "rigm", "patch")
                && has(&found, "rhealth_checks", "update"),
            "the scan misses known calls: {found:?}"
        );
        let (missing, stale) = unmatched(&found, TABLE);
        assert!(
            missing.is_empty(),
            "calls without a row (caller Adapter or Doctor) in gce/permissions.rs TABLE; add each with the IAM permissions its API reference lists: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "rows no call needs any more; remove them: {stale:?}"
        );
    }

    #[test]
    fn every_call_of_the_services_adapter_has_its_permissions_and_every_row_a_call() {
        let found = source_calls("ccd-services-gcp");
        // Through `let (c, project) = (&self.c, ..)` (sql.rs), `self.c.X.m()`
        // split over lines, and the Storage control client.
        assert!(
            has(&found, "sql_databases", "insert")
                && has(&found, "sql_users", "delete")
                && has(&found, "sql_instances", "execute_sql")
                && has(&found, "firestore", "update_database")
                && has(&found, "storage", "set_iam_policy"),
            "the scan misses known calls: {found:?}"
        );
        let (missing, stale) = unmatched(&found, SERVICES);
        assert!(
            missing.is_empty(),
            "calls of crates/ccd-services-gcp without a row in ccd-cloud's gce/permissions.rs SERVICES; add each with the IAM permissions Google's documentation lists for its method: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "SERVICES rows no call needs any more; remove them: {stale:?}"
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
                let (all, p) = (&self.c, self.project());
                all.sql_users
                    .insert();
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
                "sql_users.insert",
                "templates.insert"
            ]
        );
        let err = calls(
            "fn f(&self) { let (c, p) = (&self.c, 1); pass(c.sql_users); }",
            "z.rs",
        )
        .unwrap_err();
        assert!(err.contains("z.rs"), "{err}");
        let err = calls("fn f(&self) { pass(&self.c.igm); }", "y.rs").unwrap_err();
        assert!(err.contains("y.rs") && err.contains("igm"), "{err}");
    }

    #[test]
    fn the_role_lists_every_permission_of_the_tables_once() {
        let yaml = role_yaml();
        let listed: Vec<&str> = yaml.lines().filter_map(|l| l.strip_prefix("- ")).collect();
        let grants = grants_role_yaml();
        let granting: Vec<&str> = grants
            .lines()
            .filter_map(|l| l.strip_prefix("- "))
            .collect();
        for need in TABLE.iter().chain(SERVICES) {
            for p in need.permissions {
                assert!(
                    listed.contains(p) != granting.contains(p),
                    "{p} of {}.{} must be in exactly one of the two roles",
                    need.client,
                    need.method
                );
            }
        }
        // Held under the grant condition only: in the role, they would let
        // the controller grant itself any role.
        for p in [
            "resourcemanager.projects.setIamPolicy",
            "storage.buckets.setIamPolicy",
            "storage.managedFolders.setIamPolicy",
        ] {
            assert!(!listed.contains(&p) && granting.contains(&p), "{p}");
        }
        assert!(
            granting.iter().all(|p| p.ends_with(".setIamPolicy")),
            "the grants role holds policy writes only: {granting:?}"
        );
        // Things the services need that a guess would get wrong.
        for p in [
            "cloudsql.instances.executeSql",
            "cloudsql.instances.login",
            "datastore.databases.getMetadata",
            "datastore.operations.get",
            "storage.managedFolders.create",
        ] {
            assert!(listed.contains(&p), "{p}");
        }
        let unique: BTreeSet<&&str> = listed.iter().collect();
        assert_eq!(unique.len(), listed.len(), "a permission listed twice");
        assert!(
            listed
                .iter()
                .chain(&granting)
                .all(|p| p.split('.').count() == 3),
            "{listed:?}"
        );
    }

    #[test]
    fn the_grant_condition_names_exactly_the_granted_roles() {
        let c = grant_condition();
        assert_eq!(
            c,
            "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([\
             'roles/logging.logWriter', 'roles/monitoring.metricWriter', \
             'roles/cloudsql.client', 'roles/cloudsql.instanceUser', 'roles/datastore.user', \
             'roles/storage.objectUser', 'roles/storage.objectCreator'])"
        );
        // Google takes at most 10 roles in one hasOnly, and no broad role.
        assert!(GRANTED_ROLES.len() <= 10);
        for broad in ["admin", "owner", "editor", "Admin"] {
            assert!(
                GRANTED_ROLES.iter().all(|r| !r.contains(broad)),
                "{broad} in {GRANTED_ROLES:?}"
            );
        }
        assert!(
            crate::identity::PROJECT_ROLES
                .iter()
                .all(|r| GRANTED_ROLES.contains(r))
        );
    }
}
