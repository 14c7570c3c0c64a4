//! How a mutation's operation is waited for: the call that sends it
//! (the poller's first poll), then Compute's `wait` on the operation, which
//! holds each call until the operation is DONE (or for about two minutes):
//! one call for most operations, where polling with back-off took one per
//! second or more of the operation's life. An answer that is DONE at once
//! needs nothing more. Every call takes a token from the rate limiter.

use std::time::Duration;

use google_cloud_compute_v1::model::{Operation, operation};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::options::RequestOptionsBuilder as _;
use google_cloud_lro::{Poller, PollingResult};

use super::GceCloud;
use super::call::{CALLS, Failure, Kind, Outcome, classify, is_throttled};
use super::marker::name_of;

/// What one call said of the operation.
enum Answer {
    Done(Result<Operation, Failure>),
    Running(Option<Operation>),
    /// Throttled, or not sent: ask again after a pause.
    Failed(GaxError),
}

impl GceCloud {
    /// Sends the mutation and waits until its operation is DONE; the caller
    /// bounds the whole by `op_timeout` and checks the operation's error.
    pub(crate) async fn until_done<P>(&self, resource: &str, mut poller: P) -> Outcome<Operation>
    where
        P: Poller<Operation, Operation>,
    {
        let first = self.config.initial_backoff;
        let (mut delay, max) = (
            first.min(Duration::from_secs(1)),
            first.max(Duration::from_secs(10)),
        );
        let mut sent = false;
        let mut running: Option<Operation> = None;
        loop {
            let waited = sent && running.as_ref().is_some_and(|o| o.name.is_some());
            self.limiter.acquire().await;
            if !sent {
                self.refuse_unless_leading(resource)?;
            }
            self.counters.poll(!sent);
            let what = match (sent, waited) {
                (false, _) => "mutation",
                (true, true) => "operation wait",
                (true, false) => "operation poll",
            };
            tracing::debug!(target: CALLS, resource, "{what}");
            let asked = tokio::time::Instant::now();
            sent = true;
            let answer = match running.as_ref().filter(|_| waited) {
                Some(op) => self.wait(resource, op).await,
                None => match poller.poll().await {
                    None => Answer::Done(Err(Failure::new(
                        Kind::Other,
                        resource,
                        "the operation vanished while polled",
                    ))),
                    Some(PollingResult::Completed(r)) => {
                        Answer::Done(r.map_err(|e| classify(resource, &e)))
                    }
                    Some(PollingResult::InProgress(op)) => Answer::Running(op),
                    Some(PollingResult::PollingError(e)) => Answer::Failed(e),
                },
            };
            let paused = match answer {
                Answer::Done(result) => return result,
                Answer::Running(op) => {
                    if op.is_some() {
                        running = op;
                    }
                    // A wait the server held needs no pause; one it answered
                    // at once (busy) does, and so does a plain poll.
                    !waited || asked.elapsed() < Duration::from_secs(1)
                }
                Answer::Failed(e) => {
                    tracing::debug!(resource, error = %e, "asking after an operation failed; asking on");
                    true
                }
            };
            // From the send straight to the first wait: Compute holds that one.
            let first_wait = !waited && running.as_ref().is_some_and(|o| o.name.is_some());
            if paused && !first_wait {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(max);
            }
        }
    }

    /// One `wait` on the operation, in its scope (zone, region or global).
    async fn wait(&self, resource: &str, op: &Operation) -> Answer {
        let (p, name) = (self.project(), op.name.as_deref().unwrap_or_default());
        let answer = if let Some(zone) = op.zone.as_deref() {
            let wait = self.c.zone_operations.wait().set_project(p);
            let wait = wait.set_zone(name_of(zone)).set_operation(name);
            wait.with_idempotency(true).send().await
        } else if let Some(region) = op.region.as_deref() {
            let wait = self.c.region_operations.wait().set_project(p);
            let wait = wait.set_region(name_of(region)).set_operation(name);
            wait.with_idempotency(true).send().await
        } else {
            let wait = self.c.global_operations.wait().set_project(p);
            let wait = wait.set_operation(name);
            wait.with_idempotency(true).send().await
        };
        match answer {
            Ok(op) if op.status == Some(operation::Status::Done) => Answer::Done(Ok(op)),
            Ok(op) => Answer::Running(Some(op)),
            Err(e) if is_throttled(&e) || e.is_transient_and_before_rpc() => Answer::Failed(e),
            // About the operation, not the resource: never a 404 that a
            // delete would take for "gone".
            Err(e) => Answer::Done(Err(Failure::new(
                Kind::Other,
                resource,
                format!("waiting for its operation failed: {e}"),
            ))),
        }
    }
}
