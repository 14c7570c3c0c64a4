//! What deleting an app kept (`onDelete: retain`, or a removal that
//! failed): one file per app, `DATA/services/retained/<app>.json`, until
//! `ccd services prune` removes the services or the app comes back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{private_dir, write_private};
use crate::ServiceStatus;

/// An app's kept services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    pub app: String,
    pub services: Vec<ServiceStatus>,
}

fn dir(services_dir: &Path) -> PathBuf {
    services_dir.join("retained")
}

/// Records `kept` for `app` (nothing kept: no record).
pub(super) fn record(services_dir: &Path, app: &str, kept: &[ServiceStatus]) -> Result<(), String> {
    let file = dir(services_dir).join(format!("{app}.json"));
    if kept.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", file.display()))
            }
            _ => Ok(()),
        };
    }
    let record = Retained {
        app: app.to_owned(),
        services: kept.to_vec(),
    };
    let text = serde_json::to_string_pretty(&record)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    private_dir(&dir(services_dir))
        .and_then(|()| write_private(&file, &text))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Every app's kept services, by app name.
pub(super) fn list(services_dir: &Path) -> Result<Vec<Retained>, String> {
    let folder = dir(services_dir);
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", folder.display())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let record: Retained = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is damaged ({e}); remove it once its services are seen to",
                path.display()
            )
        })?;
        out.push(record);
    }
    out.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(out)
}
