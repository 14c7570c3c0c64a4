//! What `ccd up`'s service servers (redis-server, PostgreSQL) share: the
//! port they keep across restarts, and waiting for a fresh one to answer.

use std::future::Future;
use std::time::Duration;

/// The port a server had (`recorded`) when it is free, else a free one.
pub(crate) fn port_for(recorded: Option<u16>) -> Option<u16> {
    recorded
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .ok()
                .map(|a| a.port())
        })
}

/// Calls `check` every `pause` until it succeeds, at most `within`; the
/// last failure otherwise.
pub(crate) async fn answers<F, Fut>(
    within: Duration,
    pause: Duration,
    check: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= end {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
    }
}
