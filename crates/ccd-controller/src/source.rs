//! The spec store as the controller's source: each app's spec, parsed and
//! validated, or the located problems that keep it from being deployed.

use std::sync::Arc;

use ccd_runtime::{Changes, Source};
use ccd_spec::App;
use ccd_store::{SpecFile, SpecStore, StoreError};

/// What the store says about one app.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// A valid spec: deploy it.
    Valid {
        app: Box<App>,
        path: String,
        version: String,
    },
    /// A spec that cannot be deployed: every problem, located. The running
    /// revision keeps serving; status says why nothing changes.
    Invalid {
        path: String,
        version: String,
        problems: Vec<String>,
    },
}

impl Desired {
    pub fn path(&self) -> &str {
        match self {
            Desired::Valid { path, .. } | Desired::Invalid { path, .. } => path,
        }
    }

    /// The spec file's content hash.
    pub fn version(&self) -> &str {
        match self {
            Desired::Valid { version, .. } | Desired::Invalid { version, .. } => version,
        }
    }
}

/// Turns a spec file into what the controller wants for its app.
pub fn desired(file: &SpecFile) -> Desired {
    let version = file.version.clone();
    match ccd_spec::parse_bytes(&file.bytes) {
        Ok(app) if app.metadata.name != file.name => Desired::Invalid {
            path: file.path.clone(),
            version,
            problems: vec![format!(
                "{}:1:1: metadata.name: {:?} does not match the file name; name the file {}.yaml or the app {:?}",
                file.path, app.metadata.name, app.metadata.name, file.name
            )],
        },
        Ok(app) => Desired::Valid {
            app: Box::new(app),
            path: file.path.clone(),
            version,
        },
        Err(problems) => Desired::Invalid {
            path: file.path.clone(),
            version,
            problems: problems
                .0
                .iter()
                .map(|p| p.display_in(&file.path).to_string())
                .collect(),
        },
    }
}

/// A [`SpecStore`] seen as a [`Source`] of [`Desired`] apps.
#[derive(Debug)]
pub struct SpecSource<S> {
    store: Arc<S>,
}

impl<S> SpecSource<S> {
    pub fn new(store: Arc<S>) -> Self {
        SpecSource { store }
    }
}

impl<S: SpecStore> Source for SpecSource<S> {
    type Object = Desired;
    type Error = StoreError;

    async fn list(&self) -> Result<Vec<(String, Desired)>, StoreError> {
        let listing = self.store.list_specs().await?;
        let mut out: Vec<(String, Desired)> = listing
            .specs
            .iter()
            .map(|f| (f.name.clone(), desired(f)))
            .collect();
        // A spec that exists but cannot be read is not a deleted app.
        for bad in listing.unreadable {
            out.push((
                bad.name.clone(),
                Desired::Invalid {
                    path: bad.path.clone(),
                    version: String::new(),
                    problems: vec![bad.error.to_string()],
                },
            ));
        }
        Ok(out)
    }

    fn changes(&self) -> Option<Changes> {
        self.store.changes().map(|s| -> Changes { Box::pin(s) })
    }

    async fn get(&self, key: &str) -> Result<Option<Desired>, StoreError> {
        match self.store.get_spec(key).await {
            Ok(file) => Ok(file.as_ref().map(desired)),
            Err(e @ (StoreError::TooLarge { .. } | StoreError::Ambiguous { .. })) => {
                Ok(Some(Desired::Invalid {
                    path: format!("specs/{key}.yaml"),
                    version: String::new(),
                    problems: vec![e.to_string()],
                }))
            }
            Err(e) => Err(e),
        }
    }
}
