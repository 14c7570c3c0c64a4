//! Project IAM bindings under a condition, through Resource Manager's
//! `getIamPolicy` / `setIamPolicy`: one member added to (or taken from) one
//! binding of the project's policy, read at version 3 so every conditional
//! binding comes back whole, written back with the etag read so a change
//! made in between fails the write (409) and the read-modify-write is done
//! again. No other binding is ever removed or changed.
//!
//! ccd-cloud's `gce/identity.rs` edits the project's unconditional
//! bindings the same way (`granted`, `revoked`, crate-private there); these
//! are the conditional counterparts.

use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};
use google_cloud_type::model::Expr;

use crate::GcpServices;
use crate::error::GcpServiceError;

/// Conditional bindings exist only in version 3 policies.
pub const POLICY_VERSION: i32 = 3;

/// A write that met a concurrent change is tried again, this many times in
/// all, the wait doubling from this.
const ATTEMPTS: u32 = 5;
const BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// One role for one member under one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalGrant {
    pub role: String,
    /// `serviceAccount:EMAIL`.
    pub member: String,
    pub condition: Expr,
}

impl ConditionalGrant {
    fn binding_of<'a>(&self, policy: &'a mut Policy) -> Option<&'a mut Binding> {
        policy
            .bindings
            .iter_mut()
            .find(|b| b.role == self.role && b.condition.as_ref() == Some(&self.condition))
    }
}

/// `policy` with the grant's member in the binding of its role and exactly
/// its condition (made when missing); `None` when it is there already.
pub fn granted(policy: &Policy, grant: &ConditionalGrant) -> Option<Policy> {
    let mut out = policy.clone();
    match grant.binding_of(&mut out) {
        Some(b) if b.members.contains(&grant.member) => return None,
        Some(b) => b.members.push(grant.member.clone()),
        None => out.bindings.push(
            Binding::new()
                .set_role(&grant.role)
                .set_members([grant.member.clone()])
                .set_condition(grant.condition.clone()),
        ),
    }
    out.version = POLICY_VERSION;
    Some(out)
}

/// `policy` without the grant's member in that one binding (dropped when
/// left empty); `None` when it is not there.
pub fn revoked(policy: &Policy, grant: &ConditionalGrant) -> Option<Policy> {
    let mut out = policy.clone();
    let b = grant.binding_of(&mut out)?;
    let before = b.members.len();
    b.members.retain(|m| m != &grant.member);
    if b.members.len() == before {
        return None;
    }
    out.bindings.retain(|b| !b.members.is_empty());
    out.version = POLICY_VERSION;
    Some(out)
}

/// `change` applied for each grant in turn: one policy write for them all;
/// `None` when none changes anything.
fn each(
    policy: &Policy,
    grants: &[ConditionalGrant],
    change: fn(&Policy, &ConditionalGrant) -> Option<Policy>,
) -> Option<Policy> {
    let mut changed: Option<Policy> = None;
    for g in grants {
        if let Some(next) = change(changed.as_ref().unwrap_or(policy), g) {
            changed = Some(next);
        }
    }
    changed
}

impl GcpServices {
    /// Adds the grants to the project's policy in one write; nothing is
    /// written when they all hold already.
    pub async fn grant_on_project(
        &self,
        grants: &[ConditionalGrant],
    ) -> Result<(), GcpServiceError> {
        self.edit_project_policy(|p| each(p, grants, granted)).await
    }

    /// Takes the grants out of the project's policy in one write.
    pub async fn revoke_on_project(
        &self,
        grants: &[ConditionalGrant],
    ) -> Result<(), GcpServiceError> {
        self.edit_project_policy(|p| each(p, grants, revoked)).await
    }

    async fn edit_project_policy(
        &self,
        change: impl Fn(&Policy) -> Option<Policy>,
    ) -> Result<(), GcpServiceError> {
        let resource = format!("projects/{}", self.project());
        let mut delay = BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let policy = self
                .c
                .projects
                .get_iam_policy()
                .set_resource(&resource)
                .set_options(GetPolicyOptions::new().set_requested_policy_version(POLICY_VERSION))
                .send()
                .await
                .map_err(|e| {
                    GcpServiceError::api(&resource, "resourcemanager.projects.getIamPolicy", e)
                })?;
            let Some(policy) = change(&policy) else {
                return Ok(());
            };
            // The policy read carries its etag: the write fails if another
            // writer came first.
            let set = self
                .c
                .projects
                .set_iam_policy()
                .set_resource(&resource)
                .set_policy(policy)
                .send()
                .await;
            match set {
                Ok(_) => {
                    tracing::info!(resource, "project policy changed");
                    return Ok(());
                }
                Err(e) if matches!(e.http_status_code(), Some(409 | 412)) && attempt < ATTEMPTS => {
                    tracing::debug!(resource, attempt, "the policy changed meanwhile: again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    return Err(GcpServiceError::api(
                        &resource,
                        "resourcemanager.projects.setIamPolicy",
                        e,
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expression: &str) -> ConditionalGrant {
        ConditionalGrant {
            role: "roles/datastore.user".to_owned(),
            member: "serviceAccount:ccd-web@p.iam.gserviceaccount.com".to_owned(),
            condition: Expr::new().set_title("t").set_expression(expression),
        }
    }

    #[test]
    fn a_grant_joins_only_the_binding_with_its_exact_condition() {
        let plain = Binding::new()
            .set_role("roles/datastore.user")
            .set_members(["user:ana@example.com"]);
        let start = Policy::new().set_bindings([plain.clone()]).set_etag("e1");
        let once = granted(&start, &grant("a")).unwrap_or_else(|| panic!("a change"));
        assert_eq!(
            once.bindings.len(),
            2,
            "never folded into the plain binding"
        );
        assert_eq!(once.bindings[0], plain);
        assert_eq!(once.etag, start.etag, "written back with the etag read");
        assert_eq!(once.version, POLICY_VERSION);
        assert_eq!(granted(&once, &grant("a")), None, "already there");
        let other = granted(&once, &grant("b")).unwrap_or_else(|| panic!("a change"));
        assert_eq!(
            other.bindings.len(),
            3,
            "another condition, another binding"
        );
    }

    #[test]
    fn revoking_empties_only_that_binding() {
        let mut shared = granted(&Policy::new(), &grant("a")).unwrap_or_else(|| panic!("grant"));
        shared.bindings[0]
            .members
            .push("user:ana@example.com".to_owned());
        let out = revoked(&shared, &grant("a")).unwrap_or_else(|| panic!("a change"));
        assert_eq!(out.bindings[0].members, ["user:ana@example.com"]);
        assert_eq!(revoked(&out, &grant("a")), None);
        let alone = granted(&Policy::new(), &grant("a")).unwrap_or_else(|| panic!("grant"));
        assert!(
            revoked(&alone, &grant("a"))
                .unwrap_or_else(|| panic!("a change"))
                .bindings
                .is_empty()
        );
        assert_eq!(revoked(&alone, &grant("b")), None, "not ours");
    }

    #[test]
    fn several_grants_make_one_change_or_none() {
        let both = [grant("a"), grant("b")];
        let once = each(&Policy::new(), &both, granted).unwrap_or_else(|| panic!("a change"));
        assert_eq!(once.bindings.len(), 2);
        assert_eq!(each(&once, &both, granted), None);
        let gone = each(&once, &both, revoked).unwrap_or_else(|| panic!("a change"));
        assert!(gone.bindings.is_empty());
    }
}
