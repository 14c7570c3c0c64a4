//! Leader election on a lease object in the store, so that of several
//! controllers on one store exactly one changes the cloud.
//!
//! The lease is one object written only with a generation precondition
//! (the store refuses a write when the object moved since it was read).
//! The leader rewrites it every `renew_every`; a standby takes it over once
//! it has seen the same generation for `lease` on its own monotonic clock,
//! so expiry never compares clocks between machines. A leader that has not
//! renewed within `renew_deadline` of its last successful renewal stops
//! acting at once ([`Leadership::epoch`] reads the clock itself), which is
//! before any standby may take over, since the standby saw that renewal no
//! earlier than it started and waits the longer `lease`.
//!
//! The epoch is the store's generation of the write that acquired the lease:
//! generations only grow, so every acquisition has a larger epoch than any
//! before it, even after the lease object was deleted or edited by hand.
//! Writers stamp it on what they write, so a deposed leader's late write can
//! be recognised and refused.

mod decide;
mod elector;
mod gate;
mod record;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use elector::{ElectorMetrics, run_elector};
pub use gate::Gated;
pub use record::LeaseRecord;

/// How the election is timed. The defaults (15 s lease, renewal every 5 s,
/// a 10 s renew deadline) are Kubernetes' leader-election defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    /// How long a standby waits, on its own clock, for an unchanged lease
    /// before taking it over.
    pub lease: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
    /// How long after its last successful renewal the leader stops acting;
    /// shorter than `lease`, so it has stopped before anyone can take over.
    pub renew_deadline: Duration,
    /// How often a standby looks, and a failing renewal is retried.
    pub retry_every: Duration,
}

impl Default for LeaseTimes {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// Timings that could let two leaders act at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "lease timings must keep renewal every ({renew_every:?}) < renew deadline ({renew_deadline:?}) < lease ({lease:?}), all above zero"
)]
pub struct UnsafeLeaseTimes {
    lease: Duration,
    renew_every: Duration,
    renew_deadline: Duration,
}

impl LeaseTimes {
    /// Checks the ordering the safety argument rests on.
    pub fn check(&self) -> Result<(), UnsafeLeaseTimes> {
        let ordered = !self.renew_every.is_zero()
            && !self.retry_every.is_zero()
            && self.renew_every < self.renew_deadline
            && self.renew_deadline < self.lease;
        match ordered {
            true => Ok(()),
            false => Err(UnsafeLeaseTimes {
                lease: self.lease,
                renew_every: self.renew_every,
                renew_deadline: self.renew_deadline,
            }),
        }
    }
}

/// The lease object as stored: its bytes and the store's generation of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    /// The object's content.
    pub bytes: Vec<u8>,
    /// The store's generation of it (a decimal number on Cloud Storage).
    pub generation: u64,
}

/// Why a lease write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LeaseWriteError {
    /// The object is not at the generation the write was conditional on:
    /// someone else wrote it (or created it) first.
    #[error("the lease changed since it was read")]
    Moved,
    /// The store could not be reached or refused for another reason.
    #[error("{0}")]
    Store(String),
}

/// The store as the election needs it: one object, read with its
/// generation and written only on a generation precondition.
pub trait LeaseStore: Send + Sync + 'static {
    /// Where the lease lives, for logs.
    fn lease_location(&self) -> String;

    /// The lease object, `None` when there is none.
    fn read_lease(&self) -> impl Future<Output = Result<Option<StoredLease>, String>> + Send;

    /// Writes the lease only if it is at `expected` (`None`: only if there is
    /// none), returning the new generation.
    fn write_lease(
        &self,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, LeaseWriteError>> + Send;
}

/// What this process is in the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Another process leads (its holder id, when the lease names one), or
    /// nobody does yet.
    Standby {
        /// The lease's holder as last read.
        leader: Option<String>,
    },
    /// This process leads with this epoch until `valid_until` unless it
    /// renews; `None` for a controller that is alone by configuration.
    Leader {
        /// The acquisition's generation.
        epoch: u64,
        /// When it must stop acting without a renewal.
        valid_until: Option<Instant>,
    },
}

/// A read-only view of this process's role, shared by everything that must
/// act only while it leads.
#[derive(Debug, Clone)]
pub struct Leadership {
    role: watch::Receiver<Role>,
}

impl Leadership {
    /// A controller that is the only one by configuration: always the
    /// leader, with epoch 0 (which every elected epoch outranks).
    pub fn alone() -> Self {
        let (_, role) = watch::channel(Role::Leader {
            epoch: 0,
            valid_until: None,
        });
        Self { role }
    }

    /// A view of whatever publishes `role`: the elector, or a test.
    pub fn from_watch(role: watch::Receiver<Role>) -> Self {
        Self { role }
    }

    /// The epoch to act under, or `None` when this process must not act:
    /// a standby, or a leader past its renew deadline (judged now, on the
    /// monotonic clock, so a process resumed after a long freeze stops even
    /// before its elector has run again).
    pub fn epoch(&self) -> Option<u64> {
        match &*self.role.borrow() {
            Role::Leader { epoch, valid_until } => match valid_until {
                Some(until) if Instant::now() >= *until => None,
                _ => Some(*epoch),
            },
            Role::Standby { .. } => None,
        }
    }

    /// The role as the elector last published it.
    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Waits until the role changes (a no-op wait forever for [`alone`](Self::alone)).
    pub async fn changed(&mut self) {
        if self.role.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests;
