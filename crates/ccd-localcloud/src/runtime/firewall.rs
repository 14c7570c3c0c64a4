//! Applies the project's firewall rules to a connection toward an instance.

use std::net::IpAddr;

use serde_json::Value;

use crate::cloud::Cloud;
use crate::firewall::{Ingress, decide};
use crate::paths;

/// Whether `source` may reach `instance` on `port`; a refusal is logged with the rule.
pub fn admits(cloud: &Cloud, source: IpAddr, instance: &Value, port: u16) -> bool {
    let key = instance["selfLink"]
        .as_str()
        .map(|l| cloud.key_of(l))
        .unwrap_or_default();
    let project = paths::project_of(&key).unwrap_or_default();
    let rules: Vec<_> = cloud
        .store
        .list(&format!("projects/{project}/global/firewalls/"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let tags: Vec<String> = instance["tags"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let network = instance["networkInterfaces"][0]["network"]
        .as_str()
        .unwrap_or("default");
    let (allowed, rule) = decide(
        &rules,
        &Ingress {
            source,
            port,
            tags: &tags,
            network,
        },
    );
    if !allowed {
        tracing::warn!(
            instance = %paths::name_of(&key),
            %source,
            port,
            rule = rule.as_deref().unwrap_or("implied deny-all ingress"),
            "firewall refused a connection"
        );
    }
    allowed
}
