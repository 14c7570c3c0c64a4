//! What runs inside a VM beside its program. On Compute Engine the startup
//! script starts ccd's agent beside the app's container; the local cloud has
//! no guest OS, so it hands each life of an instance's process to a
//! [`Guest`] that its embedder supplies (`ccd up` runs an agent there). The
//! local cloud itself knows nothing of agents.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// One life of an instance, as its guest sees it from inside.
#[derive(Clone)]
pub struct Vm {
    pub name: String,
    /// The cloud's ID: a recreated instance has a new one.
    pub id: String,
    pub zone: String,
    /// The instance's own address (its loopback address here).
    pub ip: IpAddr,
    /// The instance's metadata items (its template's), as the metadata
    /// server serves them.
    pub metadata: BTreeMap<String, String>,
    /// The environment the program runs with: what a command run inside
    /// the app (an exec health check) sees.
    pub env: BTreeMap<String, String>,
    /// The program's process group leader while it runs; `None` while it is
    /// down (crashed and waiting to be started again).
    pub program: Arc<dyn Fn() -> Option<u32> + Send + Sync>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment holds the app's secrets: never printed.
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("zone", &self.zone)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

/// Runs beside each instance's program.
pub trait Guest: Send + Sync + std::fmt::Debug + 'static {
    /// The instance's program has started for the first time in this life;
    /// whatever the guest runs stops when `stop` is cancelled (the instance
    /// stops, is deleted or recreated, or the local cloud shuts down).
    fn boot(&self, vm: Vm, stop: CancellationToken);
}

/// The metadata items of a template as a map.
pub(crate) fn metadata_items(template: &serde_json::Value) -> BTreeMap<String, String> {
    template
        .pointer("/properties/metadata/items")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["key"].as_str()?.to_owned(),
                i["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}
