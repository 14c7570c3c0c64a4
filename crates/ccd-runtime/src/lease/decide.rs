//! The election's decisions, as pure functions of what was seen and the
//! time: the elector does the reading, writing and sleeping around them.

use tokio::time::Instant;

use super::LeaseTimes;

/// What a leader holds between renewals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leading {
    /// The acquisition's generation.
    pub epoch: u64,
    /// The generation of this leader's last write: the next one is
    /// conditional on it.
    pub generation: u64,
    /// When the last successful write was started: the renew deadline runs
    /// from here, since the write may have landed any time after.
    pub renewed_at: Instant,
    /// Whether the object names the epoch yet (the acquiring write cannot).
    pub stamped: bool,
    /// After a failed renewal: not before this.
    pub retry_at: Option<Instant>,
}

/// What a leader does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaderNext {
    /// Write the lease again, conditional on the last generation.
    Renew,
    /// The renew deadline passed: stop acting, become a standby.
    StepDown,
    /// Nothing until then.
    Sleep(Instant),
}

pub(crate) fn leader_next(leading: &Leading, now: Instant, times: &LeaseTimes) -> LeaderNext {
    if now >= leading.renewed_at + times.renew_deadline {
        return LeaderNext::StepDown;
    }
    let due = match (leading.stamped, leading.retry_at) {
        (_, Some(retry)) => retry,
        (false, None) => now,
        (true, None) => leading.renewed_at + times.renew_every,
    };
    match now >= due {
        true => LeaderNext::Renew,
        false => LeaderNext::Sleep(due.min(leading.renewed_at + times.renew_deadline)),
    }
}

/// The generation a standby last read, and when it first saw it on its own
/// clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub generation: u64,
    pub since: Instant,
}

/// What a standby does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StandbyNext {
    /// Write the lease: create it (`None`) or take over this generation.
    Acquire(Option<u64>),
    /// Look again then.
    Sleep(Instant),
}

/// After a standby read the lease (`observed` is its generation, `None`
/// when there is no lease): the updated memory and the next step. The lease
/// expires when the same generation has been seen for the whole lease;
/// any change, a renewal or a hand edit, starts the wait again.
pub(crate) fn standby_next(
    seen: Option<Seen>,
    observed: Option<u64>,
    now: Instant,
    times: &LeaseTimes,
) -> (Option<Seen>, StandbyNext) {
    let Some(generation) = observed else {
        return (None, StandbyNext::Acquire(None));
    };
    let seen = match seen {
        Some(s) if s.generation == generation => s,
        _ => Seen {
            generation,
            since: now,
        },
    };
    let expires = seen.since + times.lease;
    let next = match now >= expires {
        true => StandbyNext::Acquire(Some(generation)),
        false => StandbyNext::Sleep((now + times.retry_every).min(expires)),
    };
    (Some(seen), next)
}
