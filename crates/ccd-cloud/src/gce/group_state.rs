//! A group's state: the group, its managed instances and their addresses.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use google_cloud_compute_v1::model::{ManagedInstance as GceInstance, managed_instance};

use super::GceCloud;
use super::call::{Kind, Outcome};
use super::groups::{igm, versions_of};
use super::marker::name_of;
use crate::model::{
    APP_LABEL, GroupId, GroupState, InstanceAction, InstanceHealth, InstanceStatus,
    ManagedInstance, NamedPort,
};

fn action(a: Option<&managed_instance::CurrentAction>) -> InstanceAction {
    use managed_instance::CurrentAction as A;
    match a {
        None | Some(A::None) => InstanceAction::None,
        Some(A::Creating | A::CreatingWithoutRetries) => InstanceAction::Creating,
        Some(A::Recreating) => InstanceAction::Recreating,
        Some(A::Deleting | A::Abandoning) => InstanceAction::Deleting,
        Some(A::Restarting) => InstanceAction::Restarting,
        Some(A::Verifying) => InstanceAction::Verifying,
        Some(other) => InstanceAction::Other(cloud_word(other.name())),
    }
}

fn status(s: Option<&managed_instance::InstanceStatus>) -> InstanceStatus {
    match s.and_then(|s| s.name()).unwrap_or("UNKNOWN") {
        "RUNNING" => InstanceStatus::Running,
        "PROVISIONING" | "STAGING" | "PENDING" | "REPAIRING" => InstanceStatus::Pending,
        "STOPPING" | "SUSPENDING" | "PENDING_STOP" => InstanceStatus::Stopping,
        "STOPPED" | "TERMINATED" | "SUSPENDED" => InstanceStatus::Stopped,
        other => InstanceStatus::Unknown(cloud_word(Some(other))),
    }
}

/// A value Compute may add after this code was written (an enum's unknown
/// variant keeps the server's text): kept as a short upper-case word, so
/// that whatever an endpoint sends reaches status, events and terminals as
/// a word, never as markup, control characters or a wall of text.
fn cloud_word(raw: Option<&str>) -> String {
    let word: String = raw
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
        .take(32)
        .collect();
    if word.is_empty() {
        "UNKNOWN".to_owned()
    } else {
        word
    }
}

fn health(i: &GceInstance) -> InstanceHealth {
    let state = i
        .instance_health
        .first()
        .and_then(|h| h.detailed_health_state.as_ref())
        .and_then(|s| s.name());
    match state {
        Some("HEALTHY") => InstanceHealth::Healthy,
        Some("UNHEALTHY") => InstanceHealth::Unhealthy,
        Some("TIMEOUT") => InstanceHealth::Unreachable,
        Some("DRAINING") => InstanceHealth::Draining,
        _ => InstanceHealth::Unknown,
    }
}

fn member(m: &GceInstance) -> ManagedInstance {
    let name = m
        .name
        .clone()
        .or_else(|| m.instance.as_deref().map(|l| name_of(l).to_owned()))
        .unwrap_or_default();
    ManagedInstance {
        id: m.id.map(|id| id.to_string()),
        zone: m.instance.as_deref().and_then(zone_of).map(str::to_owned),
        address: None,
        template: m
            .version
            .as_ref()
            .and_then(|v| v.instance_template.as_deref())
            .map(|t| name_of(t).to_owned()),
        version: m.version.as_ref().and_then(|v| v.name.clone()),
        action: action(m.current_action.as_ref()),
        status: status(m.instance_status.as_ref()),
        health: health(m),
        name,
    }
}

/// `.../zones/{zone}/instances/{name}` → zone.
fn zone_of(link: &str) -> Option<&str> {
    link.split("/zones/").nth(1)?.split('/').next()
}

impl GceCloud {
    #[tracing::instrument(skip_all, fields(app = %id.app, group = %id.name))]
    pub(crate) async fn get_group_impl(&self, id: &GroupId) -> Outcome<Option<GroupState>> {
        let Some(group) = self.find_group(id).await? else {
            return Ok(None);
        };
        let members = self.managed_instances(id).await?;
        let zones: BTreeSet<&str> = members
            .iter()
            .filter_map(|m| m.instance.as_deref().and_then(zone_of))
            .collect();
        let mut addresses = HashMap::new();
        for zone in zones {
            addresses.extend(self.instance_addresses(&id.app, zone).await?);
        }
        let instances = members
            .iter()
            .map(|m| {
                let mut i = member(m);
                i.address = addresses.get(&i.name).copied();
                i
            })
            .collect();
        let status = group.status.clone().unwrap_or_default();
        Ok(Some(GroupState {
            id: id.clone(),
            target_size: group
                .target_size
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(0),
            versions: versions_of(&group),
            is_stable: status.is_stable == Some(true),
            version_target_reached: status.version_target.and_then(|v| v.is_reached) == Some(true),
            named_ports: group
                .named_ports
                .iter()
                .map(|p| NamedPort {
                    name: p.name.clone().unwrap_or_default(),
                    port: p.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
                })
                .collect(),
            instances,
        }))
    }

    /// The group's instances as its manager sees them, without addresses:
    /// one call (per 500 instances). `None` when there is no such group.
    #[tracing::instrument(skip_all, fields(app = %id.app, group = %id.name))]
    pub(crate) async fn group_members_impl(
        &self,
        id: &GroupId,
    ) -> Outcome<Option<Vec<ManagedInstance>>> {
        let members = match self.managed_instances(id).await {
            Ok(members) => Some(members.iter().map(member).collect()),
            Err(f) if f.kind == Kind::NotFound => None,
            Err(f) => return Err(f),
        };
        self.seen.saw(&self.group_resource(id), members.is_some());
        Ok(members)
    }

    async fn managed_instances(&self, id: &GroupId) -> Outcome<Vec<GceInstance>> {
        let resource = self.group_resource(id);
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let (items, next) = igm!(self, id, list_managed_instances, |b| {
                let page = self
                    .read(&resource, b.set_page_token(&token).send())
                    .await?;
                (page.managed_instances, page.next_page_token)
            });
            out.extend(items);
            match next {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }

    /// Internal addresses of the app's instances in a zone, by name: one list
    /// call per zone instead of one get per instance.
    async fn instance_addresses(&self, app: &str, zone: &str) -> Outcome<HashMap<String, IpAddr>> {
        let resource = format!("zones/{zone}/instances");
        let filter = format!("labels.{APP_LABEL} = \"{app}\"");
        let mut out = HashMap::new();
        let mut token = String::new();
        loop {
            let list = self
                .c
                .instances
                .list()
                .set_project(self.project())
                .set_zone(zone)
                .set_filter(&filter)
                .set_page_token(&token);
            let page = self.read(&resource, list.send()).await?;
            for i in page.items {
                let ip = i
                    .network_interfaces
                    .first()
                    .and_then(|n| n.network_ip.as_deref())
                    .and_then(|ip| ip.parse().ok());
                if let (Some(name), Some(ip)) = (i.name, ip) {
                    out.insert(name, ip);
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_compute_did_not_have_when_this_was_written_stays_one_word() {
        let hostile = managed_instance::InstanceStatus::from(
            "HIBERNATING\nphase: Ready\n\u{1b}[2J<script>alert(1)</script>",
        );
        assert_eq!(
            status(Some(&hostile)),
            InstanceStatus::Unknown("HIBERNATING".into())
        );
        let long = managed_instance::InstanceStatus::from("A".repeat(10_000).as_str());
        assert_eq!(status(Some(&long)).to_string().len(), 32);
        let nothing = managed_instance::InstanceStatus::from("\n\n");
        assert_eq!(status(Some(&nothing)).to_string(), "UNKNOWN");
        assert_eq!(status(None).to_string(), "UNKNOWN");
        let action = managed_instance::CurrentAction::from("SUSPENDING\r\nx: y");
        assert_eq!(
            super::action(Some(&action)),
            InstanceAction::Other("SUSPENDING".into())
        );
        assert_eq!(
            status(Some(&managed_instance::InstanceStatus::Running)).to_string(),
            "Running"
        );
    }
}
