//! Load balancers: forwarding rules become real listeners (ccd-lb frontends)
//! serving their URL maps' backend services' healthy instances.

use std::sync::Arc;

use serde_json::Value;

use crate::api::Call;
use crate::cloud::Cloud;
use crate::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct Balancers {}

impl Balancers {
    pub async fn reconcile(&self, _cloud: &Arc<Cloud>) {}
    pub async fn shutdown(&self) {}
}

pub fn get_health(_cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    Err(crate::handlers::not_implemented(&call.method.resource, &call.method.name))
}

pub async fn set_verb(_cloud: &Arc<Cloud>, call: &Call) -> Result<Value, ApiError> {
    Err(crate::handlers::not_implemented(&call.method.resource, &call.method.name))
}
