//! An in-memory [`Cloud`]: what the deploy reconciler's tests run against.
//! A group's members follow its spec as soon as they are looked at (new
//! instances for each version, the rest removed), each with the health the
//! test gives its template, so a test says "version 2 never turns healthy"
//! and watches what the reconciler makes of it. Mutations are logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use ccd_cloud::identity::{IdentitySpec, account_email};
use ccd_cloud::model::{
    FirewallSpec, GroupId, GroupSpec, GroupState, HealthCheckSpec, InstanceAction, InstanceHealth,
    InstanceStatus, LbId, LbPiece, LbPieceKind, LbState, LbTraffic, LoadBalancerSpec,
    ManagedInstance, Share, TemplateInfo, TemplateSpec,
};
use ccd_cloud::{Cloud, CloudError};

/// How instances of a template behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Healthy,
    /// Being created, health not known yet.
    Starting,
    /// Answers, but fails its check.
    Unhealthy,
    /// Never answers.
    Unreachable,
}

#[derive(Debug, Default)]
pub struct State {
    pub templates: BTreeMap<String, TemplateSpec>,
    pub groups: BTreeMap<String, (GroupSpec, Vec<ManagedInstance>)>,
    pub health_checks: BTreeMap<String, HealthCheckSpec>,
    pub firewalls: BTreeMap<String, FirewallSpec>,
    pub lbs: BTreeMap<String, LoadBalancerSpec>,
    /// Per template; Healthy unless said otherwise.
    pub behaviour: HashMap<String, Behaviour>,
    /// What an external load balancer's certificate is.
    pub certificate: Option<ccd_cloud::model::CertificateState>,
    /// Health checks and firewall rules someone else made: ccd's adapter
    /// refuses to change them and leaves them when deleting.
    pub foreign: Vec<String>,
    /// Machine types the cloud refuses (a bad `machine.type`).
    pub refused_machine_types: Vec<String>,
    pub traffic: LbTraffic,
    /// Whether the cloud keeps an account per app (off unless a test says).
    pub app_accounts: bool,
    /// The apps' accounts, by app, with the secrets they hold grants on.
    pub identities: BTreeMap<String, IdentitySpec>,
    /// Every mutation, as `verb resource`.
    pub log: Vec<String>,
    pub reads: usize,
    next_instance: u32,
}

#[derive(Debug, Clone, Default)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
    read_only: bool,
    /// `europe-west1` when `None`.
    region: Option<&'static str>,
}

fn key(id: &GroupId) -> String {
    format!("{}@{}", id.name, id.zone.as_deref().unwrap_or("region"))
}

impl FakeCloud {
    /// An empty cloud whose controller deploys to `region`.
    pub fn in_region(region: &'static str) -> Self {
        FakeCloud {
            region: Some(region),
            ..FakeCloud::default()
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn behave(&self, template: &str, b: Behaviour) {
        self.state().behaviour.insert(template.to_owned(), b);
    }

    /// The members of the group named `name` (any place).
    pub fn members(&self, name: &str) -> Vec<ManagedInstance> {
        let mut s = self.state();
        let k = s
            .groups
            .keys()
            .find(|k| k.split('@').next() == Some(name))
            .cloned();
        match k {
            Some(k) => settle(&mut s, &k),
            None => Vec::new(),
        }
    }

    pub fn group_names(&self) -> Vec<String> {
        self.state()
            .groups
            .keys()
            .map(|k| k.split('@').next().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn lb(&self) -> Option<LoadBalancerSpec> {
        self.state().lbs.values().next().cloned()
    }

    /// (group name, weight) of the load balancer's backends.
    pub fn weights(&self) -> Vec<(String, u32)> {
        self.lb().map_or_else(Vec::new, |lb| {
            lb.backends
                .iter()
                .map(|b| (b.group.name.clone(), b.weight))
                .collect()
        })
    }

    pub fn mutations(&self) -> usize {
        self.state().log.len()
    }

    fn refuse_foreign(&self, name: &str, resource: &str) -> Result<(), CloudError> {
        if self.state().foreign.iter().any(|f| f == name) {
            return Err(CloudError::NotOwned {
                resource: resource.to_owned(),
                message: "exists but was not made by ccd".to_owned(),
            });
        }
        Ok(())
    }

    fn mutate(&self, verb: &str, resource: &str) -> Result<(), CloudError> {
        if self.read_only {
            return Err(CloudError::WouldChange {
                resource: resource.to_owned(),
                change: format!("would be {verb}"),
            });
        }
        self.state().log.push(format!("{verb} {resource}"));
        Ok(())
    }
}

/// Brings a group's members in line with its spec and the templates'
/// behaviour; returns them.
fn settle(s: &mut State, k: &str) -> Vec<ManagedInstance> {
    let Some((spec, members)) = s.groups.get(k).cloned() else {
        return Vec::new();
    };
    let size = spec.target_size.unwrap_or(1) as usize;
    let mut want: Vec<(String, String, usize)> = Vec::new();
    let mut fixed = 0;
    for v in spec.versions.iter().filter(|v| v.target.is_some()) {
        let n = match v.target {
            Some(Share::Fixed(n)) => n as usize,
            Some(Share::Percent(p)) => (size * p as usize).div_ceil(100),
            None => 0,
        }
        .min(size - fixed);
        fixed += n;
        want.push((v.name.clone(), v.template.clone(), n));
    }
    if let Some(open) = spec.versions.iter().find(|v| v.target.is_none()) {
        want.push((open.name.clone(), open.template.clone(), size - fixed));
    }
    let mut out = Vec::new();
    for (version, template, n) in want {
        let mut have: Vec<ManagedInstance> = members
            .iter()
            .filter(|m| m.template.as_deref() == Some(template.as_str()))
            .cloned()
            .collect();
        have.truncate(n);
        while have.len() < n {
            s.next_instance += 1;
            have.push(ManagedInstance {
                name: format!("{}-{}", spec.name, s.next_instance),
                id: Some(s.next_instance.to_string()),
                zone: None,
                template: Some(template.clone()),
                version: Some(version.clone()),
                action: InstanceAction::None,
                status: InstanceStatus::Running,
                health: InstanceHealth::Unknown,
                address: None,
            });
        }
        let b = s
            .behaviour
            .get(&template)
            .copied()
            .unwrap_or(Behaviour::Healthy);
        for m in &mut have {
            (m.action, m.health) = match b {
                Behaviour::Healthy => (InstanceAction::None, InstanceHealth::Healthy),
                Behaviour::Starting => (InstanceAction::Creating, InstanceHealth::Unknown),
                Behaviour::Unhealthy => (InstanceAction::None, InstanceHealth::Unhealthy),
                Behaviour::Unreachable => (InstanceAction::None, InstanceHealth::Unreachable),
            };
        }
        out.extend(have);
    }
    if let Some(g) = s.groups.get_mut(k) {
        g.1.clone_from(&out);
    }
    out
}

impl Cloud for FakeCloud {
    fn read_only(&self) -> Self {
        FakeCloud {
            state: self.state.clone(),
            read_only: true,
            region: self.region,
        }
    }

    fn region(&self) -> &str {
        self.region.unwrap_or("europe-west1")
    }

    async fn ensure_template(&self, spec: &TemplateSpec) -> Result<String, CloudError> {
        let name = spec.name();
        let resource = format!("global/instanceTemplates/{name}");
        if self.state().templates.contains_key(&name) {
            return Ok(name);
        }
        if self
            .state()
            .refused_machine_types
            .contains(&spec.machine_type)
        {
            return Err(CloudError::Invalid {
                resource,
                message: format!(
                    "Invalid value for field 'resource.properties.machineType': '{}'. Machine type with name '{}' does not exist in zone 'europe-west1-b'.",
                    spec.machine_type, spec.machine_type
                ),
            });
        }
        self.mutate("created", &resource)?;
        self.state().templates.insert(name.clone(), spec.clone());
        Ok(name)
    }

    async fn list_templates(&self, app: &str) -> Result<Vec<TemplateInfo>, CloudError> {
        Ok(self
            .state()
            .templates
            .values()
            .filter(|t| t.app == app)
            .map(|t| TemplateInfo {
                name: t.name(),
                revision: Some(t.revision.clone()),
                created: None,
            })
            .collect())
    }

    async fn delete_template(&self, _app: &str, name: &str) -> Result<(), CloudError> {
        let resource = format!("global/instanceTemplates/{name}");
        let used = self
            .state()
            .groups
            .values()
            .any(|(g, _)| g.versions.iter().any(|v| v.template == name));
        if used {
            return Err(CloudError::InUse {
                resource,
                message: "a group uses it".into(),
            });
        }
        if !self.state().templates.contains_key(name) {
            return Ok(());
        }
        self.mutate("deleted", &resource)?;
        self.state().templates.remove(name);
        Ok(())
    }

    async fn get_group(&self, id: &GroupId) -> Result<Option<GroupState>, CloudError> {
        let members = self.group_members(id).await?;
        let s = self.state();
        Ok(s.groups.get(&key(id)).map(|(spec, _)| GroupState {
            id: id.clone(),
            target_size: spec.target_size.unwrap_or(1),
            versions: spec.versions.clone(),
            is_stable: true,
            version_target_reached: true,
            named_ports: spec.named_port.iter().cloned().collect(),
            instances: members.unwrap_or_default(),
        }))
    }

    async fn group_members(
        &self,
        id: &GroupId,
    ) -> Result<Option<Vec<ManagedInstance>>, CloudError> {
        let mut s = self.state();
        s.reads += 1;
        let k = key(id);
        if !s.groups.contains_key(&k) {
            return Ok(None);
        }
        Ok(Some(settle(&mut s, &k)))
    }

    async fn apply_group(&self, spec: &GroupSpec) -> Result<bool, CloudError> {
        let k = key(&spec.id());
        let resource = format!("instanceGroupManagers/{k}");
        for v in &spec.versions {
            if !self.state().templates.contains_key(&v.template) {
                return Err(CloudError::NotFound {
                    resource: format!("global/instanceTemplates/{}", v.template),
                });
            }
        }
        let current = self.state().groups.get(&k).map(|(g, _)| g.clone());
        let mut spec = spec.clone();
        if let (Some((min, max)), Some(g)) = (spec.size_range, &current) {
            spec.target_size = g.target_size.map(|s| s.clamp(min, max.max(min)));
        }
        let spec = &spec;
        match current {
            Some(g) if g == *spec => Ok(false),
            Some(_) => {
                self.mutate("updated", &resource)?;
                if let Some(g) = self.state().groups.get_mut(&k) {
                    g.0 = spec.clone();
                }
                Ok(false)
            }
            None => {
                self.mutate("created", &resource)?;
                self.state().groups.insert(k, (spec.clone(), Vec::new()));
                Ok(true)
            }
        }
    }

    async fn resize_group(&self, id: &GroupId, size: u32) -> Result<(), CloudError> {
        self.mutate("resized", &key(id))?;
        if let Some(g) = self.state().groups.get_mut(&key(id)) {
            g.0.target_size = Some(size);
        }
        Ok(())
    }

    async fn recreate_instances(
        &self,
        id: &GroupId,
        instances: &[ManagedInstance],
    ) -> Result<(), CloudError> {
        self.mutate("recreated", &key(id))?;
        let mut s = self.state();
        let Some(g) = s.groups.get(&key(id)) else {
            return Ok(());
        };
        let mut members = g.1.clone();
        for m in members.iter_mut() {
            if instances.iter().any(|i| i.name == m.name) {
                s.next_instance += 1;
                m.id = Some(s.next_instance.to_string());
                m.health = InstanceHealth::Unknown;
            }
        }
        if let Some(g) = s.groups.get_mut(&key(id)) {
            g.1 = members;
        }
        Ok(())
    }

    async fn list_groups(&self) -> Result<Vec<GroupId>, CloudError> {
        let mut s = self.state();
        s.reads += 1;
        Ok(s.groups.values().map(|(spec, _)| spec.id()).collect())
    }

    async fn owned_apps(&self) -> Result<std::collections::BTreeSet<String>, CloudError> {
        let mut s = self.state();
        s.reads += 1;
        let groups = s.groups.values().map(|(spec, _)| spec.app.clone());
        let templates = s.templates.values().map(|t| t.app.clone());
        Ok(groups.chain(templates).collect())
    }

    async fn delete_group(&self, id: &GroupId) -> Result<(), CloudError> {
        let k = key(id);
        let resource = format!("instanceGroupManagers/{k}");
        let named = self
            .state()
            .lbs
            .values()
            .any(|lb| lb.backends.iter().any(|b| b.group == *id));
        if named {
            return Err(CloudError::InUse {
                resource,
                message: "a backend service names it".into(),
            });
        }
        if !self.state().groups.contains_key(&k) {
            return Ok(());
        }
        self.mutate("deleted", &resource)?;
        self.state().groups.remove(&k);
        Ok(())
    }

    async fn apply_health_check(&self, spec: &HealthCheckSpec) -> Result<(), CloudError> {
        self.refuse_foreign(&spec.name, &format!("healthChecks/{}", spec.name))?;
        if self.state().health_checks.get(&spec.name) == Some(spec) {
            return Ok(());
        }
        self.mutate("applied", &format!("healthChecks/{}", spec.name))?;
        self.state()
            .health_checks
            .insert(spec.name.clone(), spec.clone());
        Ok(())
    }

    async fn delete_health_check(&self, _app: &str, name: &str) -> Result<(), CloudError> {
        if !self.state().health_checks.contains_key(name) {
            return Ok(());
        }
        self.mutate("deleted", &format!("healthChecks/{name}"))?;
        self.state().health_checks.remove(name);
        Ok(())
    }

    async fn apply_load_balancer(&self, spec: &LoadBalancerSpec) -> Result<LbState, CloudError> {
        if spec.backends.is_empty() || spec.backends.iter().all(|b| b.weight == 0) {
            return Err(CloudError::Invalid {
                resource: format!("load balancer {}", spec.name),
                message: "no backend with a weight above 0".into(),
            });
        }
        for b in &spec.backends {
            if !self.state().groups.contains_key(&key(&b.group)) {
                return Err(CloudError::NotFound {
                    resource: format!("instanceGroupManagers/{}", key(&b.group)),
                });
            }
        }
        if self.state().lbs.get(&spec.name) != Some(spec) {
            self.mutate("applied", &format!("loadBalancer/{}", spec.name))?;
            self.state().lbs.insert(spec.name.clone(), spec.clone());
        }
        self.get_load_balancer(&spec.id()).await
    }

    async fn get_load_balancer(&self, id: &LbId) -> Result<LbState, CloudError> {
        let exists = self.state().lbs.contains_key(&id.name);
        let certificate = if id.internal || !exists {
            None
        } else {
            self.state().certificate.clone()
        };
        Ok(LbState {
            certificate,
            address: exists.then(|| std::net::IpAddr::from([10, 0, 0, 9])),
            pieces: vec![LbPiece {
                kind: LbPieceKind::ForwardingRule,
                name: format!("{}-fr", id.name),
                exists,
            }],
        })
    }

    async fn load_balancers(&self, app: &str, name: &str) -> Result<Vec<LbId>, CloudError> {
        let s = self.state();
        Ok(s.lbs
            .get(name)
            .map(LoadBalancerSpec::id)
            .filter(|id| id.app == app)
            .into_iter()
            .collect())
    }

    async fn delete_load_balancer(&self, id: &LbId) -> Result<(), CloudError> {
        let present = self
            .state()
            .lbs
            .get(&id.name)
            .is_some_and(|lb| lb.id() == *id);
        if !present {
            return Ok(());
        }
        self.mutate("deleted", &format!("loadBalancer/{}", id.name))?;
        self.state().lbs.remove(&id.name);
        Ok(())
    }

    async fn lb_traffic(&self, _id: &LbId, _since: SystemTime) -> Result<LbTraffic, CloudError> {
        let mut t = self.state().traffic.clone();
        // Unless a test says otherwise, the counts are complete (as the
        // local cloud's are): nothing waits for them.
        t.complete_until = t.complete_until.or(Some(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1 << 40),
        ));
        Ok(t)
    }

    async fn list_firewalls(&self, app: &str) -> Result<Vec<FirewallSpec>, CloudError> {
        Ok(self
            .state()
            .firewalls
            .values()
            .filter(|f| f.app == app)
            .cloned()
            .collect())
    }

    async fn apply_firewall(&self, spec: &FirewallSpec) -> Result<(), CloudError> {
        self.refuse_foreign(&spec.name, &format!("global/firewalls/{}", spec.name))?;
        if self.state().firewalls.get(&spec.name) == Some(spec) {
            return Ok(());
        }
        self.mutate("applied", &format!("global/firewalls/{}", spec.name))?;
        self.state()
            .firewalls
            .insert(spec.name.clone(), spec.clone());
        Ok(())
    }

    async fn delete_firewall(&self, _app: &str, name: &str) -> Result<(), CloudError> {
        if !self.state().firewalls.contains_key(name) {
            return Ok(());
        }
        self.mutate("deleted", &format!("global/firewalls/{name}"))?;
        self.state().firewalls.remove(name);
        Ok(())
    }

    fn app_account(&self, app: &str) -> Option<String> {
        self.state()
            .app_accounts
            .then(|| account_email(app, "fake"))
    }

    async fn apply_identity(&self, spec: &IdentitySpec) -> Result<String, CloudError> {
        let email = account_email(&spec.app, "fake");
        let resource = format!("projects/fake/serviceAccounts/{email}");
        self.refuse_foreign(&email, &resource)?;
        let known = self.state().identities.get(&spec.app).cloned();
        let held = known
            .as_ref()
            .map(|k| k.secrets.clone())
            .unwrap_or_default();
        let secrets = held
            .union(&spec.secrets)
            .filter(|s| spec.secrets.contains(*s) || !spec.revoke.contains(*s))
            .cloned()
            .collect();
        let wanted = IdentitySpec {
            secrets,
            revoke: Default::default(),
            ..spec.clone()
        };
        if known.as_ref() == Some(&wanted) {
            return Ok(email);
        }
        self.mutate(
            if known.is_some() {
                "granted"
            } else {
                "created"
            },
            &resource,
        )?;
        self.state().identities.insert(spec.app.clone(), wanted);
        Ok(email)
    }

    async fn delete_identity(&self, app: &str) -> Result<(), CloudError> {
        if !self.state().identities.contains_key(app) {
            return Ok(());
        }
        let email = account_email(app, "fake");
        self.mutate("deleted", &format!("projects/fake/serviceAccounts/{email}"))?;
        self.state().identities.remove(app);
        Ok(())
    }
}
