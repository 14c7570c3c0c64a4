//! IAM's errors in Google's JSON shape, `{"error": {"code", "message",
//! "status"}}`, which Google's clients read into a status and its code.
//! Compute's shape (`crate::error::ApiError`) has no ABORTED, which a stale
//! etag needs, so these have their own type.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A policy written with an etag that is no longer the stored one.
    #[error(
        "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."
    )]
    Aborted,
    /// The change could not be saved and was undone; clients retry a 503.
    #[error("{0}. Retry the request.")]
    Unavailable(String),
}

impl From<crate::store::StoreError> for IamError {
    fn from(e: crate::store::StoreError) -> Self {
        IamError::Unavailable(e.to_string())
    }
}

impl IamError {
    pub fn code(&self) -> StatusCode {
        match self {
            IamError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            IamError::NotFound(_) => StatusCode::NOT_FOUND,
            IamError::AlreadyExists(_) | IamError::Aborted => StatusCode::CONFLICT,
            IamError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `google.rpc.Code` name Google puts in `error.status`.
    pub fn status(&self) -> &'static str {
        match self {
            IamError::InvalidArgument(_) => "INVALID_ARGUMENT",
            IamError::NotFound(_) => "NOT_FOUND",
            IamError::AlreadyExists(_) => "ALREADY_EXISTS",
            IamError::Aborted => "ABORTED",
            IamError::Unavailable(_) => "UNAVAILABLE",
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.code().as_u16(),
            "message": self.to_string(),
            "status": self.status(),
        }})
    }
}

impl IntoResponse for IamError {
    fn into_response(self) -> Response {
        (self.code(), axum::Json(self.body())).into_response()
    }
}
