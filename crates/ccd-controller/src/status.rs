//! The status object written beside each spec (`status/<app>.yaml`): what
//! the controller saw and did, in words a user acts on, and what it needs
//! back after a restart (the groups it runs, the last good revision, the
//! rollout record). Defined once here, with serde, for the controller that
//! writes it and the command line that reads it.
//!
//! An app at rest writes nothing that changes by itself (times appear only
//! in rollout records), so its status is rewritten only when something
//! happened.

use serde::{Deserialize, Serialize};

use crate::record::{Rollout, RolloutSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Phase {
    /// The new revision is being rolled out.
    #[default]
    Progressing,
    /// Every instance runs the spec's revision and is healthy.
    Ready,
    /// Serving, but not as the spec asks: instances unhealthy, a rollout
    /// past its deadline or rolled back, or the cloud drifted.
    Degraded,
    /// The spec cannot be deployed; the last good revision keeps serving.
    Stalled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Stalled => "Stalled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "true_false")]
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// `"True"`/`"False"`, as Kubernetes conditions write it.
mod true_false {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if *v { "True" } else { "False" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(String::deserialize(d)? == "True")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub name: String,
    pub version: String,
    pub status: String,
    pub health: String,
    /// The group it belongs to, when the app has more than one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
}

/// A revision that was Ready: its version, template and spec file hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastGood {
    pub version: String,
    pub template: String,
    pub spec: String,
}

/// What a group is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupRole {
    /// Runs the last good revision (or, before there is one, the first).
    Stable,
    /// Brought up by the rollout under way for its target revision.
    Next,
    /// No longer wanted: deleted once the load balancer lets go of it.
    Retired,
}

/// One of the app's instance groups: zonal (`zone`) or regional (`region`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub role: GroupRole,
}

impl GroupRecord {
    pub fn id(&self, app: &str) -> ccd_cloud::model::GroupId {
        ccd_cloud::model::GroupId {
            app: app.to_owned(),
            name: self.name.clone(),
            zone: self.zone.clone(),
        }
    }

    /// The same group (name and place), whatever its role.
    pub fn same(&self, other: &GroupRecord) -> bool {
        self.name == other.name && self.zone == other.zone
    }
}

/// The service account ccd keeps for an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    pub email: String,
    /// Secrets the account may hold `secretAccessor` on: those of the
    /// revisions it ran, until no instance runs them.
    #[serde(default)]
    pub secrets: std::collections::BTreeSet<String>,
}

/// The external load balancer's Google-managed certificate, as Compute
/// reports it: HTTPS works once it is ACTIVE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    pub name: String,
    pub status: String,
    /// Each domain's status, e.g. `FAILED_NOT_VISIBLE` until its DNS
    /// record names the load balancer's address.
    #[serde(default)]
    pub domains: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub app: String,
    /// The spec file's content hash this status answers.
    #[serde(default)]
    pub observed_spec: String,
    /// The commit and repository file the spec came from, when `ccd sync`
    /// put it in the store (absent for a spec written there otherwise, or
    /// edited there since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::source::Origin>,
    #[serde(default)]
    pub phase: Phase,
    /// The revision the spec asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<crate::record::Revision>,
    /// The last revision that was Ready: what a failed rollout goes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good: Option<LastGood>,
    /// The spec's revision was rolled back to `lastGood`; it stays there
    /// until the spec changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolled_back: bool,
    /// Versions the instances run now.
    #[serde(default)]
    pub serving: Vec<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The rollout under way, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Earlier rollouts, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RolloutSummary>,
    #[serde(default)]
    pub instances: Vec<InstanceView>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// The HTTPS certificate of an externally exposed app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateStatus>,
    /// The account ccd keeps for the app, and every secret it may hold a
    /// grant on (so that a secret dropped from the spec is taken away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<AccountStatus>,
    /// The app's services (`spec.services`): state, where and as whom;
    /// never a secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ccd_services::ServiceStatus>,
    /// The spec's `deletionProtection`, kept here because removing the spec
    /// must not remove the protection with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletion_protection: bool,
    /// The app's groups; read back when the spec can no longer say where
    /// they are (it was deleted, broken or moved them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupRecord>,
    /// The region of the controller that writes it: a controller for
    /// another region on the same store leaves the app alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub controller_region: String,
    /// The leader epoch of the controller that wrote it (0, left out: a
    /// controller alone by configuration); a deposed leader of the same
    /// region does not overwrite a status with a later one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leader_epoch: u64,
    /// Where the one group was, in statuses written before `groups`.
    #[serde(default, skip_serializing)]
    zone: Option<String>,
    #[serde(default, skip_serializing)]
    region: Option<String>,
}

const HEADER: &str = "Written by ccd; edits are overwritten.";

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The region and leader epoch a stored status was written under (see
/// [`Status::leader_epoch`]); `None` for bytes that are not a status.
pub fn epoch_of(bytes: &[u8]) -> Option<(String, u64)> {
    Status::parse(bytes).map(|s| (s.controller_region, s.leader_epoch))
}

impl Status {
    pub fn to_yaml(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        ccd_spec::document::to_yaml(&format!("{HEADER} Spec: specs/{}.yaml", self.app), &value)
    }

    /// Reads a status object back; `None` when it is not one (a person
    /// broke it, or it is from a future ccd): it is then treated as absent.
    pub fn parse(bytes: &[u8]) -> Option<Status> {
        Self::read(bytes).ok()
    }

    /// As [`Status::parse`], with why it is not a status (`LINE:COL: ...` or the
    /// field that does not fit), for commands that show it to a person.
    pub fn read(bytes: &[u8]) -> Result<Status, String> {
        let value = ccd_spec::document::from_yaml(bytes).map_err(|e| e.to_string())?;
        let mut status: Status = serde_json::from_value(value).map_err(|e| e.to_string())?;
        // The name goes into the header comment and every message: only a
        // name the store accepts (a NUL, found by fuzzing, broke the YAML).
        ccd_store::check_app_name(&status.app).map_err(|e| format!("app: {e}"))?;
        if status.groups.is_empty() && (status.zone.is_some() || status.region.is_some()) {
            // Written before `groups`: one group, named after the app.
            status.groups.push(GroupRecord {
                name: status.app.clone(),
                zone: status.zone.take().filter(|z| is_name(z)),
                region: status.region.take().filter(|r| is_name(r)),
                role: GroupRole::Stable,
            });
        }
        status.groups.retain(|g| is_name(&g.name));
        status.drop_foreign_templates();
        Ok(status)
    }

    /// Forgets every revision whose template is not one of this app's: a
    /// status edited by hand (or copied from another app) must not make the
    /// controller roll this app onto someone else's template.
    fn drop_foreign_templates(&mut self) {
        let app = self.app.clone();
        let own = |template: &str| ccd_cloud::model::is_template_of(&app, template);
        if self.last_good.as_ref().is_some_and(|g| !own(&g.template)) {
            tracing::warn!(
                app,
                "status names another app's template as lastGood; ignored"
            );
            self.last_good = None;
            self.rolled_back = false;
        }
        if self.revision.as_ref().is_some_and(|r| !own(&r.template)) {
            self.revision = None;
        }
        let foreign_rollout = self.rollout.as_ref().is_some_and(|r| {
            !own(&r.to.template) || r.from.as_ref().is_some_and(|f| !own(&f.template))
        });
        if foreign_rollout {
            tracing::warn!(
                app,
                "status records a rollout between another app's templates; ignored"
            );
            self.rollout = None;
        }
    }

    /// The group serving the last good revision (or the first one).
    pub fn stable(&self) -> Option<&GroupRecord> {
        self.groups.iter().find(|g| g.role == GroupRole::Stable)
    }

    pub fn next(&self) -> Option<&GroupRecord> {
        self.groups.iter().find(|g| g.role == GroupRole::Next)
    }

    /// Whether the rollout of the spec's revision ended rolled back.
    pub fn target_rolled_back(&self) -> bool {
        self.rollout.as_ref().is_some_and(|r| {
            r.state.rolled_back()
                && r.from.is_some()
                && self
                    .revision
                    .as_ref()
                    .is_some_and(|t| t.template == r.to.template)
        })
    }

    /// Whether `other` differs from this status at most in the rollout
    /// probe's counts.
    pub fn same_but_probe_counts(&self, other: &Status) -> bool {
        let without = |s: &Status| {
            let mut s = s.clone();
            if let Some(r) = &mut s.rollout {
                r.probes = Default::default();
                for step in &mut r.steps {
                    (step.probes, step.failed_probes) = (0, 0);
                }
            }
            s
        };
        without(self) == without(other)
    }
}

/// Group names and places come back from a file anyone can edit: only
/// cloud resource names are taken.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_status_whose_app_is_not_an_app_name_is_not_a_status() {
        // Found by `make fuzz` (status target): a NUL in the name made a
        // status that could not be read back.
        let text = "app: \"lo0\\0f\"\nobservedSpec: \"\"\nphase: Progressing\n";
        let err = Status::read(text.as_bytes()).unwrap_err();
        assert!(err.starts_with("app: "), "{err}");
        assert!(Status::parse(b"app: web\nobservedSpec: x\n").is_some());
    }

    fn good() -> LastGood {
        LastGood {
            version: "1.2.0".into(),
            template: "hello-1a2b".into(),
            spec: "sha256:ab".into(),
        }
    }

    #[test]
    fn renders_stable_yaml_and_reads_it_back() {
        let s = Status {
            app: "hello".into(),
            observed_spec: "sha256:ab".into(),
            phase: Phase::Stalled,
            last_good: Some(good()),
            serving: vec!["1.2.0".into()],
            conditions: vec![Condition {
                kind: "Stalled".into(),
                status: true,
                reason: "InvalidSpec".into(),
                message: "specs/hello.yaml:7:9: spec.port: \"x\"".into(),
            }],
            groups: vec![GroupRecord {
                name: "hello".into(),
                zone: Some("europe-west1-b".into()),
                region: None,
                role: GroupRole::Stable,
            }],
            ..Status::default()
        };
        let y = s.to_yaml();
        assert_eq!(y, s.clone().to_yaml(), "no churn");
        assert!(y.contains("phase: Stalled\n"), "{y}");
        assert!(y.contains("status: \"True\"\n"), "{y}");
        assert!(
            y.contains(r#"message: "specs/hello.yaml:7:9: spec.port: \"x\"""#),
            "{y}"
        );
        assert!(y.contains("instances: []\n"), "{y}");
        assert_eq!(Status::parse(y.as_bytes()), Some(s));
        assert_eq!(Status::parse(b"\xff not yaml"), None);
        assert_eq!(Status::parse(b"app: [1]"), None);
    }

    #[test]
    fn another_apps_template_read_back_from_status_is_ignored() {
        let mut s = Status {
            app: "hello".into(),
            last_good: Some(good()),
            rolled_back: true,
            ..Default::default()
        };
        let yaml = s.to_yaml();
        assert_eq!(
            Status::parse(yaml.as_bytes()).unwrap().last_good,
            Some(good())
        );

        for foreign in [
            "payments-1a2b",
            "hello-extra-1a2b",
            "hello-",
            "hello-XYZ",
            "hello",
        ] {
            s.last_good.as_mut().unwrap().template = foreign.into();
            let read = Status::parse(s.to_yaml().as_bytes()).unwrap();
            assert_eq!(read.last_good, None, "{foreign} is not hello's template");
            assert!(!read.rolled_back);
        }
    }

    #[test]
    fn reads_a_status_written_before_groups_and_rollout_records() {
        let old = "# Written by ccd for specs/hello.yaml; edits are overwritten.
app: \"hello\"
observedSpec: \"sha256:cd\"
phase: Degraded
revision:
  version: \"2.0.0\"
  template: \"hello-9f9f\"
lastGood:
  version: \"1.2.0\"
  template: \"hello-1a2b\"
  spec: \"sha256:ab\"
rolledBack: true
serving:
  - \"1.2.0\"
conditions:
  - type: Degraded
    status: \"True\"
    reason: RolledBack
    message: \"version 2.0.0 ...\"
instances: []
endpoints: []
region: \"europe-west1\"
";
        let s = Status::parse(old.as_bytes()).unwrap();
        assert_eq!(s.last_good, Some(good()));
        assert!(s.rolled_back);
        assert_eq!(s.revision.as_ref().unwrap().template, "hello-9f9f");
        let stable = s.stable().unwrap();
        assert_eq!(
            (stable.name.as_str(), stable.zone.as_deref()),
            ("hello", None)
        );
        assert_eq!(stable.region.as_deref(), Some("europe-west1"));
        assert!(
            !s.to_yaml().contains("\nregion: "),
            "the old field is not written back"
        );
    }
}
