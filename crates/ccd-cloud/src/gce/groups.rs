//! Managed instance groups: zonal when the spec names one zone, regional
//! otherwise. Versions, update policy and autohealing are patched with the
//! group's fingerprint; the named port lives on the group's instance group.

use google_cloud_compute_v1::model::{
    DistributionPolicy, DistributionPolicyZoneConfiguration, FixedOrPercent, InstanceGroup,
    InstanceGroupManager, InstanceGroupManagerAutoHealingPolicy, InstanceGroupManagerUpdatePolicy,
    InstanceGroupManagerVersion, InstanceGroupManagersRecreateInstancesRequest,
    InstanceGroupsSetNamedPortsRequest, NamedPort as GceNamedPort,
    RegionInstanceGroupManagersRecreateRequest, RegionInstanceGroupsSetNamedPortsRequest,
    instance_group_manager_update_policy as up,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::call::{Failure, Kind, Outcome, request_id, with_fresh_fingerprint};
use super::marker::{self, name_of};
use super::{GceCloud, rollout_policy};
use crate::model::{GroupId, GroupSpec, GroupVersion, ManagedInstance, NamedPort, Share};

/// Runs `$body` with `$b` bound to the zonal or the regional builder of
/// `$method`, scoped to the group: the two APIs differ only in zone/region.
macro_rules! igm {
    ($self:ident, $id:expr, $method:ident, |$b:ident| $body:expr) => {
        match &$id.zone {
            Some(zone) => {
                let $b = $self
                    .c
                    .igm
                    .$method()
                    .set_project($self.project())
                    .set_zone(zone)
                    .set_instance_group_manager(&$id.name);
                $body
            }
            None => {
                let $b = $self
                    .c
                    .rigm
                    .$method()
                    .set_project($self.project())
                    .set_region($self.region())
                    .set_instance_group_manager(&$id.name);
                $body
            }
        }
    };
}
pub(crate) use igm;

pub(crate) fn share(s: Share) -> FixedOrPercent {
    match s {
        Share::Fixed(n) => FixedOrPercent::new().set_fixed(i32::try_from(n).unwrap_or(i32::MAX)),
        Share::Percent(p) => FixedOrPercent::new().set_percent(i32::try_from(p).unwrap_or(100)),
    }
}

pub(crate) fn share_of(f: &FixedOrPercent) -> Option<Share> {
    match (f.fixed, f.percent) {
        (Some(n), _) => Some(Share::Fixed(u32::try_from(n).unwrap_or(0))),
        (None, Some(p)) => Some(Share::Percent(u32::try_from(p).unwrap_or(0))),
        (None, None) => None,
    }
}

/// The versions a group runs, in ccd's terms.
pub(crate) fn versions_of(g: &InstanceGroupManager) -> Vec<GroupVersion> {
    g.versions
        .iter()
        .map(|v| GroupVersion {
            name: v.name.clone().unwrap_or_default(),
            template: v
                .instance_template
                .as_deref()
                .map(name_of)
                .unwrap_or_default()
                .to_owned(),
            target: v.target_size.as_ref().and_then(share_of),
        })
        .collect()
}

impl GceCloud {
    /// A full link: accepted by Compute wherever a reference is asked for.
    pub(crate) fn link(&self, path: &str) -> String {
        let base = self
            .config
            .endpoint
            .as_deref()
            .unwrap_or("https://www.googleapis.com");
        format!(
            "{}/compute/v1/projects/{}/{path}",
            base.trim_end_matches('/'),
            self.project()
        )
    }

    pub(crate) fn group_resource(&self, id: &GroupId) -> String {
        match &id.zone {
            Some(zone) => format!("zones/{zone}/instanceGroupManagers/{}", id.name),
            None => format!(
                "regions/{}/instanceGroupManagers/{}",
                self.region(),
                id.name
            ),
        }
    }

    /// How many zones the region has: a regional group over all of them
    /// spreads over that many. Asked once; regions do not change.
    async fn region_zone_count(&self) -> Outcome<u32> {
        let zones = self.region_zone_names().await?;
        Ok(u32::try_from(zones.len()).unwrap_or(u32::MAX))
    }

    pub(crate) async fn find_group(&self, id: &GroupId) -> Outcome<Option<InstanceGroupManager>> {
        let resource = self.group_resource(id);
        igm!(self, id, get, |b| self.find(&resource, b.send()).await)
    }

    /// What the spec asks of the fields ccd owns (not the target size).
    fn desired(&self, spec: &GroupSpec) -> InstanceGroupManager {
        let versions = spec.versions.iter().map(|v| {
            let mut out = InstanceGroupManagerVersion::new()
                .set_name(&v.name)
                .set_instance_template(
                    self.link(&format!("global/instanceTemplates/{}", v.template)),
                );
            if let Some(t) = v.target {
                out = out.set_target_size(share(t));
            }
            out
        });
        let policy = InstanceGroupManagerUpdatePolicy::new()
            .set_type(up::Type::Proactive)
            .set_minimal_action(up::MinimalAction::Replace)
            .set_replacement_method(up::ReplacementMethod::Substitute)
            .set_max_surge(share(spec.update.max_surge))
            .set_max_unavailable(share(spec.update.max_unavailable));
        let healing = spec.autohealing.iter().map(|a| {
            InstanceGroupManagerAutoHealingPolicy::new()
                .set_health_check(self.link(&format!("global/healthChecks/{}", a.health_check)))
                .set_initial_delay_sec(i32::try_from(a.initial_delay.as_secs()).unwrap_or(3600))
        });
        InstanceGroupManager::new()
            .set_versions(versions)
            .set_update_policy(policy)
            .set_auto_healing_policies(healing)
    }

    /// Whether the group already is as the spec asks.
    fn matches(spec: &GroupSpec, g: &InstanceGroupManager) -> bool {
        let policy = g.update_policy.clone().unwrap_or_default();
        let surge = policy.max_surge.as_ref().and_then(share_of);
        let unavailable = policy.max_unavailable.as_ref().and_then(share_of);
        let healing: Vec<(String, i32)> = g
            .auto_healing_policies
            .iter()
            .map(|p| {
                (
                    p.health_check
                        .as_deref()
                        .map(name_of)
                        .unwrap_or_default()
                        .to_owned(),
                    p.initial_delay_sec.unwrap_or(0),
                )
            })
            .collect();
        let want_healing: Vec<(String, i32)> = spec
            .autohealing
            .iter()
            .map(|a| {
                (
                    a.health_check.clone(),
                    i32::try_from(a.initial_delay.as_secs()).unwrap_or(3600),
                )
            })
            .collect();
        versions_of(g) == spec.versions
            && policy.r#type == Some(up::Type::Proactive)
            && surge == Some(spec.update.max_surge)
            && unavailable == Some(spec.update.max_unavailable)
            && healing == want_healing
    }

    #[tracing::instrument(skip_all, fields(app = %spec.app, group = %spec.name))]
    pub(crate) async fn apply_group_impl(&self, spec: &GroupSpec) -> Outcome<bool> {
        let id = spec.id();
        let resource = self.group_resource(&id);
        let open = spec.versions.iter().filter(|v| v.target.is_none()).count();
        if open != 1 {
            let message = "exactly one version must leave its target unset";
            return Err(Failure::new(Kind::Invalid, &resource, message));
        }
        let zones = match &id.zone {
            Some(_) => None,
            None if !spec.zones.is_empty() => u32::try_from(spec.zones.len()).ok(),
            None => Some(self.region_zone_count().await?),
        };
        // Read first when this adapter saw the group, or when it could not
        // create one anyway (no size given); otherwise insert first.
        let read_first =
            self.read_only || spec.target_size.is_none() || self.seen.exists(&resource);
        let existing = match read_first {
            true => self.find_group(&id).await?,
            false => None,
        };
        let existing = match existing {
            Some(g) => g,
            None => {
                let (new, _) = Self::effective(spec, None, zones);
                if self.insert_group(&new, &id, &resource).await? {
                    if let Some(port) = &new.named_port {
                        // A group just made has no named port and no other writer.
                        self.set_named_port(&id, port, None).await?;
                    }
                    return Ok(true);
                }
                self.find_group(&id).await?.ok_or_else(|| {
                    Failure::new(
                        Kind::Stale,
                        &resource,
                        "exists, then vanished before it could be read",
                    )
                })?
            }
        };
        marker::check_owned(&resource, &spec.app, &existing)?;
        let (spec, wanted) = Self::effective(spec, Some(&existing), zones);
        let spec = &spec;
        // The first attempt patches against the read above; a stale fingerprint reads again.
        let mut first = Some(existing.clone());
        let (id, resource) = (&id, resource.as_str());
        with_fresh_fingerprint(|| {
            let read = first.take();
            async move {
                let current = match read {
                    Some(g) => g,
                    None => self.find_group(id).await?.ok_or_else(|| {
                        Failure::new(
                            Kind::NotFound,
                            resource,
                            "the group vanished while being updated",
                        )
                    })?,
                };
                self.patch_group(spec, id, resource, current).await
            }
        })
        .await?;
        // A patch leaves the size alone: the read above still tells it.
        if let Some(size) = wanted
            && existing.target_size != i32::try_from(size).ok()
        {
            self.resize_group_impl(id, size).await?;
        }
        if let Some(port) = &spec.named_port {
            // The manager shows its instance group's named ports: read that
            // group (for its fingerprint) only when they differ.
            let shown = existing.named_ports.len() == 1
                && existing.named_ports[0].name.as_deref() == Some(port.name.as_str())
                && existing.named_ports[0].port == Some(i32::from(port.port));
            if !shown {
                with_fresh_fingerprint(|| self.set_named_port_checked(id, port)).await?;
            }
        }
        Ok(false)
    }

    /// The spec as applied to a group of the current size (`existing`'s, or
    /// none yet): the update policy Compute accepts for that size, and the
    /// size to set, if any (a scaler's size stands, within the spec's bounds).
    fn effective(
        spec: &GroupSpec,
        existing: Option<&InstanceGroupManager>,
        zones: Option<u32>,
    ) -> (GroupSpec, Option<u32>) {
        let current = existing
            .and_then(|g| g.target_size)
            .and_then(|s| u32::try_from(s).ok());
        let wanted = match (spec.size_range, current) {
            (Some((min, max)), Some(current)) => Some(current.clamp(min, max.max(min))),
            _ => spec.target_size,
        };
        let size = wanted.or(current).unwrap_or(1);
        let spec = GroupSpec {
            update: rollout_policy::effective(spec.update, size, zones),
            ..spec.clone()
        };
        (spec, wanted)
    }

    /// Creates the group; `false` when it turned out to exist already.
    async fn insert_group(&self, spec: &GroupSpec, id: &GroupId, resource: &str) -> Outcome<bool> {
        let size = spec.target_size.ok_or_else(|| {
            Failure::new(
                Kind::Invalid,
                resource,
                "a target size is needed to create a group",
            )
        })?;
        self.refuse_if_read_only(resource, "is missing and would be created")?;
        let body = self
            .desired(spec)
            .set_name(&spec.name)
            .set_base_instance_name(&spec.name)
            .set_description(marker::description(&spec.app, &[]))
            .set_target_size(i32::try_from(size).unwrap_or(i32::MAX));
        let result = match &id.zone {
            Some(zone) => {
                let insert = self
                    .c
                    .igm
                    .insert()
                    .set_project(self.project())
                    .set_zone(zone)
                    .set_body(body);
                self.mutate(resource, idempotent!(insert)).await
            }
            None => {
                let zones = spec.zones.iter().map(|z| {
                    DistributionPolicyZoneConfiguration::new().set_zone(format!("zones/{z}"))
                });
                let body = body.set_distribution_policy(DistributionPolicy::new().set_zones(zones));
                let insert = self
                    .c
                    .rigm
                    .insert()
                    .set_project(self.project())
                    .set_region(self.region())
                    .set_body(body);
                self.mutate(resource, idempotent!(insert)).await
            }
        };
        match result {
            Ok(_) => {
                tracing::info!(resource, size, "group created");
                self.seen.saw(resource, true);
                Ok(true)
            }
            Err(f) if f.kind == Kind::AlreadyExists => Ok(false),
            Err(f) => Err(f),
        }
    }

    async fn patch_group(
        &self,
        spec: &GroupSpec,
        id: &GroupId,
        resource: &str,
        current: InstanceGroupManager,
    ) -> Outcome<()> {
        if Self::matches(spec, &current) {
            return Ok(());
        }
        let body = self
            .desired(spec)
            .set_or_clear_fingerprint(current.fingerprint);
        igm!(self, id, patch, |b| {
            let patch = b
                .set_body(body)
                .set_request_id(request_id())
                .with_idempotency(true)
                .poller();
            self.mutate(resource, patch).await
        })?;
        tracing::info!(resource, versions = ?spec.versions, "group updated");
        Ok(())
    }

    fn instance_group_resource(&self, id: &GroupId) -> String {
        match &id.zone {
            Some(zone) => format!("zones/{zone}/instanceGroups/{}", id.name),
            None => format!("regions/{}/instanceGroups/{}", self.region(), id.name),
        }
    }

    /// Reads the group's instance group and sets the named port unless it
    /// is set, against the fingerprint read.
    async fn set_named_port_checked(&self, id: &GroupId, port: &NamedPort) -> Outcome<()> {
        let resource = self.instance_group_resource(id);
        let (p, r) = (self.project(), self.region());
        let group = match &id.zone {
            Some(zone) => {
                let get = self.c.groups.get().set_project(p).set_zone(zone);
                self.read(&resource, get.set_instance_group(&id.name).send())
                    .await?
            }
            None => {
                let get = self.c.rgroups.get().set_project(p).set_region(r);
                self.read(&resource, get.set_instance_group(&id.name).send())
                    .await?
            }
        };
        let current = &group.named_ports;
        let is_set = current.len() == 1
            && current[0].name.as_deref() == Some(&port.name)
            && current[0].port == Some(i32::from(port.port));
        if is_set {
            return Ok(());
        }
        self.set_named_port(id, port, Some(&group)).await
    }

    /// Sets the group's one named port; with the instance group as `read`,
    /// only over the named ports it was read with (its fingerprint).
    async fn set_named_port(
        &self,
        id: &GroupId,
        port: &NamedPort,
        read: Option<&InstanceGroup>,
    ) -> Outcome<()> {
        let fingerprint = read.and_then(|g| g.fingerprint.clone());
        let resource = self.instance_group_resource(id);
        let ports = [GceNamedPort::new()
            .set_name(&port.name)
            .set_port(i32::from(port.port))];
        let (p, r) = (self.project(), self.region());
        match &id.zone {
            Some(zone) => {
                let body = InstanceGroupsSetNamedPortsRequest::new()
                    .set_named_ports(ports)
                    .set_or_clear_fingerprint(fingerprint.clone());
                let call = self
                    .c
                    .groups
                    .set_named_ports()
                    .set_project(p)
                    .set_zone(zone);
                let call = call.set_instance_group(&id.name).set_body(body);
                self.mutate(&resource, idempotent!(call)).await?;
            }
            None => {
                let body = RegionInstanceGroupsSetNamedPortsRequest::new()
                    .set_named_ports(ports)
                    .set_or_clear_fingerprint(fingerprint);
                let call = self
                    .c
                    .rgroups
                    .set_named_ports()
                    .set_project(p)
                    .set_region(r);
                let call = call.set_instance_group(&id.name).set_body(body);
                self.mutate(&resource, idempotent!(call)).await?;
            }
        }
        tracing::info!(resource, port = port.port, "named port set");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(app = %id.app, group = %id.name, size))]
    pub(crate) async fn resize_group_impl(&self, id: &GroupId, size: u32) -> Outcome<()> {
        let resource = self.group_resource(id);
        self.refuse_if_read_only(&resource, &format!("would be resized to {size}"))?;
        igm!(self, id, resize, |b| {
            let resize = b
                .set_size(i32::try_from(size).unwrap_or(i32::MAX))
                .set_request_id(request_id())
                .with_idempotency(true)
                .poller();
            self.mutate(&resource, resize).await
        })?;
        tracing::info!(resource, size, "group resized");
        Ok(())
    }

    /// Compute's `recreateInstances`: each instance is deleted and created
    /// again from the group's template, under the same name.
    #[tracing::instrument(skip_all, fields(app = %id.app, group = %id.name))]
    pub(crate) async fn recreate_instances_impl(
        &self,
        id: &GroupId,
        instances: &[ManagedInstance],
    ) -> Outcome<()> {
        let resource = self.group_resource(id);
        let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
        self.refuse_if_read_only(&resource, &format!("would recreate {}", names.join(", ")))?;
        // Partial URLs name the instance's own zone (a regional group spans several).
        let urls: Vec<String> = instances
            .iter()
            .filter_map(|i| {
                let zone = i.zone.as_deref().or(id.zone.as_deref())?;
                Some(format!("zones/{zone}/instances/{}", i.name))
            })
            .collect();
        if urls.is_empty() {
            return Ok(());
        }
        match &id.zone {
            Some(zone) => {
                let b = self
                    .c
                    .igm
                    .recreate_instances()
                    .set_project(self.project())
                    .set_zone(zone)
                    .set_instance_group_manager(&id.name)
                    .set_body(
                        InstanceGroupManagersRecreateInstancesRequest::new().set_instances(urls),
                    )
                    .set_request_id(request_id())
                    .with_idempotency(true)
                    .poller();
                self.mutate(&resource, b).await?;
            }
            None => {
                let b = self
                    .c
                    .rigm
                    .recreate_instances()
                    .set_project(self.project())
                    .set_region(self.region())
                    .set_instance_group_manager(&id.name)
                    .set_body(RegionInstanceGroupManagersRecreateRequest::new().set_instances(urls))
                    .set_request_id(request_id())
                    .with_idempotency(true)
                    .poller();
                self.mutate(&resource, b).await?;
            }
        }
        tracing::info!(resource, instances = ?names, "instances recreated");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(app = %id.app, group = %id.name))]
    pub(crate) async fn delete_group_impl(&self, id: &GroupId) -> Outcome<()> {
        let resource = self.group_resource(id);
        match self.find_group(id).await? {
            None => return Ok(()),
            Some(g) => {
                if let Err(f) = marker::check_owned(&resource, &id.app, &g) {
                    tracing::warn!(resource, reason = %f.message, "not deleted");
                    return Ok(());
                }
            }
        }
        igm!(self, id, delete, |b| {
            self.remove(&resource, idempotent!(b)).await
        })
    }
}
