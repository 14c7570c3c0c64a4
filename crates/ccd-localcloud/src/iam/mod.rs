//! The part of Google's IAM that ccd uses for an app's own service account:
//! IAM Admin's service accounts (`/v1/projects/P/serviceAccounts/...`) and
//! `getIamPolicy`/`setIamPolicy` on projects (Resource Manager v3), secrets
//! (Secret Manager v1) and Artifact Registry repositories, on the same port
//! as Compute, so Google's clients reach them with the same endpoint.
//!
//! What is granted is also enforced where it matters here: an instance
//! running as an account made through this API reads only the secrets its
//! account may access (see [`secret_access`]). Accounts and policies live in
//! the store, so they survive a restart as the rest of the state does.

mod accounts;
mod error;
mod policy;
mod route;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

pub use error::IamError;
use route::{Call, Resource};

use crate::secrets;
use crate::store::Store;

/// Roles that let a member read a secret's versions.
const SECRET_READERS: [&str; 3] = [
    "roles/secretmanager.secretAccessor",
    "roles/secretmanager.admin",
    "roles/owner",
];

#[derive(Debug, Clone)]
pub struct Iam {
    store: Store,
    /// `DIR/secrets`, where a secret exists as a file; `None` without a data folder.
    secrets_dir: Option<PathBuf>,
}

impl Iam {
    pub fn new(store: Store, secrets_dir: Option<PathBuf>) -> Self {
        Iam { store, secrets_dir }
    }

    /// Answers one call; `body` is the request's JSON (empty for none). A
    /// change is on disk before it is answered.
    async fn answer(&self, call: Call, body: &[u8]) -> Result<Value, IamError> {
        match call {
            Call::CreateAccount { project } => {
                let (account, seq) = accounts::create(&self.store, &project, &parse(body)?)?;
                self.store.durable(seq).await?;
                Ok(account)
            }
            Call::ListAccounts { project } => Ok(accounts::list(&self.store, &project)),
            Call::GetAccount { project, account } => accounts::get(&self.store, &project, &account),
            Call::DeleteAccount { project, account } => {
                // The account and the policies naming it are several writes.
                let since = self.store.mark();
                let seq = accounts::delete(&self.store, &project, &account)?;
                self.store.durable(since.through(seq)).await?;
                Ok(json!({}))
            }
            Call::GetPolicy(resource) => {
                self.check_exists(&resource)?;
                Ok(policy::get(&self.store, &resource.name()))
            }
            Call::SetPolicy(resource) => {
                self.check_exists(&resource)?;
                let (stored, seq) = policy::set(&self.store, &resource.name(), &parse(body)?)?;
                self.store.durable(seq).await?;
                Ok(stored)
            }
        }
    }

    /// A secret exists when its file does; projects and repositories always.
    fn check_exists(&self, resource: &Resource) -> Result<(), IamError> {
        let Resource::Secret { secret, .. } = resource else {
            return Ok(());
        };
        let name = resource.name();
        let Some(dir) = &self.secrets_dir else {
            return Err(IamError::NotFound(format!(
                "Secret [{name}] not found: this local cloud keeps nothing on disk, so it has no \
                 secrets; start it with a data folder (--data DIR) and write the value to \
                 DIR/secrets/{secret}"
            )));
        };
        if !secrets::valid_name(secret) {
            return Err(IamError::NotFound(format!(
                "Secret [{name}] not found: a secret's name is 1 to 255 letters, digits, - and _"
            )));
        }
        if secrets::exists(dir, secret) {
            return Ok(());
        }
        let file = dir.join(secret);
        Err(IamError::NotFound(format!(
            "Secret [{name}] not found or has no versions: the local cloud keeps a secret as the \
             file {file}; create it holding the value, e.g. `printf '%s' VALUE > {file} && chmod \
             600 {file}`",
            file = file.display()
        )))
    }
}

/// Whether an instance running as `account` (its `serviceAccounts[0].email`)
/// may read `secret` of `project`, or why not. Only an account made through
/// this local cloud's IAM is held to grants: the project's default accounts
/// and emails it does not know read every secret, as before IAM was served.
/// A grant on the secret or on the project counts, as IAM policies inherit.
pub fn secret_access(
    store: &Store,
    account: Option<&str>,
    project: &str,
    secret: &str,
) -> Result<(), String> {
    let Some(email) = account.filter(|e| accounts::exists(store, e)) else {
        return Ok(());
    };
    let member = format!("serviceAccount:{email}");
    let name = format!("projects/{project}/secrets/{secret}");
    let granted = [name.clone(), format!("projects/{project}")]
        .iter()
        .any(|resource| policy::grants(store, resource, &member, &SECRET_READERS));
    if granted {
        Ok(())
    } else {
        Err(format!(
            "the instance's service account {email} may not access secret {secret}: grant it \
             roles/secretmanager.secretAccessor on the secret ({name})"
        ))
    }
}

pub fn router(iam: Iam) -> axum::Router {
    // `/v3/projects/{project}` takes the whole `p:getIamPolicy` segment and
    // so sits beside Monitoring's `/v3/projects/{project}/timeSeries`.
    axum::Router::new()
        .route("/v1/projects/{*rest}", any(v1))
        .route("/v3/projects/{project}", any(v3))
        .with_state(iam)
}

async fn v1(
    State(iam): State<Iam>,
    method: Method,
    Path(rest): Path<String>,
    body: Bytes,
) -> Response {
    respond(&iam, route::v1(method.as_str(), &rest), &body).await
}

async fn v3(
    State(iam): State<Iam>,
    method: Method,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    respond(&iam, route::v3(method.as_str(), &segment), &body).await
}

async fn respond(iam: &Iam, call: Result<Call, IamError>, body: &[u8]) -> Response {
    let answer = match call {
        Ok(call) => iam.answer(call, body).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "IAM call refused");
            e.into_response()
        }
    }
}

/// The request's JSON object; no body reads as `{}`.
fn parse(body: &[u8]) -> Result<Value, IamError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(IamError::InvalidArgument(
            "Invalid JSON payload received: the body must be a JSON object".to_owned(),
        )),
        Err(e) => Err(IamError::InvalidArgument(format!(
            "Invalid JSON payload received: {e}"
        ))),
    }
}
