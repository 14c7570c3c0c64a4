//! Retry policies of routes (GCE's URL map `retryPolicy`, Envoy's `retry_on`).
//!
//! A failed try is classed as one [`Failure`]; the policy's conditions say which classes are
//! retried, always on another backend than those already tried. The classes follow Envoy, which
//! runs Google's Application Load Balancers:
//!
//! | failure                                      | retried by                                     |
//! | -------------------------------------------- | ---------------------------------------------- |
//! | connect failure, refused connection          | `connect-failure`, `refused-stream`, `reset`, `gateway-error`, `5xx` |
//! | reset before the response, per-try timeout   | `reset`, `gateway-error`, `5xx`                |
//! | 502, 503 or 504 response                     | `gateway-error`, `5xx`                         |
//! | other 5xx response                           | `5xx`                                          |
//! | 409 response                                 | `retriable-4xx`                                |
//!
//! Envoy handles a per-try timeout as a local reset and answers it with a 504, hence its place.
//! Compute's URL maps take every condition but `reset` (their `gateway-error` covers resets).

use std::time::Duration;

use http::StatusCode;

/// When a try is retried (Compute's `retryConditions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCondition {
    /// `5xx`: any 5xx response, and every failure without a response.
    ServerError,
    /// `gateway-error`: 502, 503 and 504 responses, and the failures the proxy itself answers
    /// with one (connect failures, resets, per-try timeouts).
    GatewayError,
    /// `connect-failure`: no connection could be made (refused, timed out, denied).
    ConnectFailure,
    /// `refused-stream`: the backend refused the request before reading it. Over HTTP/1.1
    /// that is a connection it refused or closed before the request went out.
    RefusedStream,
    /// `reset`: no response at all (disconnect, reset, per-try timeout). Envoy's; Compute's
    /// URL maps do not take it.
    Reset,
    /// `retriable-4xx`: a 409 response.
    Retriable4xx,
}

impl RetryCondition {
    /// The condition a URL map's `retryConditions` names `name`; `None` for gRPC conditions,
    /// which an HTTP/1.1 backend never triggers, and names Compute does not take.
    pub fn from_compute(name: &str) -> Option<Self> {
        Some(match name {
            "5xx" => Self::ServerError,
            "gateway-error" => Self::GatewayError,
            "connect-failure" => Self::ConnectFailure,
            "refused-stream" => Self::RefusedStream,
            "retriable-4xx" => Self::Retriable4xx,
            _ => return None,
        })
    }
}

/// How a route retries a failed request (GCE's `HttpRetryPolicy`).
///
/// A try that sent the request is only repeated when its body can be sent again: empty, or
/// read whole into memory (up to a cap) before the first try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Which failures are retried.
    pub conditions: Vec<RetryCondition>,
    /// Tries after the first, each on a backend not tried yet (Compute requires > 0).
    pub num_retries: u32,
    /// How long each try may wait for response headers; `None`: the backend service's
    /// timeout. All tries together never take longer than the service's timeout.
    pub per_try_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// Retries on `conditions`, `num_retries` times, each try bounded by `per_try_timeout`.
    pub fn new(
        conditions: impl IntoIterator<Item = RetryCondition>,
        num_retries: u32,
        per_try_timeout: Option<Duration>,
    ) -> Self {
        Self {
            conditions: conditions.into_iter().collect(),
            num_retries,
            per_try_timeout,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.num_retries == 0 {
            return Err("a retry policy needs numRetries > 0".to_owned());
        }
        if self.per_try_timeout.is_some_and(|t| t.is_zero()) {
            return Err("a retry policy's perTryTimeout must be positive".to_owned());
        }
        Ok(())
    }

    /// Whether a try that failed this way is retried.
    pub(crate) fn retries(&self, failure: Failure) -> bool {
        self.conditions
            .iter()
            .any(|&condition| retried_by(failure, condition))
    }
}

fn retried_by(failure: Failure, condition: RetryCondition) -> bool {
    use RetryCondition as C;
    match failure {
        Failure::Connect => condition != C::Retriable4xx,
        Failure::NoResponse => matches!(condition, C::Reset | C::GatewayError | C::ServerError),
        Failure::Status(status) => match condition {
            C::ServerError => status.is_server_error(),
            C::GatewayError => is_gateway_error(status),
            C::Retriable4xx => status == StatusCode::CONFLICT,
            C::ConnectFailure | C::RefusedStream | C::Reset => false,
        },
    }
}

/// How one try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The request never left: no connection, or the connection was refused or closed first.
    Connect,
    /// Sent, but no response headers came: reset, disconnect or per-try timeout.
    NoResponse,
    /// The backend answered with this status.
    Status(StatusCode),
}

/// 502, 503 or 504: what Envoy's `gateway-error` and outlier detection's gateway failures mean.
pub(crate) fn is_gateway_error(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(names: &[&str]) -> RetryPolicy {
        let condition = |name: &&str| match *name {
            "reset" => Some(RetryCondition::Reset),
            name => RetryCondition::from_compute(name),
        };
        RetryPolicy::new(names.iter().filter_map(condition), 1, None)
    }

    #[test]
    fn conditions_retry_what_envoy_retries() {
        let status = |code: u16| Failure::Status(StatusCode::from_u16(code).unwrap());
        let cases: [(&str, Failure, bool); 14] = [
            ("connect-failure", Failure::Connect, true),
            ("connect-failure", Failure::NoResponse, false),
            ("connect-failure", status(503), false),
            ("refused-stream", Failure::Connect, true),
            ("reset", Failure::Connect, true),
            ("reset", Failure::NoResponse, true),
            ("reset", status(502), false),
            ("gateway-error", Failure::NoResponse, true),
            ("gateway-error", status(504), true),
            ("gateway-error", status(500), false),
            ("5xx", status(500), true),
            ("5xx", Failure::NoResponse, true),
            ("retriable-4xx", status(409), true),
            ("retriable-4xx", Failure::Connect, false),
        ];
        for (name, failure, retried) in cases {
            assert_eq!(
                policy(&[name]).retries(failure),
                retried,
                "{name} {failure:?}"
            );
        }
        assert!(
            !policy(&["unavailable"]).retries(Failure::Connect),
            "gRPC only"
        );
        assert_eq!(RetryCondition::from_compute("reset"), None, "not Compute's");
        assert!(!policy(&["5xx"]).retries(status(404)));
    }

    #[test]
    fn a_policy_needs_retries_and_a_positive_timeout() {
        assert!(policy(&["5xx"]).validate().is_ok());
        let mut none = policy(&["5xx"]);
        none.num_retries = 0;
        assert!(none.validate().is_err());
        let zero = RetryPolicy::new([RetryCondition::Reset], 1, Some(Duration::ZERO));
        assert!(zero.validate().is_err());
    }
}
