//! File storage (Cloud Storage's control API): a managed folder `APP/` per
//! app in the bucket its spec names (or the configured default), whose IAM
//! policy lets the app's service account alone use its objects
//! (`roles/storage.objectUser`): a prefix is not a boundary, a managed
//! folder with a policy of its own is. The bucket needs uniform
//! bucket-level access (managed folders exist only there) and must not
//! grant apps' accounts anything on the whole bucket.
//!
//! The same policy edit gives each log sink's writer identity
//! `roles/storage.objectCreator` on the logs bucket ([`GcpServices::grant_on_bucket`]).
//!
//! Google's Rust SDK reaches managed folders and their policies only
//! through `google-cloud-storage`'s `StorageControl`, which speaks gRPC.

use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};
use google_cloud_storage::model::ManagedFolder;

use crate::GcpServices;
use crate::error::{GcpServiceError, conflict, http_status, not_found};

/// What the app's account may do in its folder: read, write, list and
/// delete objects, nothing on the folder's policy.
pub const FOLDER_ROLE: &str = "roles/storage.objectUser";

/// What a log sink's writer identity needs on the logs bucket.
pub const SINK_ROLE: &str = "roles/storage.objectCreator";

/// A write that met a concurrent change is tried again, this many times.
const ATTEMPTS: u32 = 5;

/// `projects/_/buckets/B`, as the control API names a bucket.
pub fn bucket_resource(bucket: &str) -> String {
    format!("projects/_/buckets/{bucket}")
}

/// The app's managed folder in `bucket`.
pub fn folder_resource(bucket: &str, app: &str) -> String {
    format!(
        "{}/managedFolders/{}",
        bucket_resource(bucket),
        ccd_services::names::storage_prefix(app)
    )
}

/// `policy` with `member` in the unconditional binding of `role`; `None`
/// when it is there already. No other binding is touched.
pub fn granted(policy: &Policy, role: &str, member: &str) -> Option<Policy> {
    let mut out = policy.clone();
    let plain = out
        .bindings
        .iter_mut()
        .find(|b| b.role == role && b.condition.is_none());
    match plain {
        Some(b) if b.members.iter().any(|m| m == member) => return None,
        Some(b) => b.members.push(member.to_owned()),
        None => out
            .bindings
            .push(Binding::new().set_role(role).set_members([member])),
    }
    Some(out)
}

/// `policy` without `member` in the unconditional binding of `role`
/// (dropped when left empty); `None` when it is not there.
pub fn revoked(policy: &Policy, role: &str, member: &str) -> Option<Policy> {
    let mut out = policy.clone();
    let b = out
        .bindings
        .iter_mut()
        .find(|b| b.role == role && b.condition.is_none())?;
    let before = b.members.len();
    b.members.retain(|m| m != member);
    if b.members.len() == before {
        return None;
    }
    out.bindings.retain(|b| !b.members.is_empty());
    Some(out)
}

/// What [`GcpServices::ensure_storage`] made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageProvisioned {
    pub bucket: String,
    /// `APP/`.
    pub prefix: String,
    pub created: bool,
}

impl GcpServices {
    /// The bucket of the app's folder: the spec's, else the configured one.
    pub fn storage_bucket(&self, named: Option<&str>) -> Result<String, GcpServiceError> {
        named
            .or(self.config.storage_bucket.as_deref())
            .map(str::to_owned)
            .ok_or_else(|| {
                GcpServiceError::Config(
                    "services.storage: no bucket: name one in the spec's services.storage.bucket, \
                     or a default in the controller's configuration `services.storage.bucket`"
                        .to_owned(),
                )
            })
    }

    /// The app's managed folder, made when missing, and its account's role
    /// on it.
    pub async fn ensure_storage(
        &self,
        app: &str,
        bucket: Option<&str>,
        account_email: &str,
    ) -> Result<StorageProvisioned, GcpServiceError> {
        let bucket = self.storage_bucket(bucket)?;
        let prefix = ccd_services::names::storage_prefix(app);
        let folder = folder_resource(&bucket, app);
        let found = self
            .c
            .storage
            .get_managed_folder()
            .set_name(&folder)
            .send()
            .await;
        let created = match found {
            Ok(_) => false,
            Err(e) if not_found(&e) => {
                let made = self
                    .c
                    .storage
                    .create_managed_folder()
                    .set_parent(bucket_resource(&bucket))
                    .set_managed_folder_id(&prefix)
                    .set_managed_folder(ManagedFolder::new())
                    .send()
                    .await;
                match made {
                    Ok(_) => true,
                    Err(e) if conflict(&e) => false,
                    Err(e) if http_status(&e) == Some(412) => {
                        return Err(GcpServiceError::Config(format!(
                            "gs://{bucket}: managed folders need uniform bucket-level access: \
                             turn it on (gcloud storage buckets update gs://{bucket} \
                             --uniform-bucket-level-access) or name another bucket"
                        )));
                    }
                    Err(e) => {
                        return Err(GcpServiceError::api(
                            &folder,
                            "storage.managedfolders.create",
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(GcpServiceError::api(
                    &folder,
                    "storage.managedfolders.get",
                    e,
                ));
            }
        };
        if created {
            tracing::info!(resource = folder, "created");
        }
        let member = format!("serviceAccount:{account_email}");
        self.edit_storage_policy(&folder, |p| granted(p, FOLDER_ROLE, &member))
            .await?;
        Ok(StorageProvisioned {
            bucket,
            prefix,
            created,
        })
    }

    /// Takes the account's role away; with `delete`, every object under
    /// the app's prefix is deleted, then the folder.
    pub async fn remove_storage(
        &self,
        app: &str,
        bucket: &str,
        account_email: &str,
        delete: bool,
    ) -> Result<(), GcpServiceError> {
        let folder = folder_resource(bucket, app);
        let member = format!("serviceAccount:{account_email}");
        if !delete {
            return self
                .edit_storage_policy(&folder, |p| revoked(p, FOLDER_ROLE, &member))
                .await;
        }
        self.delete_objects(bucket, &ccd_services::names::storage_prefix(app))
            .await?;
        let gone = self
            .c
            .storage
            .delete_managed_folder()
            .set_name(&folder)
            .set_allow_non_empty(true)
            .send()
            .await;
        match gone {
            Ok(()) => tracing::info!(resource = folder, "deleted"),
            Err(e) if not_found(&e) => {}
            Err(e) => {
                return Err(GcpServiceError::api(
                    &folder,
                    "storage.managedfolders.delete",
                    e,
                ));
            }
        }
        Ok(())
    }

    /// Deletes every object whose name starts with `prefix`.
    async fn delete_objects(&self, bucket: &str, prefix: &str) -> Result<(), GcpServiceError> {
        let parent = bucket_resource(bucket);
        let mut token = String::new();
        loop {
            let page = self
                .c
                .storage
                .list_objects()
                .set_parent(&parent)
                .set_prefix(prefix)
                .set_page_token(&token)
                .send()
                .await
                .map_err(|e| GcpServiceError::api(&parent, "storage.objects.list", e))?;
            for object in &page.objects {
                let deleted = self
                    .c
                    .storage
                    .delete_object()
                    .set_bucket(&parent)
                    .set_object(&object.name)
                    .send()
                    .await;
                match deleted {
                    Ok(()) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => {
                        let at = format!("gs://{bucket}/{}", object.name);
                        return Err(GcpServiceError::api(&at, "storage.objects.delete", e));
                    }
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(());
            }
            token = page.next_page_token;
        }
    }

    /// Adds `member` to `role` on the whole bucket (a log sink's writer).
    pub async fn grant_on_bucket(
        &self,
        bucket: &str,
        role: &str,
        member: &str,
    ) -> Result<(), GcpServiceError> {
        self.edit_storage_policy(&bucket_resource(bucket), |p| granted(p, role, member))
            .await
    }

    /// Read-modify-write of a bucket's or managed folder's policy, with the
    /// etag read; a write that met another is done again.
    async fn edit_storage_policy(
        &self,
        resource: &str,
        change: impl Fn(&Policy) -> Option<Policy>,
    ) -> Result<(), GcpServiceError> {
        let mut delay = std::time::Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let policy = self
                .c
                .storage
                .get_iam_policy()
                .set_resource(resource)
                .set_options(GetPolicyOptions::new().set_requested_policy_version(3))
                .send()
                .await
                .map_err(|e| {
                    GcpServiceError::api(resource, "storage.managedFolders.getIamPolicy", e)
                })?;
            let Some(policy) = change(&policy) else {
                return Ok(());
            };
            let set = self
                .c
                .storage
                .set_iam_policy()
                .set_resource(resource)
                .set_policy(policy)
                .send()
                .await;
            match set {
                Ok(_) => {
                    tracing::info!(resource, "policy changed");
                    return Ok(());
                }
                Err(e) if matches!(http_status(&e), Some(409 | 412)) && attempt < ATTEMPTS => {
                    tracing::debug!(resource, attempt, "the policy changed meanwhile: again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    return Err(GcpServiceError::api(
                        resource,
                        "storage.managedFolders.setIamPolicy",
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

    const ME: &str = "serviceAccount:ccd-web@p.iam.gserviceaccount.com";

    #[test]
    fn the_folder_is_the_apps_prefix() {
        assert_eq!(
            folder_resource("files", "web"),
            "projects/_/buckets/files/managedFolders/web/"
        );
    }

    #[test]
    fn a_grant_joins_the_plain_binding_and_leaves_others_alone() {
        let other = Binding::new()
            .set_role("roles/storage.objectViewer")
            .set_members(["user:ana@example.com"]);
        let start = Policy::new().set_bindings([other.clone()]).set_etag("e1");
        let once = granted(&start, FOLDER_ROLE, ME).unwrap_or_else(|| panic!("a change"));
        assert_eq!(once.bindings[0], other);
        assert_eq!(once.bindings[1].members, [ME]);
        assert_eq!(once.etag, start.etag, "written back with the etag read");
        assert_eq!(granted(&once, FOLDER_ROLE, ME), None, "already there");
        let back = revoked(&once, FOLDER_ROLE, ME).unwrap_or_else(|| panic!("a change"));
        assert_eq!(back.bindings, [other]);
        assert_eq!(revoked(&back, FOLDER_ROLE, ME), None);
    }
}
