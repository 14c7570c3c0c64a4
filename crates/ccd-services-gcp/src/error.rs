//! Why a step failed, in words a user can act on: an error someone can fix
//! names the resource and the fix.

use google_cloud_gax::error::Error as ApiError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcpServiceError {
    /// The controller's configuration lacks or misnames something: the
    /// field and the fix.
    #[error("{0}")]
    Config(String),
    /// The spec asks for something the rules refuse: the field and the fix.
    #[error("{0}")]
    Invalid(String),
    /// Something of the name exists and is not what ccd would make.
    #[error("{resource}: {message}")]
    Conflict { resource: String, message: String },
    /// The controller's account may not make the call.
    #[error(
        "{resource}: the controller's service account lacks {permission} ({message}): \
         grant it a role with that permission"
    )]
    Denied {
        resource: String,
        permission: &'static str,
        message: String,
    },
    /// Google answered with another error.
    #[error("{resource}: {message}")]
    Api {
        resource: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        message: String,
        #[source]
        source: ApiError,
    },
    /// A long-running operation ended in an error, or did not end in time.
    #[error("{resource}: {message}")]
    Operation { resource: String, message: String },
}

impl From<ccd_services::ServiceError> for GcpServiceError {
    fn from(e: ccd_services::ServiceError) -> Self {
        GcpServiceError::Invalid(e.to_string())
    }
}

impl GcpServiceError {
    /// The error of a call on `resource` that needs `permission`.
    pub(crate) fn api(resource: &str, permission: &'static str, e: ApiError) -> Self {
        let status = http_status(&e);
        let message = e
            .status()
            .map_or_else(|| e.to_string(), |s| s.message.clone());
        match status {
            Some(403) => GcpServiceError::Denied {
                resource: resource.to_owned(),
                permission,
                message,
            },
            _ => GcpServiceError::Api {
                resource: resource.to_owned(),
                status,
                message,
                source: e,
            },
        }
    }

    /// The HTTP status Google answered, for a failed call.
    pub fn status(&self) -> Option<u16> {
        match self {
            GcpServiceError::Api { status, .. } => *status,
            GcpServiceError::Denied { .. } => Some(403),
            _ => None,
        }
    }
}

/// The HTTP status of a failed call: the answer's, or for a gRPC call
/// (Cloud Storage's control client) the one its code maps to.
pub(crate) fn http_status(e: &ApiError) -> Option<u16> {
    use google_cloud_gax::error::rpc::Code;
    e.http_status_code().or_else(|| {
        e.status().and_then(|s| match s.code {
            Code::NotFound => Some(404),
            Code::PermissionDenied => Some(403),
            Code::AlreadyExists | Code::Aborted => Some(409),
            Code::FailedPrecondition => Some(412),
            Code::InvalidArgument => Some(400),
            _ => None,
        })
    })
}

/// Whether the call failed because the resource does not exist.
pub(crate) fn not_found(e: &ApiError) -> bool {
    http_status(e) == Some(404)
}

/// Whether the call failed because the resource exists already, or (IAM) the
/// policy changed since it was read.
pub(crate) fn conflict(e: &ApiError) -> bool {
    http_status(e) == Some(409)
}
