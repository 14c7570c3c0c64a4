//! A reconciler that runs only while this process leads.

use std::sync::Arc;
use std::time::Duration;

use crate::{Action, Reconciler};

use super::Leadership;

/// Wraps a reconciler so a standby does nothing but look again after
/// `standby_poll`: the leader reconciles, and a standby that becomes leader
/// picks its keys up within that time.
#[derive(Debug)]
pub struct Gated<R> {
    inner: R,
    leadership: Leadership,
    standby_poll: Duration,
}

impl<R> Gated<R> {
    /// `inner`, run only while `leadership` says this process leads.
    pub fn new(inner: R, leadership: Leadership, standby_poll: Duration) -> Self {
        Self {
            inner,
            leadership,
            standby_poll,
        }
    }
}

impl<T: Send + Sync + 'static, R: Reconciler<T>> Reconciler<T> for Gated<R> {
    type Error = R::Error;

    async fn reconcile(&self, key: &str, object: Option<Arc<T>>) -> Result<Action, R::Error> {
        if self.leadership.epoch().is_none() {
            return Ok(Action::Requeue(self.standby_poll));
        }
        self.inner.reconcile(key, object).await
    }
}
