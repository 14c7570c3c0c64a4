//! An in-memory `Services`: each asked service Ready with one secret per
//! variable of the contract, or the `problem` a test sets; releases are
//! recorded with the number of groups the cloud still had at that moment.

use std::sync::{Arc, Mutex, PoisonError};

use ccd_services::{Provisioned, Released, ServiceStatus, Services};

use super::FakeCloud;

#[derive(Debug)]
pub struct FakeServices {
    cloud: Arc<FakeCloud>,
    /// What ensure answers instead of Ready, when set.
    pub problem: Mutex<Option<String>>,
    /// Each release: the app, its services as recorded, and how many groups
    /// were left in the cloud then.
    pub released: Mutex<Vec<(String, Vec<ServiceStatus>, usize)>>,
}

impl FakeServices {
    pub fn new(cloud: Arc<FakeCloud>) -> Self {
        FakeServices {
            cloud,
            problem: Mutex::default(),
            released: Mutex::default(),
        }
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
            let mut out = Provisioned::default();
            for (kind, variables) in app.spec.services.variables() {
                match &problem {
                    Some(p) => out.failed(kind, p.clone()),
                    None => out.ready(
                        name,
                        kind,
                        variables,
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
}
