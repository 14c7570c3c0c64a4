//! What a controller watches: a keyed set of objects that can be listed,
//! read one at a time, and (optionally) that hints when keys change.

use std::future::Future;
use std::pin::Pin;

use futures_core::Stream;

/// A stream of keys that may have changed. Hints only: a key may repeat,
/// and a hint may be lost; the periodic full relist repairs both.
pub type Changes = Pin<Box<dyn Stream<Item = String> + Send>>;

/// A store of objects keyed by name (for ccd: app specs keyed by app name).
///
/// The controller only ever reads through this trait; it never writes.
///
/// `list` and `get` are polled from the controller's own loop (the reflector
/// runs inside it): they must not block. Work that takes CPU time, such as
/// parsing what was read, belongs on the blocking pool
/// (`tokio::task::spawn_blocking`), or every reconcile waits for it.
pub trait Source: Send + Sync + 'static {
    /// The object kept per key. `PartialEq` lets the reflector trigger a
    /// reconcile only when an object really changed, rather than on every
    /// periodic relist.
    type Object: PartialEq + Send + Sync + 'static;
    /// Why a read failed; reads are retried, so this is logged, not fatal.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every object now: the full, consistent list.
    fn list(&self)
    -> impl Future<Output = Result<Vec<(String, Self::Object)>, Self::Error>> + Send;

    /// Change hints, subscribed once when the controller starts (before its
    /// first list, so nothing changing in between is missed). `None` means
    /// this source has no notifications: the periodic relist does all the work.
    fn changes(&self) -> Option<Changes>;

    /// One object now; `None` if it is gone.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Self::Object>, Self::Error>> + Send;
}
