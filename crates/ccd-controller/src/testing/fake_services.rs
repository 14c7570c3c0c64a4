//! An in-memory `Services`: each asked service Ready with one secret per
//! variable of the contract, or the `problem` a test sets; releases are
//! recorded with the number of groups the cloud still had at that moment.
//! A rotation ([`FakeServices::rotate`]) moves the credentials to the next
//! generation until a settle sees every instance on it.

use std::sync::{Arc, Mutex, PoisonError};

use std::collections::BTreeMap;

use ccd_services::{Credential, Provisioned, Released, ServiceStatus, Services};

use super::FakeCloud;

#[derive(Debug)]
pub struct FakeServices {
    cloud: Arc<FakeCloud>,
    /// What ensure answers instead of Ready, when set.
    pub problem: Mutex<Option<String>>,
    /// Each release: the app, its services as recorded, and how many groups
    /// were left in the cloud then.
    pub released: Mutex<Vec<(String, Vec<ServiceStatus>, usize)>>,
    /// The credentials' generation, and the one a rotation replaced while
    /// it may still be in use.
    pub rotation: Mutex<(u32, Option<u32>)>,
    /// Each retirement: the generation retired, and the templates the
    /// cloud's instances ran then.
    pub retired: Mutex<Vec<(u32, Vec<String>)>>,
}

impl FakeServices {
    pub fn new(cloud: Arc<FakeCloud>) -> Self {
        FakeServices {
            cloud,
            problem: Mutex::default(),
            released: Mutex::default(),
            rotation: Mutex::default(),
            retired: Mutex::default(),
        }
    }

    /// A new credential beside the old one, as `ccd services rotate` makes.
    pub fn rotate(&self) {
        let mut r = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        *r = (r.0 + 1, Some(r.0));
    }

    pub fn fail_with(&self, problem: Option<&str>) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = problem.map(str::to_owned);
    }
}

impl Services for FakeServices {
    fn ensure<'a>(
        &'a self,
        app: &'a ccd_spec::App,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Provisioned> + Send + 'a>> {
        Box::pin(async move {
            let name = &app.metadata.name;
            let problem = self
                .problem
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let generation = self
                .rotation
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            let mut out = Provisioned::default();
            for (kind, variables) in app.spec.services.variables() {
                match &problem {
                    Some(p) => out.failed(kind, p.clone()),
                    None => out.ready_at(
                        name,
                        kind,
                        variables,
                        generation,
                        ServiceStatus {
                            name: Some(format!("{kind}-of-{name}")),
                            ..ServiceStatus::ready(kind)
                        },
                    ),
                }
            }
            out
        })
    }

    fn release<'a>(
        &'a self,
        app: &'a str,
        services: &'a [ServiceStatus],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Released> + Send + 'a>> {
        Box::pin(async move {
            let groups = self.cloud.group_names().len();
            self.released
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((app.to_owned(), services.to_vec(), groups));
            Released {
                retained: services.iter().map(|s| s.kind.clone()).collect(),
                ..Released::default()
            }
        })
    }

    fn settle<'a>(
        &'a self,
        _app: &'a str,
        in_use: &'a BTreeMap<String, Credential>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(async move {
            let mut r = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(old) = r.1 else { return Vec::new() };
            if !in_use.values().all(|c| c.generation() == Some(r.0)) {
                return Vec::new();
            }
            r.1 = None;
            let mut running: Vec<String> = (self.cloud.group_names().iter())
                .flat_map(|g| self.cloud.members(g))
                .filter_map(|m| m.template)
                .collect();
            running.dedup();
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((old, running));
            vec![format!("generation {old} retired")]
        })
    }
}
