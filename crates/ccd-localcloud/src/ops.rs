//! Operations: every mutation answers with one that goes PENDING, RUNNING,
//! DONE, carrying `error` when the change failed, as Compute's do. A retried
//! mutation with the same `requestId` gets the first operation back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::{clock, paths};

/// The change an operation makes when it runs; returns the target's id.
pub type Apply = Box<dyn FnOnce(&Cloud) -> Result<Option<String>, ApiError> + Send>;

pub struct OpRequest<'a> {
    /// `projects/p/zones/z`, `projects/p/regions/r` or `projects/p/global`.
    pub scope: &'a str,
    pub operation_type: &'a str,
    /// Key of the resource the operation changes.
    pub target: &'a str,
    pub request_id: Option<&'a str>,
}

impl Cloud {
    /// Runs `apply` as an operation and returns the operation's resource.
    pub async fn operation(
        self: &Arc<Self>,
        req: OpRequest<'_>,
        apply: Apply,
    ) -> Result<Value, ApiError> {
        let project = paths::project_of(req.scope).unwrap_or_default();
        let dedupe_key = match req.request_id {
            Some(id) => {
                if let Some(op) = self.replayed(project, id)? {
                    return Ok(op);
                }
                Some(format!("ccd/requestIds/{project}/{id}"))
            }
            None => None,
        };

        let name = format!("operation-{}-{}", clock::new_id(), clock::suffix(8));
        let op_key = format!("{}/operations/{name}", req.scope);
        let mut op = json!({
            "kind": "compute#operation",
            "id": clock::new_id(),
            "name": name,
            "operationType": req.operation_type,
            "targetLink": self.link(req.target),
            "selfLink": self.link(&op_key),
            "status": "PENDING",
            "user": "local@ccd",
            "progress": 0,
            "insertTime": clock::now_rfc3339(),
        });
        if let Some(scope_field) = paths::scope_field(req.scope) {
            op[scope_field.0] = Value::String(self.link(&scope_field.1));
        }
        if let Some(dedupe) = &dedupe_key {
            self.store.put(dedupe, json!({"operation": op_key}));
        }

        let latency = self.faults.operation_latency();
        if latency.is_zero() {
            self.finish(&op_key, &mut op, apply);
            let seq = self.store.put(&op_key, op.clone());
            self.store.durable(seq).await;
            return Ok(self.render(&op));
        }
        let seq = self.store.put(&op_key, op.clone());
        self.store.durable(seq).await;
        let cloud = self.clone();
        let first = op.clone();
        tokio::spawn(async move {
            tokio::time::sleep(latency / 2).await;
            op["status"] = "RUNNING".into();
            op["startTime"] = clock::now_rfc3339().into();
            cloud.store.put(&op_key, op.clone());
            tokio::time::sleep(latency - latency / 2).await;
            cloud.finish(&op_key, &mut op, apply);
            cloud.store.put(&op_key, op);
        });
        Ok(self.render(&first))
    }

    /// The operation an earlier mutation with this `requestId` got, if any: a
    /// retry is answered with it, before any check that the first call's
    /// change would now fail (409 on a retried insert, say).
    pub fn replayed(&self, project: &str, request_id: &str) -> Result<Option<Value>, ApiError> {
        check_request_id(request_id)?;
        let Some(first) = self
            .store
            .get(&format!("ccd/requestIds/{project}/{request_id}"))
        else {
            return Ok(None);
        };
        let op_key = first["operation"].as_str().unwrap_or_default();
        Ok(self.store.get(op_key).map(|op| self.render(&op)))
    }

    fn finish(&self, op_key: &str, op: &mut Value, apply: Apply) {
        if op.get("startTime").is_none() {
            op["startTime"] = clock::now_rfc3339().into();
        }
        match apply(self) {
            Ok(target_id) => {
                if let Some(id) = target_id {
                    op["targetId"] = id.into();
                }
            }
            Err(e) => {
                tracing::info!(operation = op_key, error = %e, "operation failed");
                op["error"] = e.operation_error();
                op["httpErrorStatusCode"] = e.status.as_u16().into();
                op["httpErrorMessage"] = e
                    .status
                    .canonical_reason()
                    .unwrap_or("")
                    .to_uppercase()
                    .into();
            }
        }
        op["status"] = "DONE".into();
        op["progress"] = 100.into();
        op["endTime"] = clock::now_rfc3339().into();
    }

    /// `operations/{op}/wait`: returns when DONE or after about two minutes, as Compute does.
    pub async fn wait_operation(&self, op_key: &str, limit: Duration) -> Result<Value, ApiError> {
        let mut changes = self.store.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let op = self
                .store
                .get(op_key)
                .ok_or_else(|| ApiError::not_found(op_key))?;
            if op["status"] == "DONE" {
                return Ok(self.render(&op));
            }
            let next = tokio::time::timeout_at(deadline, async {
                loop {
                    match changes.recv().await {
                        Ok(c) if c.key == op_key => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            });
            if next.await.is_err() {
                return Ok(self.render(&op));
            }
        }
    }

    fn render(&self, op: &Value) -> Value {
        op.clone()
    }
}

/// A change to one stored resource, made when its operation runs.
pub type Change = Box<dyn FnOnce(&mut Value) -> Result<(), ApiError> + Send>;

impl Cloud {
    /// Runs `change` on the resource at `key` as an operation of `operation_type`.
    pub async fn change_operation(
        self: &Arc<Self>,
        call: &crate::api::Call,
        operation_type: &str,
        key: &str,
        change: Change,
    ) -> Result<Value, ApiError> {
        let op = OpRequest {
            scope: &call.target.scope,
            operation_type,
            target: key,
            request_id: call.request_id(),
        };
        let key = key.to_owned();
        self.operation(
            op,
            Box::new(move |cloud| {
                let mut id = None;
                cloud.store.update(&key, |old| {
                    let mut resource = old.cloned().ok_or_else(|| ApiError::not_found(&key))?;
                    id = resource["id"].as_str().map(str::to_owned);
                    change(&mut resource)?;
                    Ok(Some(resource))
                })?;
                Ok(id)
            }),
        )
        .await
    }
}

/// Compute wants a UUID, and not the zero UUID.
fn check_request_id(id: &str) -> Result<(), ApiError> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let shaped = id.len() == 36
        && hex.len() == 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && [8, 13, 18, 23].iter().all(|i| id.as_bytes()[*i] == b'-');
    if shaped && hex.chars().any(|c| c != '0') {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid value for field 'requestId': '{id}'. The request ID must be a valid UUID with the exception that zero UUID is not supported."
        )))
    }
}
