//! Defaults and checks for the simpler collections, as Compute applies them.

use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::{local_run, paths};

fn default(res: &mut Value, field: &str, value: Value) {
    if res.get(field).is_none_or(Value::is_null) {
        res[field] = value;
    }
}

pub fn instance_template(res: &mut Value) -> Result<(), ApiError> {
    let props = res
        .get("properties")
        .filter(|p| p.is_object())
        .ok_or_else(|| ApiError::required("resource.properties"))?;
    if let Some(items) = props.pointer("/metadata/items").and_then(Value::as_array) {
        for item in items {
            if item["key"] == local_run::METADATA_KEY {
                local_run::LocalRun::parse(item["value"].as_str().unwrap_or("")).map_err(|e| {
                    ApiError::invalid(format!(
                        "Invalid value for field 'resource.properties.metadata.items[{}]': {e}",
                        local_run::METADATA_KEY
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// A standalone instance: it boots (PROVISIONING) and gets its own loopback address.
pub fn instance(
    cloud: &Cloud,
    call: &crate::api::Call,
    key: &str,
    res: &mut Value,
) -> Result<(), ApiError> {
    let zone = key.rsplit_once("/instances/").map_or("", |(z, _)| z);
    res["status"] = "PROVISIONING".into();
    let machine = res["machineType"]
        .as_str()
        .map_or("e2-small", paths::name_of)
        .to_owned();
    res["machineType"] = cloud.link(&format!("{zone}/machineTypes/{machine}")).into();
    let network = cloud.link(&format!(
        "projects/{}/global/networks/default",
        call.project
    ));
    if res["networkInterfaces"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        res["networkInterfaces"] = json!([{"network": network}]);
    }
    let nic = &mut res["networkInterfaces"][0];
    nic["name"] = "nic0".into();
    nic["networkIP"] = crate::runtime::instances::allocate_ip(&cloud.store).into();
    if nic.get("network").is_none() {
        nic["network"] = network.into();
    }
    Ok(())
}

/// An address: RESERVED, with a loopback address of its own when none is asked for.
pub fn address(cloud: &Cloud, res: &mut Value) -> Result<(), ApiError> {
    if res.get("address").is_none() {
        res["address"] = crate::runtime::instances::allocate_ip(&cloud.store).into();
    } else if res["address"]
        .as_str()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .is_none()
    {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource.address': must be an IP address.",
        ));
    }
    default(res, "addressType", "EXTERNAL".into());
    default(res, "ipVersion", "IPV4".into());
    res["status"] = "RESERVED".into();
    Ok(())
}

pub fn health_check(res: &mut Value) -> Result<(), ApiError> {
    let kind = res["type"]
        .as_str()
        .ok_or_else(|| ApiError::required("resource.type"))?
        .to_owned();
    let (field, default_port) = match kind.as_str() {
        "HTTP" => ("httpHealthCheck", 80),
        "HTTPS" => ("httpsHealthCheck", 443),
        "TCP" => ("tcpHealthCheck", 80),
        "HTTP2" => ("http2HealthCheck", 443),
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.type': '{other}'. The local cloud probes HTTP, HTTPS, HTTP2 and TCP."
            )));
        }
    };
    default(res, field, json!({}));
    let probe = &mut res[field];
    if probe.get("portSpecification").is_none()
        && probe.get("port").is_none()
        && probe.get("portName").is_none()
    {
        probe["port"] = default_port.into();
    }
    if kind != "TCP" {
        default(probe, "requestPath", "/".into());
    }
    default(probe, "proxyHeader", "NONE".into());
    default(res, "checkIntervalSec", 5.into());
    default(res, "timeoutSec", 5.into());
    default(res, "healthyThreshold", 2.into());
    default(res, "unhealthyThreshold", 2.into());
    let (interval, timeout) = (
        res["checkIntervalSec"].as_i64().unwrap_or(5),
        res["timeoutSec"].as_i64().unwrap_or(5),
    );
    if timeout > interval {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'resource.timeoutSec': '{timeout}'. TimeoutSec should be less than checkIntervalSec."
        )));
    }
    if !(1..=300).contains(&interval) {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource.checkIntervalSec': must be 1 to 300.",
        ));
    }
    Ok(())
}

pub fn backend_service(res: &mut Value) -> Result<(), ApiError> {
    default(res, "loadBalancingScheme", "EXTERNAL".into());
    default(res, "protocol", "HTTP".into());
    default(res, "timeoutSec", 30.into());
    default(
        res,
        "connectionDraining",
        json!({"drainingTimeoutSec": 300}),
    );
    if res["loadBalancingScheme"] != "INTERNAL" {
        default(res, "portName", "http".into());
    }
    if res["healthChecks"].as_array().is_some_and(|h| h.len() > 1) {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource.healthChecks': a backend service takes at most one health check.",
        ));
    }
    let Some(backends) = res.get_mut("backends").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let single = backends.len() == 1;
    for (i, backend) in backends.iter_mut().enumerate() {
        default(backend, "balancingMode", "UTILIZATION".into());
        default(backend, "capacityScaler", 1.0.into());
        let scaler = backend["capacityScaler"].as_f64().unwrap_or(1.0);
        if !(scaler == 0.0 || (0.1..=1.0).contains(&scaler)) {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.backends[{i}].capacityScaler': '{scaler}'. Must be 0 or between 0.1 and 1."
            )));
        }
        if backend.get("group").is_none() {
            return Err(ApiError::required(&format!("resource.backends[{i}].group")));
        }
        if single && scaler == 0.0 {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.backends[{i}].capacityScaler': '0'. At least one backend must have a non-zero capacity."
            )));
        }
    }
    Ok(())
}

/// The retry conditions Compute's URL maps take (`HttpRetryPolicy.retryConditions`).
const RETRY_CONDITIONS: [&str; 10] = [
    "5xx",
    "gateway-error",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// URL maps: where each level sends its requests (one service, a weighted split or a
/// redirect) and each route's retry policy, checked as Compute documents them.
pub fn url_map(res: &Value) -> Result<(), ApiError> {
    url_map_redirects(res)?;
    let mut actions = vec![("defaultRouteAction".to_owned(), &res["defaultRouteAction"])];
    for (i, m) in res["pathMatchers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        actions.push((
            format!("pathMatchers[{i}].defaultRouteAction"),
            &m["defaultRouteAction"],
        ));
        for rules in ["pathRules", "routeRules"] {
            for (j, r) in m[rules].as_array().into_iter().flatten().enumerate() {
                let field = format!("pathMatchers[{i}].{rules}[{j}].routeAction");
                actions.push((field, &r["routeAction"]));
            }
        }
    }
    for (field, action) in actions {
        let policy = &action["retryPolicy"];
        let invalid = |what: &str, value: &Value| {
            ApiError::invalid(format!(
                "Invalid value for field 'resource.{field}.retryPolicy.{what}': '{value}'."
            ))
        };
        if policy["numRetries"].as_u64() == Some(0) {
            return Err(invalid("numRetries", &policy["numRetries"]));
        }
        for condition in policy["retryConditions"].as_array().into_iter().flatten() {
            if !condition
                .as_str()
                .is_some_and(|c| RETRY_CONDITIONS.contains(&c))
            {
                return Err(invalid("retryConditions", condition));
            }
        }
        let timeout = &policy["perTryTimeout"];
        let zero = |v: &Value| v.is_null() || v == "0" || v == 0;
        if timeout.is_object() && zero(&timeout["seconds"]) && zero(&timeout["nanos"]) {
            return Err(invalid("perTryTimeout", timeout));
        }
    }
    Ok(())
}

/// "Only one of defaultUrlRedirect, defaultService or defaultRouteAction.weightedBackendService
/// can be set" (the discovery document), at the map's level, each path matcher's and each rule's;
/// and each redirect's own limits.
fn url_map_redirects(res: &Value) -> Result<(), ApiError> {
    // (where, the redirect field, the service field, the route action field)
    let mut levels = vec![(
        String::new(),
        "defaultUrlRedirect",
        "defaultService",
        "defaultRouteAction",
        res,
    )];
    for (i, m) in res["pathMatchers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("pathMatchers[{i}].");
        levels.push((
            at.clone(),
            "defaultUrlRedirect",
            "defaultService",
            "defaultRouteAction",
            m,
        ));
        for rules in ["pathRules", "routeRules"] {
            for (j, r) in m[rules].as_array().into_iter().flatten().enumerate() {
                let at = format!("{at}{rules}[{j}].");
                levels.push((at, "urlRedirect", "service", "routeAction", r));
            }
        }
    }
    for (at, redirect_field, service_field, action_field, level) in levels {
        let Some(redirect) = level.get(redirect_field) else {
            continue;
        };
        let weighted = level[action_field]["weightedBackendServices"]
            .as_array()
            .is_some_and(|w| !w.is_empty());
        if level.get(service_field).is_some() || weighted {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.{at}{redirect_field}': Only one of {redirect_field}, {service_field} or {action_field}.weightedBackendService can be set."
            )));
        }
        let field = |f: &str| format!("resource.{at}{redirect_field}.{f}");
        if redirect.get("pathRedirect").is_some() && redirect.get("prefixRedirect").is_some() {
            return Err(ApiError::invalid(format!(
                "Invalid value for field '{}': pathRedirect cannot be supplied together with prefixRedirect.",
                field("prefixRedirect")
            )));
        }
        for (f, max) in [
            ("hostRedirect", 255),
            ("pathRedirect", 1024),
            ("prefixRedirect", 1024),
        ] {
            let Some(value) = redirect.get(f) else {
                continue;
            };
            let len = value.as_str().map_or(0, str::len);
            if !(1..=max).contains(&len) {
                return Err(ApiError::invalid(format!(
                    "Invalid value for field '{}': '{value}'. The value must be from 1 to {max} characters.",
                    field(f)
                )));
            }
        }
    }
    Ok(())
}

pub fn firewall(cloud: &Cloud, project: &str, res: &mut Value) -> Result<(), ApiError> {
    default(res, "direction", "INGRESS".into());
    default(res, "priority", 1000.into());
    default(res, "disabled", false.into());
    default(
        res,
        "network",
        cloud
            .link(&format!("projects/{project}/global/networks/default"))
            .into(),
    );
    if let Some(network) = res["network"].as_str() {
        res["network"] = cloud.link(&paths::normalize(network, project)).into();
    }
    let rules = |f: &str| res.get(f).and_then(Value::as_array).map_or(0, Vec::len);
    if rules("allowed") + rules("denied") == 0 || (rules("allowed") > 0 && rules("denied") > 0) {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource': a firewall rule needs either allowed or denied rules, not both.",
        ));
    }
    let priority = res["priority"].as_i64().unwrap_or(1000);
    if !(0..=65535).contains(&priority) {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'resource.priority': '{priority}'. Must be 0 to 65535."
        )));
    }
    for field in ["sourceRanges", "destinationRanges"] {
        for (i, range) in res[field].as_array().into_iter().flatten().enumerate() {
            let text = range.as_str().unwrap_or_default();
            if crate::firewall::parse_range(text).is_none() {
                return Err(ApiError::invalid(format!(
                    "Invalid value for field 'resource.{field}[{i}]': '{text}'. Must be a CIDR range."
                )));
            }
        }
    }
    Ok(())
}

pub fn forwarding_rule(cloud: &Cloud, project: &str, res: &mut Value) -> Result<(), ApiError> {
    match res["IPAddress"].as_str() {
        // An ephemeral address: a loopback address of the rule's own.
        None => res["IPAddress"] = crate::runtime::instances::allocate_ip(&cloud.store).into(),
        Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => {}
        // A reserved address, named by reference: Compute stores its IP.
        Some(reference) => {
            let key = paths::normalize(reference, project);
            let address = cloud
                .store
                .get(&key)
                .ok_or_else(|| ApiError::not_found(&key))?;
            res["IPAddress"] = address["address"].clone();
        }
    }
    default(res, "IPProtocol", "TCP".into());
    default(res, "loadBalancingScheme", "EXTERNAL".into());
    if res.get("target").is_none() && res.get("backendService").is_none() {
        return Err(ApiError::invalid(
            "Invalid value for field 'resource': a forwarding rule needs a target or a backendService.",
        ));
    }
    if let Some(range) = res["portRange"].as_str() {
        let ok = range
            .split('-')
            .all(|p| p.parse::<u16>().is_ok_and(|n| n > 0))
            && range.split('-').count() <= 2;
        if !ok {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.portRange': '{range}'."
            )));
        }
        if !range.contains('-') {
            res["portRange"] = format!("{range}-{range}").into();
        }
    }
    Ok(())
}

pub fn ssl_certificate(res: &mut Value) -> Result<(), ApiError> {
    default(res, "type", "SELF_MANAGED".into());
    match res["type"].as_str() {
        Some("MANAGED") => {
            let domains: Vec<String> = res
                .pointer("/managed/domains")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if domains.is_empty() {
                return Err(ApiError::required("resource.managed.domains"));
            }
            // No certificate authority is reachable here: a managed certificate
            // is answered with a self-signed one for the same domains, ACTIVE at once.
            let cert = crate::certs::self_signed(&domains).map_err(ApiError::invalid)?;
            res["certificate"] = cert.certificate.into();
            res["privateKey"] = cert.private_key.into();
            res["managed"]["status"] = "ACTIVE".into();
            let statuses: serde_json::Map<String, Value> = domains
                .iter()
                .map(|d| (d.clone(), "ACTIVE".into()))
                .collect();
            res["managed"]["domainStatus"] = Value::Object(statuses);
            res["subjectAlternativeNames"] = domains.into();
        }
        _ => {
            let cert = res["certificate"]
                .as_str()
                .ok_or_else(|| ApiError::required("resource.certificate"))?;
            let key = res["privateKey"]
                .as_str()
                .ok_or_else(|| ApiError::required("resource.privateKey"))?;
            let names = crate::certs::check_pair(cert, key).map_err(ApiError::invalid)?;
            res["subjectAlternativeNames"] = names.into();
        }
    }
    Ok(())
}

/// Compute gives every project a `default` network in auto mode, with a
/// `default` subnetwork in each region: made here the first time a call
/// names the project (and the region), so that a configuration's default
/// network exists on the local cloud as it does on Compute Engine. Private
/// Google Access is on: local instances reach the APIs directly.
/// Called at the top of `handlers::dispatch`.
pub fn seed_default_network(cloud: &Cloud, project: &str, region: Option<&str>) {
    let network_key = format!("projects/{project}/global/networks/default");
    let network = cloud.link(&network_key);
    if cloud.store.get(&network_key).is_none() {
        cloud.store.put(
            &network_key,
            json!({
                "kind": "compute#network", "id": crate::clock::new_id(), "name": "default",
                "description": "Default network for the project",
                "creationTimestamp": crate::clock::now_rfc3339(),
                "selfLink": network, "autoCreateSubnetworks": true, "mtu": 1460,
                "routingConfig": {"routingMode": "REGIONAL"},
            }),
        );
    }
    let Some(region) = region else { return };
    let key = format!("projects/{project}/regions/{region}/subnetworks/default");
    if cloud.store.get(&key).is_some() {
        return;
    }
    // Auto mode gives each region a /20 of 10.128.0.0/9.
    let block = region
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 2048;
    let base = (10u32 << 24) | (128 << 16) | (block << 12);
    let range = format!("{}/20", std::net::Ipv4Addr::from(base));
    let gateway = std::net::Ipv4Addr::from(base + 1).to_string();
    cloud.store.put(
        &key,
        json!({
            "kind": "compute#subnetwork", "id": crate::clock::new_id(), "name": "default",
            "creationTimestamp": crate::clock::now_rfc3339(),
            "network": network, "ipCidrRange": range, "gatewayAddress": gateway,
            "region": cloud.link(&format!("projects/{project}/regions/{region}")),
            "selfLink": cloud.link(&key), "privateIpGoogleAccess": true,
            "purpose": "PRIVATE", "stackType": "IPV4_ONLY",
            "fingerprint": "bG9jYWxjbG91ZA==",
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_network_and_subnetwork_are_made_once_and_conform() {
        let cloud = Cloud::new(
            crate::store::Store::in_memory(),
            "http://h/compute/v1/".to_owned(),
            false,
        );
        seed_default_network(&cloud, "p", Some("europe-west1"));
        let api = ccd_discovery::Api::compute();
        let net = cloud
            .store
            .get("projects/p/global/networks/default")
            .unwrap();
        let sub = cloud
            .store
            .get("projects/p/regions/europe-west1/subnetworks/default")
            .unwrap();
        for (schema, body) in [("Network", &net), ("Subnetwork", &sub)] {
            let checked = api.check_response(schema, body);
            assert!(checked.is_ok(), "{schema}: {checked:?}");
        }
        assert_eq!(sub["network"], net["selfLink"]);
        assert_eq!(sub["privateIpGoogleAccess"], true);
        let range = sub["ipCidrRange"].as_str().unwrap();
        assert!(
            range.starts_with("10.") && range.ends_with("/20"),
            "{range}"
        );
        // A second look changes nothing.
        seed_default_network(&cloud, "p", Some("europe-west1"));
        let again = cloud
            .store
            .get("projects/p/regions/europe-west1/subnetworks/default")
            .unwrap();
        assert_eq!(again["id"], sub["id"]);
    }
}
