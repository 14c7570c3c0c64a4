//! Errors in the shape Compute Engine sends them, so clients classify them
//! exactly as they would against Google (HTTP status plus `errors[].reason`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Compute's reason, e.g. `notFound`, `alreadyExists`, `conditionNotMet`.
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "notFound",
            format!("The resource '{key}' was not found"),
        )
    }

    pub fn already_exists(key: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "alreadyExists",
            format!("The resource '{key}' already exists"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn required(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "required",
            format!("Required field '{field}' not specified"),
        )
    }

    pub fn stale_fingerprint(key: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "conditionNotMet",
            format!(
                "Supplied fingerprint does not match current fingerprint of '{key}'. Read the resource again and retry."
            ),
        )
    }

    pub fn in_use(key: &str, by: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "resourceInUseByAnotherResource",
            format!("The resource '{key}' is already being used by '{by}'"),
        )
    }

    pub fn method_not_found(verb: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "notFound",
            format!("No method {verb} /compute/v1/{path}"),
        )
    }

    /// The `google.rpc.Code` name Google puts in `error.status`.
    fn rpc_status(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 if self.reason == "rateLimitExceeded" => "RESOURCE_EXHAUSTED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ALREADY_EXISTS",
            412 => "FAILED_PRECONDITION",
            415 => "INVALID_ARGUMENT",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            "status": self.rpc_status(),
        }})
    }

    /// The `error` of a failed Operation: codes are upper-case words there.
    pub fn operation_error(&self) -> Value {
        let code = match self.reason {
            "notFound" => "RESOURCE_NOT_FOUND",
            "alreadyExists" => "RESOURCE_ALREADY_EXISTS",
            "resourceInUseByAnotherResource" => "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
            "conditionNotMet" => "CONDITION_NOT_MET",
            _ => "INVALID_USAGE",
        };
        json!({"errors": [{"code": code, "message": self.message}]})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
