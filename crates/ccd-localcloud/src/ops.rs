//! Operations: every mutation answers with one that goes PENDING, RUNNING,
//! DONE, carrying `error` when the change failed, as Compute's do. A retried
//! mutation with the same `requestId` gets the first operation back.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::error::ApiError;
use crate::store::StoreError;
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
        // Before the first write: the answer waits for all of them.
        let since = self.store.mark();
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
            self.store
                .durable(since.through(seq))
                .await
                .map_err(|e| unsaved(&e))?;
            return Ok(self.render(&op));
        }
        let seq = self.store.put(&op_key, op.clone());
        self.store
            .durable(since.through(seq))
            .await
            .map_err(|e| unsaved(&e))?;
        let cloud = self.clone();
        let first = op.clone();
        tokio::spawn(async move {
            tokio::time::sleep(latency / 2).await;
            op["status"] = "RUNNING".into();
            op["startTime"] = clock::now_rfc3339().into();
            cloud.store.put(&op_key, op.clone());
            tokio::time::sleep(latency - latency / 2).await;
            let since = cloud.store.mark();
            cloud.finish(&op_key, &mut op, apply);
            let seq = cloud.store.put(&op_key, op.clone());
            if let Err(e) = cloud.store.durable(since.through(seq)).await {
                cloud.end_unsaved(&op_key, op, &e).await;
            }
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

    /// An operation whose change was undone (its commit failed) ends DONE
    /// with the error rather than staying where the undo left it, PENDING or
    /// RUNNING, for ever; the client then retries as after any 5xx.
    async fn end_unsaved(&self, op_key: &str, mut op: Value, error: &StoreError) {
        let failure = unsaved(error);
        if let Some(fields) = op.as_object_mut() {
            fields.remove("targetId");
        }
        op["error"] = json!({"errors": [{"code": "INTERNAL_ERROR", "message": failure.message}]});
        op["httpErrorStatusCode"] = failure.status.as_u16().into();
        op["httpErrorMessage"] = "SERVICE UNAVAILABLE".into();
        // The writer backs off between failed commits, so this spans a while.
        for _ in 0..10 {
            let seq = self.store.put(op_key, op.clone());
            match self.store.durable(seq).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(operation = op_key, error = %e, "cannot record the operation's failure yet")
                }
            }
        }
        tracing::error!(
            operation = op_key,
            "gave up recording the operation's failure"
        );
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

/// A change that could not be saved was undone: a 503, which clients retry
/// (with the same `requestId`, whose record was undone with it).
fn unsaved(error: &StoreError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "backendError",
        format!("{error}. Retry the request."),
    )
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::store::faulty::{self, Switch};
    use crate::{Config, FaultConfig, LocalCloud};

    /// A local cloud on a data folder whose disk fails on demand.
    struct Disk {
        cloud: LocalCloud,
        switch: Arc<Switch>,
        dir: std::path::PathBuf,
        http: reqwest::Client,
    }

    impl Disk {
        async fn start(tag: &str, faults: FaultConfig) -> Disk {
            let dir = std::env::temp_dir().join(format!("ccd-ops-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let switch = faulty::switch(&dir.join("localcloud.redb"));
            let cloud = LocalCloud::start(Config {
                data_dir: Some(dir.clone()),
                faults,
                ..Config::default()
            })
            .await
            .unwrap();
            let http = reqwest::Client::new();
            Disk {
                cloud,
                switch,
                dir,
                http,
            }
        }

        fn full(&self, full: bool) {
            self.switch.full.store(full, Ordering::Release);
        }

        /// Returns once a commit succeeded, so no batch taken while the disk
        /// failed is still to fail.
        async fn settled(&self) {
            let store = &self.cloud.cloud.store;
            while store
                .durable(store.put("ccd/test/settled", json!(true)))
                .await
                .is_err()
            {}
        }

        /// `path` below `/compute/v1/projects/p/`; the status and the JSON answer.
        async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
            let url = format!("{}projects/p/{path}", self.cloud.compute_url());
            let mut request = self
                .http
                .request(method.parse().unwrap(), url)
                .bearer_auth(self.cloud.token());
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or_default())
        }

        /// Shuts down and reads the resource from the file.
        async fn on_disk(self, key: &str) -> Option<Arc<Value>> {
            self.cloud.shutdown().await;
            let found = crate::store::Store::open(&self.dir).unwrap().get(key);
            let _ = std::fs::remove_dir_all(&self.dir);
            found
        }
    }

    fn firewall() -> Value {
        json!({"name": "fw", "sourceRanges": ["10.0.0.0/8"],
            "allowed": [{"IPProtocol": "tcp", "ports": ["80"]}]})
    }

    /// A change the local cloud cannot save is answered with an error, is
    /// not visible afterwards, and goes through once the disk has room.
    #[tokio::test]
    async fn an_insert_whose_commit_fails_is_answered_with_an_error_and_undone() {
        let disk = Disk::start("unsaved", FaultConfig::default()).await;
        disk.full(true);
        let (status, answer) = disk
            .call("POST", "global/firewalls", Some(&firewall()))
            .await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["status"], "UNAVAILABLE", "{answer}");
        let (status, answer) = disk.call("GET", "global/firewalls/fw", None).await;
        assert_eq!(status, 404, "{answer}");

        disk.full(false);
        disk.settled().await;
        let (status, answer) = disk
            .call("POST", "global/firewalls", Some(&firewall()))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "DONE", "{answer}");
        let (status, answer) = disk.call("GET", "global/firewalls/fw", None).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            disk.on_disk("projects/p/global/firewalls/fw")
                .await
                .is_some()
        );
    }

    /// A slow operation whose change cannot be saved ends DONE with a 503,
    /// rather than going back to PENDING for ever.
    #[tokio::test]
    async fn a_slow_operation_whose_change_is_undone_ends_with_an_error() {
        let faults = FaultConfig {
            operation_latency_ms: 200,
            ..FaultConfig::default()
        };
        let disk = Disk::start("unsaved-slow", faults).await;
        let (status, op) = disk
            .call("POST", "global/firewalls", Some(&firewall()))
            .await;
        assert_eq!(status, 200, "{op}");
        assert_eq!(op["status"], "PENDING", "{op}");
        disk.full(true);
        tokio::time::sleep(Duration::from_millis(500)).await;
        disk.full(false);

        let path = format!("global/operations/{}", op["name"].as_str().unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let op = loop {
            let (status, op) = disk.call("GET", &path, None).await;
            assert_eq!(status, 200, "{op}");
            if op["status"] == "DONE" {
                break op;
            }
            assert!(tokio::time::Instant::now() < deadline, "{op}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(op["httpErrorStatusCode"], 503, "{op}");
        assert_eq!(op["error"]["errors"][0]["code"], "INTERNAL_ERROR", "{op}");
        let (status, answer) = disk.call("GET", "global/firewalls/fw", None).await;
        assert_eq!(status, 404, "{answer}");
        assert!(
            disk.on_disk("projects/p/global/firewalls/fw")
                .await
                .is_none()
        );
    }
}
