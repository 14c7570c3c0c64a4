//! Compute's firewall model, evaluated on every connection the local cloud
//! makes or accepts for an instance: the highest-priority matching rule
//! decides (deny wins a tie), and ingress with no matching rule is denied,
//! as the VPC's implied rule does.

use std::net::IpAddr;

use serde_json::Value;

/// A CIDR range, or a bare address meaning a single host.
pub fn parse_range(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
        None => {
            let a: IpAddr = text.parse().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

fn in_range(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One inbound connection to an instance.
#[derive(Debug, Clone)]
pub struct Ingress<'a> {
    pub source: IpAddr,
    pub port: u16,
    /// The instance's network tags.
    pub tags: &'a [String],
    /// The instance's network link.
    pub network: &'a str,
}

/// The verdict and the rule that gave it (None: the implied deny).
pub fn decide(rules: &[std::sync::Arc<Value>], conn: &Ingress<'_>) -> (bool, Option<String>) {
    let mut best: Option<(i64, bool, String)> = None;
    for rule in rules {
        if rule["disabled"] == true || rule["direction"].as_str().unwrap_or("INGRESS") != "INGRESS"
        {
            continue;
        }
        if rule["network"]
            .as_str()
            .is_some_and(|n| !same_network(n, conn.network))
        {
            continue;
        }
        let targets: Vec<&str> = rule["targetTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !targets.is_empty() && !targets.iter().any(|t| conn.tags.iter().any(|g| g == t)) {
            continue;
        }
        let sources_match = rule["sourceRanges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(parse_range)
            .any(|r| in_range(conn.source, r));
        if !sources_match {
            continue;
        }
        let (list, allow) = match rule.get("allowed") {
            Some(a) if a.as_array().is_some_and(|a| !a.is_empty()) => (a, true),
            _ => (&rule["denied"], false),
        };
        if !list
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| protocol_matches(p, conn.port))
        {
            continue;
        }
        let priority = rule["priority"].as_i64().unwrap_or(1000);
        let name = rule["name"].as_str().unwrap_or_default().to_owned();
        let better = match &best {
            None => true,
            Some((p, best_allow, _)) => priority < *p || (priority == *p && *best_allow && !allow),
        };
        if better {
            best = Some((priority, allow, name));
        }
    }
    match best {
        Some((_, allow, name)) => (allow, Some(name)),
        None => (false, None),
    }
}

fn same_network(a: &str, b: &str) -> bool {
    crate::paths::name_of(a) == crate::paths::name_of(b)
}

fn protocol_matches(rule: &Value, port: u16) -> bool {
    let protocol = rule["IPProtocol"].as_str().unwrap_or_default();
    if protocol != "tcp" && protocol != "all" && protocol != "6" {
        return false;
    }
    let Some(ports) = rule["ports"].as_array().filter(|p| !p.is_empty()) else {
        return true;
    };
    ports
        .iter()
        .filter_map(Value::as_str)
        .any(|p| match p.split_once('-') {
            Some((lo, hi)) => {
                lo.parse::<u16>().is_ok_and(|lo| lo <= port)
                    && hi.parse::<u16>().is_ok_and(|hi| port <= hi)
            }
            None => p.parse::<u16>() == Ok(port),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn conn(source: &str, port: u16) -> Ingress<'static> {
        static TAGS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["web".to_owned()]);
        Ingress {
            source: source.parse().unwrap(),
            port,
            tags: &TAGS,
            network: "global/networks/default",
        }
    }

    #[test]
    fn priority_deny_ties_and_implied_deny() {
        let rules = vec![
            Arc::new(
                json!({"name": "allow-lb", "priority": 1000, "sourceRanges": ["35.191.0.0/16"], "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
            ),
            Arc::new(
                json!({"name": "deny-bad", "priority": 1000, "sourceRanges": ["35.191.9.0/24"], "denied": [{"IPProtocol": "tcp"}]}),
            ),
            Arc::new(
                json!({"name": "other-tag", "priority": 10, "sourceRanges": ["0.0.0.0/0"], "targetTags": ["db"], "allowed": [{"IPProtocol": "tcp"}]}),
            ),
        ];
        assert_eq!(
            decide(&rules, &conn("35.191.1.1", 8080)),
            (true, Some("allow-lb".into()))
        );
        assert_eq!(
            decide(&rules, &conn("35.191.9.9", 8080)),
            (false, Some("deny-bad".into()))
        );
        assert_eq!(decide(&rules, &conn("35.191.1.1", 9090)), (false, None));
        assert_eq!(decide(&rules, &conn("10.0.0.1", 8080)), (false, None));
    }

    #[test]
    fn ranges() {
        assert!(parse_range("10.0.0.0/8").is_some());
        assert!(parse_range("10.0.0.1").is_some());
        assert!(parse_range("10.0.0.0/40").is_none());
        assert!(in_range(
            "10.1.2.3".parse().unwrap(),
            parse_range("10.0.0.0/8").unwrap()
        ));
    }
}
