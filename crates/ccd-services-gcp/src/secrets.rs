//! The variables a service delivers to an app, each a Secret Manager secret
//! in the project named [`ccd_services::names::secret_of`]: the template
//! references it (`latest`) and the deploy reconciler grants the app's
//! account access to it, as with the spec's own `secrets`. A secret is
//! created when missing; a version is added only when the value differs
//! from the latest one, so a pass that changes nothing writes nothing and
//! no instance is rolled for it.

use google_cloud_secretmanager_v1::model::{Replication, Secret, SecretPayload, replication};

use crate::GcpServices;
use crate::error::{GcpServiceError, conflict, not_found};

/// The label that names the app a secret was written for.
pub const APP_LABEL: &str = "ccd-app";

/// What [`GcpServices::deliver`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The secrets created.
    pub created: Vec<String>,
    /// The secrets given a new version (created ones included).
    pub versioned: Vec<String>,
}

impl GcpServices {
    fn secret_name(&self, secret: &str) -> String {
        format!("projects/{}/secrets/{secret}", self.project())
    }

    /// Writes each `(variable, value)` of `kind`'s service as its secret.
    pub async fn deliver(
        &self,
        app: &str,
        kind: &str,
        values: &[(&str, String)],
    ) -> Result<Delivered, GcpServiceError> {
        let mut out = Delivered::default();
        for (env, value) in values {
            let secret = ccd_services::names::secret_of(app, kind, env);
            let name = self.secret_name(&secret);
            match self.latest_value(&name).await? {
                Latest::Value(v) if v == value.as_bytes() => continue,
                Latest::Value(_) => {}
                Latest::NoSecret => {
                    if self.create_secret(app, kind, &secret).await? {
                        out.created.push(secret.clone());
                    }
                }
                Latest::NoVersion => {}
            }
            self.c
                .secrets
                .add_secret_version()
                .set_parent(&name)
                .set_payload(SecretPayload::new().set_data(value.clone().into_bytes()))
                .send()
                .await
                .map_err(|e| GcpServiceError::api(&name, "secretmanager.versions.add", e))?;
            tracing::info!(resource = name, "new version");
            out.versioned.push(secret);
        }
        Ok(out)
    }

    /// Deletes the secrets of `kind`'s service (every variable its contract
    /// has): the service is gone with its data.
    pub async fn undeliver(&self, app: &str, kind: &str) -> Result<(), GcpServiceError> {
        for env in ccd_spec::contract::of(kind) {
            let name = self.secret_name(&ccd_services::names::secret_of(app, kind, env));
            match self.c.secrets.delete_secret().set_name(&name).send().await {
                Ok(()) => tracing::info!(resource = name, "deleted"),
                Err(e) if not_found(&e) => {}
                Err(e) => {
                    return Err(GcpServiceError::api(
                        &name,
                        "secretmanager.secrets.delete",
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    /// The latest version's value, or why there is none.
    async fn latest_value(&self, name: &str) -> Result<Latest, GcpServiceError> {
        let latest = format!("{name}/versions/latest");
        let got = self
            .c
            .secrets
            .access_secret_version()
            .set_name(&latest)
            .send()
            .await;
        match got {
            Ok(v) => Ok(Latest::Value(
                v.payload.map(|p| p.data.to_vec()).unwrap_or_default(),
            )),
            Err(e) if not_found(&e) => {
                // No such secret, or a secret without versions: which one
                // decides whether to create it.
                match self.c.secrets.get_secret().set_name(name).send().await {
                    Ok(_) => Ok(Latest::NoVersion),
                    Err(e) if not_found(&e) => Ok(Latest::NoSecret),
                    Err(e) => Err(GcpServiceError::api(name, "secretmanager.secrets.get", e)),
                }
            }
            // The latest version is disabled or destroyed: a new one.
            Err(e) if e.http_status_code() == Some(400) => Ok(Latest::NoVersion),
            Err(e) => Err(GcpServiceError::api(
                &latest,
                "secretmanager.versions.access",
                e,
            )),
        }
    }

    /// Creates the secret (replicated as Google chooses, labelled with the
    /// app); `false` when another pass made it meanwhile.
    async fn create_secret(
        &self,
        app: &str,
        kind: &str,
        secret: &str,
    ) -> Result<bool, GcpServiceError> {
        let made = self
            .c
            .secrets
            .create_secret()
            .set_parent(format!("projects/{}", self.project()))
            .set_secret_id(secret)
            .set_secret(
                Secret::new()
                    .set_replication(
                        Replication::new().set_automatic(replication::Automatic::new()),
                    )
                    .set_labels([(APP_LABEL, app), ("ccd-service", kind)]),
            )
            .send()
            .await;
        match made {
            Ok(_) => {
                tracing::info!(resource = secret, "created");
                Ok(true)
            }
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(GcpServiceError::api(
                secret,
                "secretmanager.secrets.create",
                e,
            )),
        }
    }
}

enum Latest {
    Value(Vec<u8>),
    NoVersion,
    NoSecret,
}
