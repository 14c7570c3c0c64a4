//! The watcher and reflector: keeps the cache equal to the source and
//! triggers every key whose object changed.
//!
//! A full list fills the cache; change hints then re-read single keys; a
//! periodic full relist repairs whatever the hints missed (lost hints,
//! deletions a hint never reported, a source without hints at all).

use std::convert::Infallible;
use std::future::poll_fn;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::cache::Cache;
use crate::queue::Trigger;
use crate::source::{Changes, Source};

/// How the reflector paces its reads.
pub(crate) struct Pacing {
    pub(crate) relist_interval: Duration,
    pub(crate) list_backoff: Backoff,
}

/// Runs until dropped.
pub(crate) async fn reflect<S: Source>(
    source: &S,
    cache: &Cache<S::Object>,
    trigger: &Trigger,
    pacing: &Pacing,
) -> Infallible {
    // Subscribed before the first list, so a change made while it runs
    // still arrives as a hint afterwards.
    let mut changes = source.changes();
    if changes.is_none() {
        debug!("source has no change hints; relying on the periodic relist");
    }

    let mut failures = 0;
    loop {
        if relist(source, cache, trigger).await {
            break;
        }
        failures += 1;
        sleep(pacing.list_backoff.jittered_delay(failures)).await;
    }
    info!(
        objects = cache.len(),
        "cache ready after the first full list"
    );

    let mut next_relist = Instant::now() + pacing.relist_interval;
    failures = 0;
    loop {
        tokio::select! {
            hint = next_hint(&mut changes) => match hint {
                Some(key) => refresh(source, cache, trigger, key).await,
                None => {
                    warn!("change hints ended; relying on the periodic relist");
                    changes = None;
                }
            },
            () = sleep_until(next_relist) => {
                // A failed relist keeps the last complete state and retries
                // sooner than the regular interval.
                next_relist = if relist(source, cache, trigger).await {
                    failures = 0;
                    Instant::now() + pacing.relist_interval
                } else {
                    failures += 1;
                    Instant::now() + pacing.list_backoff.jittered_delay(failures)
                };
            }
        }
    }
}

/// Lists everything into the cache and triggers what changed; says whether
/// the list succeeded.
async fn relist<S: Source>(source: &S, cache: &Cache<S::Object>, trigger: &Trigger) -> bool {
    match source.list().await {
        Ok(list) => {
            let changed = cache.replace_all(list);
            if !changed.is_empty() {
                debug!(changed = changed.len(), "full list changed the cache");
            }
            trigger.push_all(changed);
            true
        }
        Err(error) => {
            warn!(error = %error, "full list failed; will retry");
            false
        }
    }
}

/// Re-reads one key that a hint says changed.
async fn refresh<S: Source>(source: &S, cache: &Cache<S::Object>, trigger: &Trigger, key: String) {
    match source.get(&key).await {
        Ok(object) => {
            if cache.apply(&key, object) {
                trigger.push(key);
            }
        }
        Err(error) => {
            warn!(key, error = %error, "could not read a changed object; the next relist will");
        }
    }
}

/// The next hint, or never if there are none.
async fn next_hint(changes: &mut Option<Changes>) -> Option<String> {
    match changes {
        Some(stream) => poll_fn(|cx| stream.as_mut().poll_next(cx)).await,
        None => std::future::pending().await,
    }
}
