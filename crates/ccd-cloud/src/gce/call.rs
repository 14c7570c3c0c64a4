//! How every Compute call is made: rate limited, retried on throttling with
//! back-off, mutations made idempotent by a request id, operations waited on
//! under a deadline and checked for their error, failures classified.

use std::future::Future;
use std::time::Duration;

use ccd_runtime::RateLimiter;
use google_cloud_compute_v1::errors::OperationError;
use google_cloud_compute_v1::model::Operation;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::StatusDetails;
use google_cloud_gax::polling_error_policy::PollingErrorPolicy;
use google_cloud_gax::polling_state::PollingState;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicy};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use google_cloud_lro::Poller;

use super::GceCloud;
use crate::CloudError;

/// What went wrong, finer than [`CloudError`] where the adapter itself reacts
/// (409 adopt, 412 re-read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    NotFound,
    AlreadyExists,
    Stale,
    InUse,
    Throttled,
    Unavailable,
    Timeout,
    Invalid,
    Other,
    /// A read-only view refused a mutation.
    WouldChange,
    /// This controller does not lead (any more): it sends no mutation.
    NotLeader,
    /// Found by name, but not marked as ccd's for the app.
    NotOwned,
}

#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: Kind,
    pub resource: String,
    pub message: String,
    pub after: Duration,
}

impl Failure {
    pub(crate) fn new(kind: Kind, resource: &str, message: impl Into<String>) -> Self {
        Failure {
            kind,
            resource: resource.to_owned(),
            message: message.into(),
            after: Duration::ZERO,
        }
    }
}

impl From<Failure> for CloudError {
    fn from(f: Failure) -> Self {
        let (resource, message) = (f.resource, f.message);
        match f.kind {
            Kind::NotFound => CloudError::NotFound { resource },
            Kind::AlreadyExists | Kind::Stale => CloudError::Conflict { resource, message },
            Kind::InUse => CloudError::InUse { resource, message },
            Kind::Throttled => CloudError::Throttled { resource, message },
            Kind::Timeout => CloudError::Timeout {
                resource,
                after: f.after,
            },
            Kind::Invalid => CloudError::Invalid { resource, message },
            Kind::Unavailable | Kind::Other => CloudError::Other { resource, message },
            Kind::WouldChange => CloudError::WouldChange {
                resource,
                change: message,
            },
            Kind::NotOwned => CloudError::NotOwned { resource, message },
            Kind::NotLeader => CloudError::NotLeader { resource },
        }
    }
}

pub(crate) type Outcome<T> = Result<T, Failure>;

/// Compute's `errors[].reason` of a failed call, as gax keeps it (ErrorInfo).
fn reason(e: &GaxError) -> Option<&str> {
    e.status()?.details.iter().find_map(|d| match d {
        StatusDetails::ErrorInfo(info) => Some(info.reason.as_str()),
        _ => None,
    })
}

fn kind_of(e: &GaxError) -> Kind {
    // A retry loop that gave up wraps the last error it saw.
    if e.is_exhausted()
        && let Some(inner) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<GaxError>())
    {
        return kind_of(inner);
    }
    match (e.http_status_code(), reason(e)) {
        (Some(404), _) => Kind::NotFound,
        (Some(409), _) => Kind::AlreadyExists,
        (Some(412), _) => Kind::Stale,
        (Some(400), Some("resourceInUseByAnotherResource")) => Kind::InUse,
        (Some(429), _) | (Some(403), Some("rateLimitExceeded" | "userRateLimitExceeded")) => {
            Kind::Throttled
        }
        (Some(503), _) => Kind::Unavailable,
        (Some(400), _) => Kind::Invalid,
        _ if e.is_timeout() => Kind::Timeout,
        _ if e.is_io() || e.is_connect() => Kind::Unavailable,
        _ => Kind::Other,
    }
}

pub(crate) fn classify(resource: &str, e: &GaxError) -> Failure {
    let message = e
        .status()
        .map_or_else(|| e.to_string(), |s| s.message.clone());
    let kind = kind_of(e);
    // A 404 on a change may be about a resource it refers to (a template, a
    // health check): Compute names the missing one, so the error does too.
    let missing = (kind == Kind::NotFound)
        .then(|| missing_resource(&message))
        .flatten()
        .map(str::to_owned);
    Failure::new(kind, missing.as_deref().unwrap_or(resource), message)
}

/// `The resource 'projects/p/global/instanceTemplates/t' was not found` →
/// `global/instanceTemplates/t`.
fn missing_resource(message: &str) -> Option<&str> {
    let quoted = message.split('\'').nth(1)?;
    let path = quoted.split_once("/compute/v1/").map_or(quoted, |(_, p)| p);
    let path = path
        .strip_prefix("projects/")
        .and_then(|p| p.split_once('/'))
        .map_or(path, |(_, rest)| rest);
    path.contains('/').then_some(path)
}

/// The failure a DONE operation reports (Compute's upper-case error codes).
fn classify_operation(resource: &str, e: &OperationError) -> Failure {
    let OperationError::Generic(g) = e else {
        return Failure::new(Kind::Other, resource, e.to_string());
    };
    let first = g.details.as_ref().and_then(|d| d.errors.first());
    let code = first.and_then(|f| f.code.as_deref()).unwrap_or_default();
    let message = first
        .and_then(|f| f.message.clone())
        .or_else(|| g.message.clone())
        .unwrap_or_default();
    let kind = match (code, g.status_code) {
        ("RESOURCE_NOT_FOUND", _) | (_, Some(404)) => Kind::NotFound,
        ("RESOURCE_ALREADY_EXISTS", _) | ("ALREADY_EXISTS", _) | (_, Some(409)) => {
            Kind::AlreadyExists
        }
        ("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", _) => Kind::InUse,
        ("CONDITION_NOT_MET", _) | (_, Some(412)) => Kind::Stale,
        ("QUOTA_EXCEEDED" | "RATE_LIMIT_EXCEEDED", _) | (_, Some(429)) => Kind::Throttled,
        (_, Some(400)) => Kind::Invalid,
        _ => Kind::Other,
    };
    let missing = (kind == Kind::NotFound)
        .then(|| missing_resource(&message))
        .flatten();
    Failure::new(
        kind,
        missing.unwrap_or(resource),
        format!("{code}: {message}"),
    )
}

pub(crate) fn is_throttled(e: &GaxError) -> bool {
    matches!(kind_of(e), Kind::Throttled | Kind::Unavailable)
}

/// Pauses every call through the adapter's limiter after a rate-limit answer
/// (429, 403 rateLimitExceeded): the quota is the project's, so the calls of
/// other reconciles would meet the same answer. The retried call itself waits
/// for the SDK's back-off, which starts at the same length.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    pub limiter: RateLimiter,
    pub pause: Duration,
}

impl Throttle {
    fn note(&self, e: &GaxError) {
        if kind_of(e) == Kind::Throttled {
            tracing::debug!(pause = ?self.pause, error = %e, "throttled: every call pauses");
            self.limiter.pause(self.pause);
        }
    }
}

/// The adapter's token bucket: `rate` calls per second, in bursts of up to
/// a second's worth.
pub(crate) fn limiter(rate: f64) -> Result<RateLimiter, crate::CloudError> {
    // Saturating: a burst above u32::MAX is no limit anyway.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let burst = rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
    RateLimiter::new(rate, burst).map_err(|e| crate::CloudError::Invalid {
        resource: "GceConfig.rate_limit_per_sec".to_owned(),
        message: e.to_string(),
    })
}

/// Aip194Strict plus Compute's throttling (429, 403 rateLimitExceeded),
/// which the SDK never retries by itself. Retrying a mutation is safe only
/// because every one carries a request id and is marked idempotent.
#[derive(Debug)]
pub(crate) struct ComputeRetry(pub Throttle);

impl RetryPolicy for ComputeRetry {
    fn on_error(&self, state: &RetryState, error: GaxError) -> RetryResult {
        self.0.note(&error);
        if state.idempotent && is_throttled(&error) {
            return RetryResult::Continue(error);
        }
        Aip194Strict.on_error(state, error)
    }
}

/// Polls of an operation go on through throttling and outages: the overall
/// wait is bounded by `op_timeout` instead.
#[derive(Debug)]
pub(crate) struct ComputePollErrors(pub Throttle);

impl PollingErrorPolicy for ComputePollErrors {
    fn on_error(&self, _state: &PollingState, error: GaxError) -> RetryResult {
        self.0.note(&error);
        if is_throttled(&error) || error.is_transient_and_before_rpc() {
            RetryResult::Continue(error)
        } else {
            RetryResult::Permanent(error)
        }
    }
}

/// The tracing target of one debug line per call sent (`RUST_LOG=ccd_cloud::calls=debug`).
pub(crate) const CALLS: &str = "ccd_cloud::calls";

/// A fresh request id: Compute answers a repeated one with the first call's operation.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl GceCloud {
    /// One read, after a token from the rate limiter.
    pub(crate) async fn read<T>(
        &self,
        resource: &str,
        call: impl Future<Output = google_cloud_gax::Result<T>>,
    ) -> Outcome<T> {
        self.limiter.acquire().await;
        self.counters.read();
        tracing::debug!(target: CALLS, resource, "read");
        call.await.map_err(|e| classify(resource, &e))
    }

    /// A read where absence is an answer.
    pub(crate) async fn find<T>(
        &self,
        resource: &str,
        call: impl Future<Output = google_cloud_gax::Result<T>>,
    ) -> Outcome<Option<T>> {
        let found = match self.read(resource, call).await {
            Ok(v) => Some(v),
            Err(f) if f.kind == Kind::NotFound => None,
            Err(f) => return Err(f),
        };
        self.seen.saw(resource, found.is_some());
        Ok(found)
    }

    /// A resource ccd names, created when missing; what exists is returned
    /// for the caller to check for ccd's mark and compare (`None`: created
    /// now). One call for what is new or known: a resource this adapter saw
    /// exist is read first, anything else inserted first (`seen.rs`), and a
    /// 409 is always read, so nothing found by name escapes the check. A
    /// read-only view reads, and refuses the insert.
    pub(crate) async fn find_or_insert<T, G, P>(
        &self,
        resource: &str,
        get: impl Fn() -> G,
        insert: impl FnOnce() -> P,
    ) -> Outcome<Option<T>>
    where
        G: Future<Output = google_cloud_gax::Result<T>>,
        P: Poller<Operation, Operation>,
    {
        if (self.read_only || self.seen.exists(resource))
            && let Some(found) = self.find(resource, get()).await?
        {
            return Ok(Some(found));
        }
        self.refuse_if_read_only(resource, "is missing and would be created")?;
        match self.mutate(resource, insert()).await {
            Ok(_) => {
                tracing::info!(resource, "created");
                self.seen.saw(resource, true);
                Ok(None)
            }
            Err(f) if f.kind == Kind::AlreadyExists => match self.find(resource, get()).await? {
                Some(found) => Ok(Some(found)),
                None => Err(Failure::new(
                    Kind::Stale,
                    resource,
                    "exists, then vanished before it could be read",
                )),
            },
            Err(f) => Err(f),
        }
    }

    /// Sends a mutation (built with a request id and idempotency) and waits
    /// for its operation to be DONE, within `op_timeout`; a DONE operation
    /// that failed is a failure (`until_done` alone would call it a success).
    pub(crate) async fn mutate<P>(&self, resource: &str, poller: P) -> Outcome<Operation>
    where
        P: Poller<Operation, Operation>,
    {
        self.refuse_if_read_only(resource, "differs from the spec and would be updated")?;
        // On the heap: the SDK's poller is large, and the futures of the
        // passes above hold this one (debug builds overflowed a worker's stack).
        let wait = Box::pin(self.until_done(resource, poller));
        let op = match tokio::time::timeout(self.config.op_timeout, wait).await {
            Ok(result) => result?,
            Err(_) => {
                let mut f = Failure::new(Kind::Timeout, resource, "operation not done in time");
                f.after = self.config.op_timeout;
                return Err(f);
            }
        };
        op.to_result().map_err(|e| classify_operation(resource, &e))
    }

    /// The one gate every mutation passes: a read-only view sends none.
    pub(crate) fn refuse_if_read_only(&self, resource: &str, change: &str) -> Outcome<()> {
        if self.read_only {
            return Err(Failure::new(Kind::WouldChange, resource, change));
        }
        self.refuse_unless_leading(resource)
    }

    /// The fence, checked again right before a mutation is sent: the rate
    /// limiter may have held it past the lease's renew deadline.
    pub(crate) fn refuse_unless_leading(&self, resource: &str) -> Outcome<()> {
        match self.fence.epoch() {
            Some(_) => Ok(()),
            None => Err(Failure::new(Kind::NotLeader, resource, "not leading")),
        }
    }

    /// A create: 409 means it exists already (ours, from an earlier attempt, or
    /// a concurrent one), which is what was wanted.
    pub(crate) async fn create<P>(&self, resource: &str, poller: P) -> Outcome<()>
    where
        P: Poller<Operation, Operation>,
    {
        self.refuse_if_read_only(resource, "is missing and would be created")?;
        match self.mutate(resource, poller).await {
            Ok(_) => {
                tracing::info!(resource, "created");
                self.seen.saw(resource, true);
                Ok(())
            }
            Err(f) if f.kind == Kind::AlreadyExists => {
                tracing::debug!(resource, "exists already: adopted");
                self.seen.saw(resource, true);
                Ok(())
            }
            Err(f) => Err(f),
        }
    }

    /// A delete: 404 means it is gone, which is what was wanted.
    pub(crate) async fn remove<P>(&self, resource: &str, poller: P) -> Outcome<()>
    where
        P: Poller<Operation, Operation>,
    {
        self.refuse_if_read_only(resource, "would be deleted")?;
        let done = match self.mutate(resource, poller).await {
            Ok(_) => {
                tracing::info!(resource, "deleted");
                Ok(())
            }
            Err(f) if f.kind == Kind::NotFound => Ok(()),
            Err(f) => Err(f),
        };
        if done.is_ok() {
            self.seen.saw(resource, false);
        }
        done
    }
}

impl GceCloud {
    /// A delete of what ccd made for `app` under this name: absent is done,
    /// and a resource someone else made is left alone, never deleted.
    pub(crate) async fn remove_owned<T, P>(
        &self,
        app: &str,
        resource: &str,
        get: impl Future<Output = google_cloud_gax::Result<T>>,
        poller: P,
    ) -> Outcome<()>
    where
        T: super::marker::Described,
        P: Poller<Operation, Operation>,
    {
        match self.find(resource, get).await? {
            None => Ok(()),
            Some(found) => match super::marker::check_owned(resource, app, &found) {
                Ok(()) => self.remove(resource, poller).await,
                Err(f) => {
                    tracing::warn!(resource, app, reason = %f.message, "not deleted");
                    Ok(())
                }
            },
        }
    }
}

/// Runs `attempt` (read, change, write with the read fingerprint) again once
/// when the fingerprint turned out stale; a second stale one is a conflict.
pub(crate) async fn with_fresh_fingerprint<T, F, Fut>(mut attempt: F) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<T>>,
{
    match attempt().await {
        Err(f) if f.kind == Kind::Stale => {
            tracing::debug!(resource = %f.resource, "fingerprint was stale; re-reading");
            attempt().await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use google_cloud_compute_v1::model::operation;

    fn failed_op(code: &str, http: i32) -> OperationError {
        let op = Operation::new()
            .set_status(operation::Status::Done)
            .set_http_error_status_code(http)
            .set_error(
                operation::Error::new().set_errors([operation::error::Errors::new()
                    .set_code(code)
                    .set_message("m")]),
            );
        match op.to_result() {
            Err(e) => e,
            Ok(_) => panic!("a failed operation"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_adapters_bucket_holds_a_seconds_worth_then_spaces_calls_by_the_rate() {
        let limiter = limiter(10.0).unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..30 {
            limiter.acquire().await;
        }
        // 10 from the full bucket, 20 more at 10 per second.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let slow = super::limiter(0.5).unwrap();
        slow.acquire().await;
        let start = tokio::time::Instant::now();
        slow.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2), "a burst of one");
    }

    #[test]
    fn a_rate_that_limits_nothing_is_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = limiter(rate).unwrap_err();
            assert!(e.to_string().contains("rate_limit_per_sec"), "{e}");
        }
    }

    #[test]
    fn a_missing_reference_is_named() {
        let m = "The resource 'projects/p/global/instanceTemplates/web-1' was not found";
        assert_eq!(missing_resource(m), Some("global/instanceTemplates/web-1"));
        assert_eq!(missing_resource("not found"), None);
    }

    #[test]
    fn failed_operations_are_classified() {
        assert_eq!(
            classify_operation("r", &failed_op("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", 400)).kind,
            Kind::InUse
        );
        assert_eq!(
            classify_operation("r", &failed_op("RESOURCE_ALREADY_EXISTS", 409)).kind,
            Kind::AlreadyExists
        );
        assert_eq!(
            classify_operation("r", &failed_op("RESOURCE_NOT_FOUND", 404)).kind,
            Kind::NotFound
        );
        assert_eq!(
            classify_operation("r", &failed_op("INVALID_USAGE", 400)).kind,
            Kind::Invalid
        );
    }
}
