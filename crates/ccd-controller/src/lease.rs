//! Leader election for the controller: the store's lease objects as the
//! election's port, and the wake-up of every app when this process starts
//! to lead (a standby ignores its queue; its cache stays warm).

use std::sync::Arc;

use ccd_runtime::lease::{Leadership, LeaseStore, LeaseWriteError, StoredLease};
use ccd_runtime::{Cache, Trigger};
use ccd_store::{AnyStore, LeaseWrite, SpecStore};
use tokio_util::sync::CancellationToken;

use crate::source::Desired;

/// The lease `leases/<name>.json` in a store (a bucket: a folder cannot
/// hold an election, see `AnyStore::check_conditional_writes`).
#[derive(Debug)]
pub struct StoreLease {
    store: Arc<AnyStore>,
    name: String,
}

impl StoreLease {
    /// The lease `name` (one per region: controllers of different regions
    /// share a bucket without competing).
    pub fn new(store: Arc<AnyStore>, name: impl Into<String>) -> Self {
        Self {
            store,
            name: name.into(),
        }
    }
}

impl LeaseStore for StoreLease {
    fn lease_location(&self) -> String {
        format!("{}/leases/{}.json", self.store.location(), self.name)
    }

    async fn read_lease(&self) -> Result<Option<StoredLease>, String> {
        match self.store.read_lease(&self.name).await {
            Ok(found) => Ok(found.map(|l| StoredLease {
                bytes: l.bytes.to_vec(),
                generation: l.generation,
            })),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn write_lease(
        &self,
        bytes: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, LeaseWriteError> {
        match self.store.write_lease(&self.name, &bytes, expected).await {
            Ok(LeaseWrite::Written(generation)) => Ok(generation),
            Ok(LeaseWrite::Moved) => Err(LeaseWriteError::Moved),
            Err(e) => Err(LeaseWriteError::Store(e.to_string())),
        }
    }
}

/// Each time this process starts to lead, queues every app it knows of:
/// those with a spec and those with only a status (a removal the last
/// leader left unfinished). Runs until `stop`.
pub async fn wake_on_leading<S: SpecStore>(
    mut leadership: Leadership,
    specs: Cache<Desired>,
    store: Arc<S>,
    trigger: Trigger,
    stop: CancellationToken,
) {
    let mut leading = false;
    loop {
        let now_leading = leadership.epoch().is_some();
        if now_leading && !leading {
            specs.wait_ready().await;
            let mut apps = specs.keys();
            match store.list_statuses().await {
                Ok(statuses) => apps.extend(statuses),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list statuses; apps with only a status wait for the sweep")
                }
            }
            apps.sort();
            apps.dedup();
            tracing::info!(apps = apps.len(), "leading: every app queued");
            for app in apps {
                trigger.push(app);
            }
        }
        leading = now_leading;
        tokio::select! {
            () = leadership.changed() => {}
            () = stop.cancelled() => return,
        }
    }
}
