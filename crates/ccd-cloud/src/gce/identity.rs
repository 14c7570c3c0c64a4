//! An app's own service account through the IAM API, and its grants: log
//! and metric writing on the project, `secretAccessor` on each secret the
//! spec names (taken away again when the controller says no instance needs
//! it any more), `artifactregistry.reader` on its image's repository. Every
//! grant is one member added to one binding of the resource's own policy
//! (read, change, write with the etag; a concurrent change makes the write
//! fail and the next pass does it again), never a policy replaced.

use google_cloud_iam_admin_v1::model::ServiceAccount;
use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};

use super::GceCloud;
use super::call::{Failure, Kind, Outcome};
use super::marker;
use crate::identity::{
    IMAGE_ROLE, IdentitySpec, PROJECT_ROLES, SECRET_ROLE, account_email, account_id,
    image_repository,
};

/// Policies are read at version 3 so that conditional bindings (the
/// bootstrap's own, say) come back whole and are written back unchanged.
const POLICY_VERSION: i32 = 3;

/// A policy changed by someone else between our read and write (409
/// ABORTED) is read and changed again, this many times in all, the wait
/// doubling from this.
const CONFLICT_ATTEMPTS: u32 = 5;
const CONFLICT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// `policy` with `member` in `role`'s unconditional binding; `None` when it
/// is there already (nothing to write).
pub(crate) fn granted(policy: &Policy, role: &str, member: &str) -> Option<Policy> {
    let plain = |b: &Binding| b.role == role && b.condition.is_none();
    if policy
        .bindings
        .iter()
        .any(|b| plain(b) && b.members.iter().any(|m| m == member))
    {
        return None;
    }
    let mut out = policy.clone();
    match out.bindings.iter_mut().find(|b| plain(b)) {
        Some(b) => b.members.push(member.to_owned()),
        None => out.bindings.push(
            Binding::new()
                .set_role(role)
                .set_members([member.to_owned()]),
        ),
    }
    out.version = POLICY_VERSION;
    Some(out)
}

/// `policy` with `member` in each of `roles`: one write for them all;
/// `None` when it holds every one already.
pub(crate) fn granted_all(policy: &Policy, roles: &[&str], member: &str) -> Option<Policy> {
    let mut changed: Option<Policy> = None;
    for role in roles {
        if let Some(next) = granted(changed.as_ref().unwrap_or(policy), role, member) {
            changed = Some(next);
        }
    }
    changed
}

/// `policy` without `member` in any unconditional binding (bindings left
/// empty dropped); `None` when it is in none.
pub(crate) fn revoked(policy: &Policy, member: &str) -> Option<Policy> {
    let holds = |b: &Binding| b.condition.is_none() && b.members.iter().any(|m| m == member);
    if !policy.bindings.iter().any(holds) {
        return None;
    }
    let mut out = policy.clone();
    for b in out.bindings.iter_mut().filter(|b| b.condition.is_none()) {
        b.members.retain(|m| m != member);
    }
    out.bindings.retain(|b| !b.members.is_empty());
    out.version = POLICY_VERSION;
    Some(out)
}

/// A change to one policy.
#[derive(Debug, Clone, Copy)]
enum Edit<'a> {
    /// These roles, each in one policy write.
    Grant(&'a [&'a str]),
    Revoke,
}

/// Which resource's policy a grant changes.
#[derive(Debug, Clone)]
enum Holder {
    Project,
    Secret(String),
    Repository(String),
}

impl GceCloud {
    fn account_resource(&self, app: &str) -> String {
        format!(
            "projects/{}/serviceAccounts/{}",
            self.project(),
            account_email(app, self.project())
        )
    }

    fn holder_resource(&self, holder: &Holder) -> String {
        match holder {
            Holder::Project => format!("projects/{}", self.project()),
            Holder::Secret(name) => format!("projects/{}/secrets/{name}", self.project()),
            Holder::Repository(path) => path.clone(),
        }
    }

    /// A change that is not an operation (IAM answers at once).
    async fn change<T>(
        &self,
        resource: &str,
        change: &str,
        call: impl Future<Output = google_cloud_gax::Result<T>>,
    ) -> Outcome<T> {
        self.refuse_if_read_only(resource, change)?;
        self.limiter.acquire().await;
        self.refuse_unless_leading(resource)?;
        self.counters.poll(true);
        tracing::debug!(target: super::call::CALLS, resource, "mutation");
        call.await.map_err(|e| super::call::classify(resource, &e))
    }

    /// The app's account, created when missing; one of the same name that
    /// ccd did not make for the app is refused.
    pub(crate) async fn apply_identity_impl(&self, spec: &IdentitySpec) -> Outcome<String> {
        let app = spec.app.as_str();
        let resource = self.account_resource(app);
        let email = account_email(app, self.project());
        let get = || self.c.iam.get_service_account().set_name(&resource).send();
        // Read first when this adapter saw the account; create first otherwise
        // (see seen.rs): whatever exists is read and checked either way.
        let found = match self.read_only || self.seen.exists(&resource) {
            true => self.find(&resource, get()).await?,
            false => None,
        };
        match found {
            Some(found) => check_account(&resource, app, &found)?,
            None => {
                let create = self
                    .c
                    .iam
                    .create_service_account()
                    .set_name(format!("projects/{}", self.project()))
                    .set_account_id(account_id(app))
                    .set_service_account(
                        ServiceAccount::new()
                            .set_display_name(format!("ccd app {app}"))
                            .set_description(marker::description(
                                app,
                                &[(marker::REGION_WORD, self.region())],
                            )),
                    )
                    .send();
                match self
                    .change(&resource, "is missing and would be created", create)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(resource, "created");
                        self.seen.saw(&resource, true);
                    }
                    Err(f) if f.kind == Kind::AlreadyExists => {
                        let Some(found) = self.find(&resource, get()).await? else {
                            let gone = "exists, then vanished before it could be read";
                            return Err(Failure::new(Kind::Stale, &resource, gone));
                        };
                        check_account(&resource, app, &found)?;
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        let member = format!("serviceAccount:{email}");
        // Both project roles in one read and at most one write.
        self.grant(&Holder::Project, &PROJECT_ROLES, &member)
            .await?;
        for secret in &spec.secrets {
            self.grant(&Holder::Secret(secret.clone()), &[SECRET_ROLE], &member)
                .await?;
        }
        if let Some(repository) = image_repository(&spec.image) {
            self.grant(&Holder::Repository(repository), &[IMAGE_ROLE], &member)
                .await?;
        }
        for secret in spec.revoke.difference(&spec.secrets) {
            self.revoke(&Holder::Secret(secret.clone()), &member)
                .await?;
        }
        Ok(email)
    }

    /// Takes `member` out of the holder's policy; a holder that is gone
    /// has nothing to take away.
    async fn revoke_once(&self, holder: &Holder, member: &str) -> Outcome<()> {
        let resource = self.holder_resource(holder);
        let policy = match self.policy(holder).await {
            Ok(p) => p,
            Err(f) if f.kind == Kind::NotFound => return Ok(()),
            Err(f) => return Err(f),
        };
        let Some(policy) = revoked(&policy, member) else {
            return Ok(());
        };
        self.set_policy(holder, &resource, policy).await?;
        tracing::info!(resource, member, "revoked");
        Ok(())
    }

    /// Deletes the app's account after taking it out of the project's
    /// policy. Its bindings on secrets and repositories stay behind as
    /// `deleted:` members, which grant nothing; a new account of the same
    /// name does not inherit them.
    pub(crate) async fn delete_identity_impl(&self, app: &str) -> Outcome<()> {
        let resource = self.account_resource(app);
        let get = self.c.iam.get_service_account().set_name(&resource).send();
        let Some(found) = self.find(&resource, get).await? else {
            return Ok(());
        };
        if check_account(&resource, app, &found).is_err() {
            tracing::warn!(resource, "not ccd's account for the app: left alone");
            return Ok(());
        }
        let member = format!("serviceAccount:{}", account_email(app, self.project()));
        let project = self.holder_resource(&Holder::Project);
        let policy = self.policy(&Holder::Project).await?;
        if let Some(policy) = revoked(&policy, &member) {
            self.set_policy(&Holder::Project, &project, policy).await?;
        }
        let delete = self
            .c
            .iam
            .delete_service_account()
            .set_name(&resource)
            .send();
        match self.change(&resource, "would be deleted", delete).await {
            Ok(()) => tracing::info!(resource, "deleted"),
            Err(f) if f.kind == Kind::NotFound => {}
            Err(f) => return Err(f),
        }
        self.seen.saw(&resource, false);
        Ok(())
    }

    async fn grant(&self, holder: &Holder, roles: &[&str], member: &str) -> Outcome<()> {
        self.edit(holder, member, Edit::Grant(roles)).await
    }

    async fn revoke(&self, holder: &Holder, member: &str) -> Outcome<()> {
        self.edit(holder, member, Edit::Revoke).await
    }

    /// One change to the holder's policy, again while another writer
    /// changed it in between (apps share the project's policy): the whole
    /// read-modify-write, with back-off, as Google asks.
    async fn edit(&self, holder: &Holder, member: &str, edit: Edit<'_>) -> Outcome<()> {
        let mut delay = CONFLICT_BACKOFF;
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let done = match edit {
                Edit::Grant(roles) => self.grant_once(holder, roles, member).await,
                Edit::Revoke => self.revoke_once(holder, member).await,
            };
            match done {
                Err(f)
                    if matches!(f.kind, Kind::AlreadyExists | Kind::Stale)
                        && attempt < CONFLICT_ATTEMPTS =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        Ok(())
    }

    async fn grant_once(&self, holder: &Holder, roles: &[&str], member: &str) -> Outcome<()> {
        let resource = self.holder_resource(holder);
        let policy = self
            .policy(holder)
            .await
            .map_err(|f| match (holder, f.kind) {
                (Holder::Secret(name), Kind::NotFound) => Failure::new(
                    Kind::Invalid,
                    &resource,
                    format!(
                        "the spec names secret {name}, which does not exist in project {}: create \
                     it (gcloud secrets create {name} --data-file=FILE) or fix spec.secrets",
                        self.project()
                    ),
                ),
                _ => f,
            })?;
        let Some(policy) = granted_all(&policy, roles, member) else {
            return Ok(());
        };
        self.set_policy(holder, &resource, policy).await?;
        tracing::info!(resource, ?roles, member, "granted");
        Ok(())
    }

    async fn policy(&self, holder: &Holder) -> Outcome<Policy> {
        let resource = self.holder_resource(holder);
        let options = GetPolicyOptions::new().set_requested_policy_version(POLICY_VERSION);
        match holder {
            Holder::Project => {
                let get = self
                    .c
                    .projects
                    .get_iam_policy()
                    .set_resource(&resource)
                    .set_options(options)
                    .send();
                self.read(&resource, get).await
            }
            Holder::Secret(_) => {
                let get = self
                    .c
                    .secrets
                    .get_iam_policy()
                    .set_resource(&resource)
                    .set_options(options)
                    .send();
                self.read(&resource, get).await
            }
            Holder::Repository(_) => {
                let get = self
                    .c
                    .registry
                    .get_iam_policy()
                    .set_resource(&resource)
                    .set_options(options)
                    .send();
                self.read(&resource, get).await
            }
        }
    }

    async fn set_policy(&self, holder: &Holder, resource: &str, policy: Policy) -> Outcome<()> {
        let change = "lacks a grant and its policy would be changed";
        match holder {
            Holder::Project => {
                let set = self
                    .c
                    .projects
                    .set_iam_policy()
                    .set_resource(resource)
                    .set_policy(policy)
                    .send();
                self.change(resource, change, set).await.map(|_| ())
            }
            Holder::Secret(_) => {
                let set = self
                    .c
                    .secrets
                    .set_iam_policy()
                    .set_resource(resource)
                    .set_policy(policy)
                    .send();
                self.change(resource, change, set).await.map(|_| ())
            }
            Holder::Repository(_) => {
                let set = self
                    .c
                    .registry
                    .set_iam_policy()
                    .set_resource(resource)
                    .set_policy(policy)
                    .send();
                self.change(resource, change, set).await.map(|_| ())
            }
        }
    }
}

/// An account under the app's ID that ccd did not make for the app.
fn check_account(resource: &str, app: &str, found: &ServiceAccount) -> Outcome<()> {
    struct Account<'a>(&'a str);
    impl marker::Described for Account<'_> {
        fn description(&self) -> Option<&str> {
            Some(self.0)
        }
    }
    marker::check_owned(resource, app, &Account(&found.description))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(bindings: &[(&str, &[&str])]) -> Policy {
        Policy::new().set_bindings(bindings.iter().map(|(role, members)| {
            Binding::new()
                .set_role(*role)
                .set_members(members.iter().map(|m| (*m).to_owned()))
        }))
    }

    #[test]
    fn a_grant_adds_the_member_once_and_keeps_the_rest() {
        let me = "serviceAccount:ccd-web@p.iam.gserviceaccount.com";
        let start = policy(&[("roles/viewer", &["user:ana@example.com"])]);
        let once = granted(&start, SECRET_ROLE, me).unwrap();
        assert_eq!(once.bindings.len(), 2);
        assert_eq!(once.bindings[0], start.bindings[0]);
        assert_eq!(granted(&once, SECRET_ROLE, me), None, "already there");
        let other = policy(&[(SECRET_ROLE, &["user:ana@example.com"])]);
        let joined = granted(&other, SECRET_ROLE, me).unwrap();
        assert_eq!(joined.bindings.len(), 1);
        assert_eq!(joined.bindings[0].members, ["user:ana@example.com", me]);
    }

    #[test]
    fn the_project_roles_are_granted_in_one_change() {
        let me = "serviceAccount:ccd-web@p.iam.gserviceaccount.com";
        let start = policy(&[(PROJECT_ROLES[1], &[me])]);
        let both = granted_all(&start, &PROJECT_ROLES, me).unwrap();
        for role in PROJECT_ROLES {
            assert_eq!(granted(&both, role, me), None, "{role}");
        }
        assert_eq!(both.bindings.len(), 2, "{both:?}");
        assert_eq!(
            granted_all(&both, &PROJECT_ROLES, me),
            None,
            "nothing to write"
        );
    }

    #[test]
    fn conditional_bindings_are_neither_joined_nor_emptied() {
        let me = "serviceAccount:ccd-web@p.iam.gserviceaccount.com";
        let mut start = policy(&[(SECRET_ROLE, &[me])]);
        start.bindings[0].condition = Some(
            google_cloud_type::model::Expr::new()
                .set_expression("request.time < timestamp('2030-01-01T00:00:00Z')"),
        );
        let out = granted(&start, SECRET_ROLE, me).unwrap();
        assert_eq!(
            out.bindings.len(),
            2,
            "a plain binding beside the conditional one"
        );
        assert!(out.bindings[0].condition.is_some());
        assert_eq!(out.version, POLICY_VERSION);
        assert_eq!(
            revoked(&start, me),
            None,
            "conditional grants are someone else's"
        );
    }

    #[test]
    fn revoking_takes_the_member_out_everywhere_and_drops_empty_bindings() {
        let me = "serviceAccount:ccd-web@p.iam.gserviceaccount.com";
        let start = policy(&[
            (PROJECT_ROLES[0], &[me]),
            (PROJECT_ROLES[1], &[me, "user:ana@example.com"]),
        ]);
        let out = revoked(&start, me).unwrap();
        assert_eq!(out.bindings.len(), 1);
        assert_eq!(out.bindings[0].members, ["user:ana@example.com"]);
        assert_eq!(revoked(&out, me), None);
    }
}
