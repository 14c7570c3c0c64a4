//! The sync marker (`specs/.ccd-sync` in the store): which commit the store's specs came from.
//! Written by `ccd sync` after every spec, read by the controller on each relist to record, per
//! app, the commit and file its spec came from, and by `ccd sync` to know what it synced last.

use serde::{Deserialize, Serialize};

const HEADER: &str = "Written by ccd sync after the specs it names; edits are overwritten.";

/// What one sync put into the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncMarker {
    /// The repository, without any credentials its URL carried.
    pub repository: String,
    /// The folder of spec files inside it (empty for the top).
    #[serde(default)]
    pub path: String,
    /// The commit id.
    pub commit: String,
    /// Its author, `Name <email>`.
    #[serde(default)]
    pub author: String,
    /// Its commit time, RFC 3339.
    #[serde(default)]
    pub time: String,
    /// Every spec file of the commit that is in the store, by app.
    #[serde(default)]
    pub files: Vec<MarkedFile>,
}

/// One spec file of the synced commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkedFile {
    /// The app the file defines (its name without `.yaml`/`.yml`).
    pub app: String,
    /// Its path in the repository.
    pub path: String,
    /// `sha256:<hex>` of its bytes: the version the store reports for the app's spec.
    pub checksum: String,
    /// The synced commit that first had these bytes (an earlier one when the file did not
    /// change since), so an app's origin moves only when its spec does. Empty in markers
    /// that predate it: the marker's commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
}

/// Where an app's spec came from, as its status records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The commit id.
    pub commit: String,
    /// The file's path in the repository.
    pub path: String,
}

impl SyncMarker {
    pub fn to_yaml(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        ccd_spec::document::to_yaml(HEADER, &value)
    }

    /// Reads a marker back, or says why it is not one (`LINE:COL: ...` or the field).
    pub fn parse(bytes: &[u8]) -> Result<SyncMarker, String> {
        let value = ccd_spec::document::from_yaml(bytes).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Where `app`'s spec came from, if the store's version of it (`sha256:...`) is the
    /// synced commit's file: a spec edited in the store since has no origin.
    pub fn origin(&self, app: &str, version: &str) -> Option<Origin> {
        self.files
            .iter()
            .find(|f| f.app == app && f.checksum == version)
            .map(|f| Origin {
                commit: if f.commit.is_empty() {
                    self.commit.clone()
                } else {
                    f.commit.clone()
                },
                path: f.path.clone(),
            })
    }

    /// The commit that first had `checksum` for `app`, if this marker has that very file.
    pub fn commit_of(&self, app: &str, checksum: &str) -> Option<String> {
        self.origin(app, checksum).map(|o| o.commit)
    }

    /// Apps whose origin may differ between two markers (added, removed or changed
    /// entries), sorted: what a controller looks at again when the marker changes.
    pub fn changed_apps(before: Option<&SyncMarker>, after: Option<&SyncMarker>) -> Vec<String> {
        let entries =
            |m: Option<&SyncMarker>| -> std::collections::BTreeMap<String, Option<Origin>> {
                m.into_iter()
                    .flat_map(|m| {
                        m.files
                            .iter()
                            .map(|f| (f.app.clone(), m.origin(&f.app, &f.checksum)))
                    })
                    .collect()
            };
        let (before, after) = (entries(before), entries(after));
        let mut apps: Vec<String> = before
            .keys()
            .chain(after.keys())
            .filter(|app| before.get(*app) != after.get(*app))
            .cloned()
            .collect();
        apps.sort();
        apps.dedup();
        apps
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn marker() -> SyncMarker {
        SyncMarker {
            repository: "https://git.example/ops.git".into(),
            path: "deploy".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            author: "Ada <ada@example.com>".into(),
            time: "2026-11-30T21:00:00+00:00".into(),
            files: vec![MarkedFile {
                app: "web".into(),
                path: "deploy/web.yaml".into(),
                checksum: "sha256:ab".into(),
                commit: String::new(),
            }],
        }
    }

    #[test]
    fn writes_stable_yaml_and_reads_it_back() {
        let m = marker();
        let yaml = m.to_yaml();
        assert_eq!(yaml, m.clone().to_yaml());
        assert!(yaml.starts_with("# Written by ccd sync"), "{yaml}");
        assert!(yaml.contains("checksum: \"sha256:ab\"\n"), "{yaml}");
        assert_eq!(SyncMarker::parse(yaml.as_bytes()).unwrap(), m);
        assert!(SyncMarker::parse(b"commit: [1]").is_err());
        assert!(SyncMarker::parse(b"\xff").is_err());
    }

    #[test]
    fn an_app_has_an_origin_only_while_its_spec_is_the_commits_file() {
        let m = marker();
        let origin = m.origin("web", "sha256:ab").unwrap();
        assert_eq!(origin.path, "deploy/web.yaml");
        assert_eq!(origin.commit, m.commit);
        assert_eq!(m.origin("web", "sha256:edited"), None);
        assert_eq!(m.origin("api", "sha256:ab"), None);
    }

    #[test]
    fn an_unchanged_file_keeps_the_commit_that_brought_it() {
        let mut m = marker();
        m.files[0].commit = "1111".into();
        assert_eq!(m.origin("web", "sha256:ab").unwrap().commit, "1111");
        assert_eq!(m.commit_of("web", "sha256:ab").as_deref(), Some("1111"));
        assert_eq!(m.commit_of("web", "sha256:cd"), None);
    }

    #[test]
    fn only_apps_whose_origin_moved_are_looked_at_again() {
        let old = marker();
        let mut new = marker();
        new.commit = "2222".into();
        // web's file is unchanged since the old marker's commit: same origin.
        new.files[0].commit = old.commit.clone();
        new.files.push(MarkedFile {
            app: "api".into(),
            path: "deploy/api.yaml".into(),
            checksum: "sha256:cd".into(),
            commit: String::new(),
        });
        assert_eq!(SyncMarker::changed_apps(Some(&old), Some(&new)), ["api"]);
        assert_eq!(SyncMarker::changed_apps(Some(&new), None), ["api", "web"]);
        assert!(SyncMarker::changed_apps(Some(&old), Some(&old)).is_empty());
    }
}
