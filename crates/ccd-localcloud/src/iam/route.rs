//! Which call a path names. Google's custom verbs sit in the last segment
//! (`projects/p/secrets/s:getIamPolicy`), which axum's router cannot
//! match, so the paths arrive whole and are taken apart here.

use super::IamError;

/// A resource that has an IAM policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// Resource Manager's `projects/P`.
    Project { project: String },
    /// Secret Manager's `projects/P/secrets/S` (or a regional one,
    /// `projects/P/locations/L/secrets/S`).
    Secret {
        project: String,
        location: Option<String>,
        secret: String,
    },
    /// Artifact Registry's `projects/P/locations/L/repositories/R`.
    Repository {
        project: String,
        location: String,
        repository: String,
    },
}

impl Resource {
    /// The resource's name, as Google's APIs spell it.
    pub fn name(&self) -> String {
        match self {
            Resource::Project { project } => format!("projects/{project}"),
            Resource::Secret {
                project,
                location: None,
                secret,
            } => format!("projects/{project}/secrets/{secret}"),
            Resource::Secret {
                project,
                location: Some(location),
                secret,
            } => format!("projects/{project}/locations/{location}/secrets/{secret}"),
            Resource::Repository {
                project,
                location,
                repository,
            } => format!("projects/{project}/locations/{location}/repositories/{repository}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateAccount { project: String },
    ListAccounts { project: String },
    GetAccount { project: String, account: String },
    DeleteAccount { project: String, account: String },
    GetPolicy(Resource),
    SetPolicy(Resource),
}

/// A call below `/v1/projects/` (IAM Admin, Secret Manager, Artifact
/// Registry): `rest` is the path after that prefix, decoded.
pub fn v1(method: &str, rest: &str) -> Result<Call, IamError> {
    let (path, verb) = split_verb(rest);
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(not_served(method, &format!("/v1/projects/{rest}")));
    }
    let owned = |s: &&str| (*s).to_owned();
    let call = match (parts.as_slice(), verb, method) {
        ([project, "serviceAccounts"], None, "POST") => Some(Call::CreateAccount {
            project: owned(project),
        }),
        ([project, "serviceAccounts"], None, "GET") => Some(Call::ListAccounts {
            project: owned(project),
        }),
        ([project, "serviceAccounts", account], None, "GET") => Some(Call::GetAccount {
            project: owned(project),
            account: owned(account),
        }),
        ([project, "serviceAccounts", account], None, "DELETE") => Some(Call::DeleteAccount {
            project: owned(project),
            account: owned(account),
        }),
        ([project, "secrets", secret], Some(verb), _) => policy_call(
            verb,
            method,
            "GET",
            Resource::Secret {
                project: owned(project),
                location: None,
                secret: owned(secret),
            },
        ),
        ([project, "locations", location, "secrets", secret], Some(verb), _) => policy_call(
            verb,
            method,
            "GET",
            Resource::Secret {
                project: owned(project),
                location: Some(owned(location)),
                secret: owned(secret),
            },
        ),
        ([project, "locations", location, "repositories", repository], Some(verb), _) => {
            policy_call(
                verb,
                method,
                "GET",
                Resource::Repository {
                    project: owned(project),
                    location: owned(location),
                    repository: owned(repository),
                },
            )
        }
        _ => None,
    };
    call.ok_or_else(|| not_served(method, &format!("/v1/projects/{rest}")))
}

/// A call below `/v3/projects/` (Resource Manager): `segment` is the one
/// segment after that prefix, such as `p:getIamPolicy`.
pub fn v3(method: &str, segment: &str) -> Result<Call, IamError> {
    let call = match split_verb(segment) {
        (project, Some(verb)) if !project.is_empty() && !project.contains('/') => policy_call(
            verb,
            method,
            // Resource Manager reads a policy with POST, not GET.
            "POST",
            Resource::Project {
                project: project.to_owned(),
            },
        ),
        _ => None,
    };
    call.ok_or_else(|| not_served(method, &format!("/v3/projects/{segment}")))
}

fn policy_call(verb: &str, method: &str, get_method: &str, resource: Resource) -> Option<Call> {
    match verb {
        "getIamPolicy" if method == get_method => Some(Call::GetPolicy(resource)),
        "setIamPolicy" if method == "POST" => Some(Call::SetPolicy(resource)),
        _ => None,
    }
}

/// `a/b:verb` → (`a/b`, `verb`); a colon before the last slash is not a verb.
fn split_verb(path: &str) -> (&str, Option<&str>) {
    match path.rsplit_once(':') {
        Some((head, verb)) if !verb.contains('/') && !verb.is_empty() => (head, Some(verb)),
        _ => (path, None),
    }
}

fn not_served(method: &str, path: &str) -> IamError {
    IamError::NotFound(format!(
        "The local cloud does not serve {method} {path}: of IAM it serves service accounts \
         (create, get, list, delete) and getIamPolicy/setIamPolicy on projects, secrets and \
         Artifact Registry repositories"
    ))
}
