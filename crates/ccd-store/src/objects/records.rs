//! The per-app records beside the specs, `status/<app>.yaml` (the controller's) and
//! `controls/<app>.yaml` (the operator's), and the specs themselves as `ccd sync` writes them:
//! read, written only when their bytes change (atomically, and conditionally where the
//! backend can check versions), and deleted.

use bytes::Bytes;
use object_store::{ObjectMeta, PutMode, PutOptions, PutPayload, UpdateVersion};
use tracing::{debug, warn};

use super::{Objects, UpdateCheck};
use crate::names::{self, CONTROLS_DIR, SCALING_DIR, SPECS_DIR, STATUS_DIR};
use crate::{Fence, MAX_SPEC_BYTES, MAX_STATUS_BYTES, StoreError};

/// Read-compare-write rounds before a write gives up on a busy object.
const WRITE_ATTEMPTS: u32 = 3;

/// Which record of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    /// `status/<app>.yaml`, what the controller reports.
    Status,
    /// `controls/<app>.yaml`, what an operator asks of a rollout.
    Control,
    /// `scaling/<app>.yaml`, what the scaling reconciler decided last.
    Scaling,
    /// `specs/<app>.yaml`, as `ccd sync` uploads it (listing and reading specs is
    /// `Objects::list_specs`'s, which also knows `.yml`).
    Spec,
}

impl Record {
    fn dir(self) -> &'static str {
        match self {
            Self::Status => STATUS_DIR,
            Self::Control => CONTROLS_DIR,
            Self::Scaling => SCALING_DIR,
            Self::Spec => SPECS_DIR,
        }
    }

    /// Status and controls share one cap: both are small documents ccd writes itself. A spec
    /// has the cap the controller reads it under, so nothing is written that it would refuse.
    fn limit(self) -> u64 {
        match self {
            Self::Spec => MAX_SPEC_BYTES,
            Self::Status | Self::Control | Self::Scaling => MAX_STATUS_BYTES,
        }
    }
}

impl Objects {
    /// The apps with this record, sorted: every `<dir>/<app>.yaml` whose stem is an app name
    /// the store accepts, whether or not the app's spec is still there. Anything else in the
    /// folder (a write's temporary file, a stray name) is not a record and is left out.
    pub(crate) async fn list_records(&self, record: Record) -> Result<Vec<String>, StoreError> {
        let mut apps: Vec<String> = self
            .list_dir(record.dir())
            .await?
            .into_iter()
            .filter_map(|listed| {
                let name = listed.file_name.ok()?;
                let app = name.strip_suffix(".yaml")?;
                match names::check_app_name(app) {
                    Ok(()) => Some(app.to_owned()),
                    Err(reason) => {
                        debug!(file = %self.display(record.dir(), &name), reason, "not a record");
                        None
                    }
                }
            })
            .collect();
        apps.sort();
        apps.dedup();
        Ok(apps)
    }

    /// The record's bytes, `None` when there is none.
    pub(crate) async fn read_record(
        &self,
        record: Record,
        app: &str,
    ) -> Result<Option<Bytes>, StoreError> {
        names::app_name(app)?;
        let file = format!("{app}.yaml");
        Ok(self
            .read(record.dir(), &file, record.limit())
            .await?
            .map(|(bytes, _)| bytes))
    }

    /// Writes the record unless it already holds `bytes`; returns whether it wrote.
    pub(crate) async fn write_record(
        &self,
        record: Record,
        app: &str,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        self.write_record_fenced(record, app, bytes, None).await
    }

    /// As `write_record`, but never over a record that `fence` finds was
    /// written under a later epoch, judged on every read of the loop, so a
    /// conflict retry cannot overwrite a successor either.
    pub(crate) async fn write_record_fenced(
        &self,
        record: Record,
        app: &str,
        bytes: &[u8],
        fence: Option<Fence>,
    ) -> Result<bool, StoreError> {
        names::app_name(app)?;
        let (dir, limit) = (record.dir(), record.limit());
        let file = format!("{app}.yaml");
        let location = self.display(dir, &file);
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if size > limit {
            return Err(StoreError::TooLarge {
                location,
                size,
                limit,
            });
        }
        let key = self.key(dir, &file);
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        for attempt in 1..=WRITE_ATTEMPTS {
            let current = self.read(dir, &file, limit).await;
            let mode = match current {
                Ok(Some((old, _))) if old.as_ref() == bytes => return Ok(false),
                Ok(Some((old, _))) if fence.as_ref().and_then(|f| f.refuses(&old)).is_some() => {
                    let (holder, theirs) = fence
                        .as_ref()
                        .and_then(|f| f.refuses(&old))
                        .unwrap_or_default();
                    return Err(StoreError::Fenced {
                        location,
                        holder,
                        theirs,
                        ours: fence.as_ref().map_or(0, |f| f.epoch),
                    });
                }
                Ok(Some((_, meta))) => self.update_mode(meta),
                Ok(None) => PutMode::Create,
                // An oversized leftover cannot be compared; replacing it is the fix.
                Err(StoreError::TooLarge { .. }) => PutMode::Overwrite,
                Err(e) => return Err(e),
            };
            let options = PutOptions {
                mode,
                ..PutOptions::default()
            };
            match self.store.put_opts(&key, payload.clone(), options).await {
                Ok(_) => {
                    debug!(%location, "written");
                    return Ok(true);
                }
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => {
                    debug!(%location, attempt, "changed under us; reading it again");
                }
                Err(source) => return Err(StoreError::Write { location, source }),
            }
        }
        warn!(%location, "write lost {WRITE_ATTEMPTS} races in a row");
        Err(StoreError::Conflict {
            location,
            attempts: WRITE_ATTEMPTS,
        })
    }

    /// Replace exactly the version just read where the backend can check it; a local folder
    /// cannot, and its atomic rename is the best it offers.
    fn update_mode(&self, meta: ObjectMeta) -> PutMode {
        let checkable = match self.update_check {
            UpdateCheck::Unsupported => false,
            UpdateCheck::Version => meta.version.is_some(),
            UpdateCheck::ETag => meta.e_tag.is_some(),
        };
        if !checkable {
            if self.update_check != UpdateCheck::Unsupported {
                debug!(path = %meta.location, "no version to condition on; overwriting");
            }
            return PutMode::Overwrite;
        }
        PutMode::Update(UpdateVersion {
            e_tag: meta.e_tag,
            version: meta.version,
        })
    }

    /// Removes the record; succeeds when there is none.
    pub(crate) async fn delete_record(&self, record: Record, app: &str) -> Result<(), StoreError> {
        names::app_name(app)?;
        self.delete_file(record.dir(), &format!("{app}.yaml")).await
    }
}
