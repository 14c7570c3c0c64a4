//! Firestore (Firestore Admin API v1): a named database per app, since named
//! databases are a security boundary and collection prefixes are not, and
//! `roles/datastore.user` on the project for the app's service account
//! under an IAM condition that limits it to that one database. Databases
//! are made with delete protection on: only `onDelete: delete` turns it off,
//! right before deleting.

use google_cloud_firestore_admin_v1::model::Database;
use google_cloud_firestore_admin_v1::model::database::{DatabaseType, DeleteProtectionState};
use google_cloud_lro::Poller as _;
use google_cloud_type::model::Expr;
use google_cloud_wkt::FieldMask;

use crate::error::{GcpServiceError, conflict, not_found};
use crate::iam::ConditionalGrant;
use crate::{GcpServices, OnDelete};

/// The role an app's account holds on its database alone.
pub const ROLE: &str = "roles/datastore.user";

/// What [`GcpServices::ensure_firestore`] made or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirestoreProvisioned {
    /// `projects/P/databases/D`.
    pub database: String,
    pub created: bool,
}

/// The database's ID: the spec's, or `ccd-APP`; Firestore's rules checked
/// here so a bad name is the spec's problem, not an API error.
pub fn database_id(app: &str, named: Option<&str>) -> Result<String, GcpServiceError> {
    let id = ccd_services::names::nosql_database(app, named);
    let ok = (4..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    match ok {
        true => Ok(id),
        false => Err(GcpServiceError::Invalid(format!(
            "services.nosql: the Firestore database {id:?} must be 4 to 63 lowercase letters, \
             digits or -, starting with a letter and not ending with -; name another, e.g. \
             \"ccd-{app}\""
        ))),
    }
}

/// The grant of `roles/datastore.user` on the project, for the app's
/// account, that holds only for requests on `database` (`projects/P/databases/D`).
pub fn grant(app: &str, database: &str, account_email: &str) -> ConditionalGrant {
    ConditionalGrant {
        role: ROLE.to_owned(),
        member: format!("serviceAccount:{account_email}"),
        condition: Expr::new()
            .set_title(format!("ccd {app}: its Firestore database only"))
            .set_expression(format!("resource.name == \"{database}\"")),
    }
}

impl GcpServices {
    fn firestore_name(&self, id: &str) -> String {
        format!("projects/{}/databases/{id}", self.project())
    }

    /// The app's database (Native mode, in the configured location, delete
    /// protection on), made when missing, and its account's grant on it.
    pub async fn ensure_firestore(
        &self,
        app: &str,
        database: Option<&str>,
        account_email: &str,
    ) -> Result<FirestoreProvisioned, GcpServiceError> {
        let id = database_id(app, database)?;
        let name = self.firestore_name(&id);
        let created = match self.firestore_database(&name).await? {
            Some(found) => {
                self.check_firestore(&name, &found)?;
                false
            }
            None => self.create_firestore(&name, &id).await?,
        };
        self.grant_on_project(&[grant(app, &name, account_email)])
            .await?;
        Ok(FirestoreProvisioned {
            database: name,
            created,
        })
    }

    /// Takes the account's grant away (the app is gone, whatever becomes of
    /// its data); deletes the database, turning its protection off first,
    /// only for [`OnDelete::Delete`].
    pub async fn remove_firestore(
        &self,
        app: &str,
        database: Option<&str>,
        account_email: &str,
        on_delete: OnDelete,
    ) -> Result<(), GcpServiceError> {
        let name = self.firestore_name(&database_id(app, database)?);
        self.revoke_on_project(&[grant(app, &name, account_email)])
            .await?;
        if on_delete != OnDelete::Delete {
            tracing::info!(resource = name, "onDelete retain: database kept");
            return Ok(());
        }
        let Some(found) = self.firestore_database(&name).await? else {
            return Ok(());
        };
        if found.delete_protection_state != DeleteProtectionState::DeleteProtectionDisabled {
            self.c
                .firestore
                .update_database()
                .set_database(
                    Database::new().set_name(&name).set_delete_protection_state(
                        DeleteProtectionState::DeleteProtectionDisabled,
                    ),
                )
                .set_update_mask(FieldMask::default().set_paths(["delete_protection_state"]))
                .poller()
                .until_done()
                .await
                .map_err(|e| GcpServiceError::api(&name, "datastore.databases.update", e))?;
        }
        match self
            .c
            .firestore
            .delete_database()
            .set_name(&name)
            .poller()
            .until_done()
            .await
        {
            Ok(_) => tracing::info!(resource = name, "deleted"),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(GcpServiceError::api(&name, "datastore.databases.delete", e)),
        }
        Ok(())
    }

    async fn firestore_database(&self, name: &str) -> Result<Option<Database>, GcpServiceError> {
        match self.c.firestore.get_database().set_name(name).send().await {
            Ok(db) => Ok(Some(db)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(GcpServiceError::api(
                name,
                "datastore.databases.getMetadata",
                e,
            )),
        }
    }

    /// Creates the database; one made meanwhile by another pass is read
    /// and checked instead.
    async fn create_firestore(&self, name: &str, id: &str) -> Result<bool, GcpServiceError> {
        let location = self
            .config
            .firestore_location
            .as_deref()
            .unwrap_or(&self.config.region);
        let made = self
            .c
            .firestore
            .create_database()
            .set_parent(format!("projects/{}", self.project()))
            .set_database_id(id)
            .set_database(
                Database::new()
                    .set_location_id(location)
                    .set_type(DatabaseType::FirestoreNative)
                    .set_delete_protection_state(DeleteProtectionState::DeleteProtectionEnabled),
            )
            .poller()
            .until_done()
            .await;
        match made {
            Ok(_) => {
                tracing::info!(resource = name, location, "created");
                Ok(true)
            }
            Err(e) if conflict(&e) => match self.firestore_database(name).await? {
                Some(found) => self.check_firestore(name, &found).map(|()| false),
                None => Err(GcpServiceError::Conflict {
                    resource: name.to_owned(),
                    message: "exists, then vanished before it could be read; the next pass \
                              tries again"
                        .to_owned(),
                }),
            },
            Err(e) => Err(GcpServiceError::api(name, "datastore.databases.create", e)),
        }
    }

    /// A database of the app's name in Datastore mode, or elsewhere than
    /// configured, is not one ccd would make: refused, not changed.
    fn check_firestore(&self, name: &str, found: &Database) -> Result<(), GcpServiceError> {
        let location = self
            .config
            .firestore_location
            .as_deref()
            .unwrap_or(&self.config.region);
        if found.r#type != DatabaseType::FirestoreNative {
            return Err(GcpServiceError::Conflict {
                resource: name.to_owned(),
                message: format!(
                    "exists in {} mode, not Firestore Native: name another database in the \
                     spec's services.nosql, or delete this one",
                    found.r#type.name().unwrap_or("another")
                ),
            });
        }
        if found.location_id != location {
            tracing::warn!(
                resource = name,
                found = found.location_id,
                configured = location,
                "the database is in another location than configured; used as it is"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_apps_unless_named_and_follows_firestores_rules() {
        assert_eq!(database_id("web", None).ok().as_deref(), Some("ccd-web"));
        assert_eq!(
            database_id("web", Some("notes-1")).ok().as_deref(),
            Some("notes-1")
        );
        for bad in ["abc", "Notes", "1notes", "notes-", "no_tes", "(default)"] {
            assert!(database_id("web", Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_grant_holds_only_on_the_apps_database() {
        let g = grant(
            "web",
            "projects/p/databases/ccd-web",
            "a@p.iam.gserviceaccount.com",
        );
        assert_eq!(g.role, "roles/datastore.user");
        assert_eq!(g.member, "serviceAccount:a@p.iam.gserviceaccount.com");
        assert_eq!(
            g.condition.expression,
            "resource.name == \"projects/p/databases/ccd-web\""
        );
    }
}
