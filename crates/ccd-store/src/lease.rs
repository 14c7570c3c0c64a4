//! Lease objects for leader election (`leases/<name>.json`): read with their
//! generation and written only on a generation precondition, which only a
//! bucket enforces. The election itself is `ccd_runtime::lease`.

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
use tracing::debug;

use crate::objects::Objects;
use crate::{AnyStore, StoreError};

const LEASES_DIR: &str = "leases";

/// A lease's largest size: a few lines of JSON.
const MAX_LEASE_BYTES: u64 = 64 * 1024;

/// A lease object as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseObject {
    /// Its content.
    pub bytes: Bytes,
    /// The store's generation of it.
    pub generation: u64,
}

/// What a conditional lease write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseWrite {
    /// Written; the object's new generation.
    Written(u64),
    /// Not written: the object was not at the expected generation.
    Moved,
}

impl AnyStore {
    /// `leases/<name>.json` and its generation; `None` when there is none.
    pub async fn read_lease(&self, name: &str) -> Result<Option<LeaseObject>, StoreError> {
        read(self.objects(), name).await
    }

    /// Writes `leases/<name>.json` only if it is at generation `expected`
    /// (`None`: only if there is none).
    pub async fn write_lease(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<u64>,
    ) -> Result<LeaseWrite, StoreError> {
        write(self.objects(), name, bytes, expected).await
    }

    /// Checks that this store refuses a write conditional on a generation the
    /// object is no longer at, which leader election rests on: a bucket does,
    /// a local folder cannot. Writes and then removes
    /// `leases/.probe-<candidate>.json`: a probe of its own per candidate, so
    /// that controllers starting together do not move each other's probe.
    pub async fn check_conditional_writes(&self, candidate: &str) -> Result<(), StoreError> {
        let objects = self.objects();
        let refuse = |reason: String| StoreError::Unconditional {
            location: objects.location().to_owned(),
            reason,
        };
        let probe = probe_name(candidate);
        let probe = probe.as_str();
        let first = match write(objects, probe, b"{}", None).await {
            Ok(LeaseWrite::Written(g)) => g,
            // A probe left by a crashed run: replace it from its generation.
            Ok(LeaseWrite::Moved) => match read(objects, probe).await? {
                Some(found) => match write(objects, probe, b"{}", Some(found.generation)).await? {
                    LeaseWrite::Written(g) => g,
                    LeaseWrite::Moved => return Err(refuse("the probe kept moving".into())),
                },
                None => {
                    return Err(refuse(
                        "a create-only write was refused with nothing there".into(),
                    ));
                }
            },
            Err(StoreError::Write {
                source: source @ object_store::Error::NotImplemented { .. },
                ..
            }) => return Err(refuse(source.to_string())),
            Err(e) => return Err(e),
        };
        let second = match write(objects, probe, b"{ }", Some(first)).await? {
            LeaseWrite::Written(g) => g,
            LeaseWrite::Moved => {
                return Err(refuse(
                    "a write at the current generation was refused".into(),
                ));
            }
        };
        let stale = write(objects, probe, b"{  }", Some(first)).await?;
        objects.delete_file(LEASES_DIR, &file(probe)).await?;
        match (stale, second > first) {
            (LeaseWrite::Moved, true) => Ok(()),
            (LeaseWrite::Written(_), _) => Err(refuse(
                "it accepted a write conditional on a stale generation".into(),
            )),
            (LeaseWrite::Moved, false) => Err(refuse(format!(
                "its generations do not grow ({first} then {second})"
            ))),
        }
    }
}

/// `.probe-<candidate>`, keeping only characters safe in an object name.
fn probe_name(candidate: &str) -> String {
    let safe: String = candidate
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(".probe-{safe}")
}

fn file(name: &str) -> String {
    format!("{name}.json")
}

async fn read(objects: &Objects, name: &str) -> Result<Option<LeaseObject>, StoreError> {
    let file = file(name);
    let Some((bytes, meta)) = objects
        .read_file(LEASES_DIR, &file, MAX_LEASE_BYTES)
        .await?
    else {
        return Ok(None);
    };
    let generation = generation_of(objects, &file, meta.version.as_deref())?;
    Ok(Some(LeaseObject { bytes, generation }))
}

async fn write(
    objects: &Objects,
    name: &str,
    bytes: &[u8],
    expected: Option<u64>,
) -> Result<LeaseWrite, StoreError> {
    let file = file(name);
    let mode = match expected {
        None => PutMode::Create,
        Some(g) => PutMode::Update(UpdateVersion {
            e_tag: None,
            version: Some(g.to_string()),
        }),
    };
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
    match objects.put_file(LEASES_DIR, &file, payload, options).await {
        Ok(result) => {
            let generation = generation_of(objects, &file, result.version.as_deref())?;
            debug!(lease = %objects.display_file(LEASES_DIR, &file), generation, "written");
            Ok(LeaseWrite::Written(generation))
        }
        Err(StoreError::Write {
            source:
                object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
            ..
        }) => Ok(LeaseWrite::Moved),
        Err(e) => Err(e),
    }
}

fn generation_of(objects: &Objects, file: &str, version: Option<&str>) -> Result<u64, StoreError> {
    version
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Unconditional {
            location: objects.display_file(LEASES_DIR, file),
            reason: format!("the store gave no numeric generation ({version:?})"),
        })
}
