//! Instances as processes: each instance with a local run description runs
//! its program on its own loopback address, started when the instance is
//! created, restarted when it crashes (by the supervisor), stopped with
//! SIGTERM then SIGKILL when it is deleted. After a restart of the local
//! cloud, RUNNING instances start again, as VMs do after a host restart.
//! The template's secrets are read from files as the process starts; one
//! that cannot be read stops the start, as it stops a VM's startup script.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccd_supervisor::{ProcessSpec, ProcessState, Supervisor};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cloud::Cloud;
use crate::guest::{Guest, Vm, metadata_items};
use crate::iam;
use crate::local_run::{self, LocalRun};
use crate::paths;
use crate::secrets;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Instances {
    supervisor: Option<Supervisor>,
    data_dir: PathBuf,
    /// `DIR/secrets`; `None` in a local cloud without a data folder.
    secrets_dir: Option<PathBuf>,
    /// Instance key → the instance started there.
    running: Arc<Mutex<HashMap<String, Life>>>,
    metadata_host: Arc<Mutex<Option<String>>>,
    /// What runs beside each process (ccd's agent under `ccd up`).
    guest: Option<Arc<dyn Guest>>,
}

impl Instances {
    pub fn new(
        supervisor: Option<Supervisor>,
        data_dir: PathBuf,
        guest: Option<Arc<dyn Guest>>,
    ) -> Self {
        Instances {
            secrets_dir: supervisor.as_ref().map(|_| data_dir.join("secrets")),
            supervisor,
            data_dir,
            running: Default::default(),
            metadata_host: Default::default(),
            guest,
        }
    }

    pub fn set_metadata_host(&self, host: String) {
        *self.metadata_host.lock().unwrap_or_else(|e| e.into_inner()) = Some(host);
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Life>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings processes in line with the instances in the store.
    pub async fn reconcile(&self, cloud: &Arc<Cloud>) {
        // One instance at a time: parsing them all at once would make the
        // pass's memory grow with the size of the cloud.
        let running: Vec<(String, String)> = self
            .running()
            .iter()
            .map(|(k, v)| (k.clone(), v.id.clone()))
            .collect();
        for (key, id) in running {
            let current = cloud.store.get(&key);
            if current.is_none_or(|i| i["id"].as_str() != Some(id.as_str()) || stops(&i)) {
                self.stop(&key);
                cloud.health.forget(&key);
            }
        }
        for key in cloud.store.keys("projects/", |k| k.contains("/instances/")) {
            let Some(instance) = cloud.store.get(&key) else {
                continue;
            };
            let id = instance["id"].as_str().unwrap_or_default().to_owned();
            match instance["status"].as_str() {
                Some("PROVISIONING" | "STAGING" | "RUNNING")
                    if self.running().get(&key).is_none_or(|l| l.id != id) =>
                {
                    // A VM whose program cannot start still boots: it is RUNNING,
                    // and its health check tells the rest. One still stopping
                    // from its previous life is started on a later pass.
                    let (process, guest) = match self.start(cloud, &key, &instance) {
                        Err(Start::Busy) => continue,
                        Err(Start::Failed(e)) => {
                            tracing::warn!(instance = %key, error = %e, "cannot start the instance's program");
                            (false, None)
                        }
                        Ok(None) => (false, None),
                        Ok(Some(guest)) => (true, guest),
                    };
                    let life = Life {
                        id: id.clone(),
                        process,
                        guest,
                    };
                    self.running().insert(key.clone(), life);
                    set_status(&cloud.store, &key, &id, "RUNNING");
                }
                Some("STOPPING") => set_status(&cloud.store, &key, &id, "TERMINATED"),
                _ => {}
            }
        }
    }

    /// `Some` when a process was started (not for a simulated instance, nor
    /// in a local cloud without a data folder), with its guest's stop.
    fn start(
        &self,
        cloud: &Cloud,
        key: &str,
        instance: &Value,
    ) -> Result<Option<Option<CancellationToken>>, Start> {
        let template = template_of(cloud, instance);
        let run = local_run::of_template(&template).map_err(Start::Failed)?;
        if run.simulated {
            return Ok(None);
        }
        let name = paths::name_of(key);
        let zone = instance["zone"].as_str().map_or("zone", paths::name_of);
        let account = service_account_of(instance, &template);
        // An account made through the local IAM reads only what it is granted.
        let may_read = |r: &secrets::Reference| {
            iam::secret_access(&cloud.store, account.as_deref(), &r.project, &r.secret)
        };
        let secret_env = secrets::of_template(&template)
            .and_then(|refs| {
                secrets::check_not_expanded(&refs, run.command.iter().chain(&run.args))?;
                secrets::resolve(self.secrets_dir.as_deref(), &refs, may_read)
                    .map_err(|p| p.join("; "))
            })
            .map_err(|problem| {
                // What a VM's serial console would show: the boot stops here.
                if self.supervisor.is_some() {
                    self.boot_log(zone, name, &format!("cannot start the app: {problem}"));
                }
                Start::Failed(problem)
            })?;
        let Some(supervisor) = &self.supervisor else {
            return Ok(None);
        };
        let ip = instance["networkInterfaces"][0]["networkIP"]
            .as_str()
            .unwrap_or("127.0.0.1");
        let mut env = run.env.clone();
        env.extend(secret_env);
        env.insert("HOST".to_owned(), ip.to_owned());
        env.insert("CCD_INSTANCE".to_owned(), name.to_owned());
        if let Some(host) = self
            .metadata_host
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            env.insert(
                "GCE_METADATA_HOST".to_owned(),
                format!("{host}/instances/{zone}/{name}"),
            );
        }
        let (command, leading) = run
            .command
            .split_first()
            .ok_or(Start::Failed("no command".to_owned()))?;
        let process = format!("{zone}.{name}");
        write_app_file(&self.log_dir(zone, name), &template, instance);
        let spec = ProcessSpec {
            name: process.clone(),
            command: command.clone(),
            args: leading.iter().chain(run.args.iter()).cloned().collect(),
            env: env.clone(),
            working_dir: None,
            log_dir: self.log_dir(zone, name),
            stop_grace: Duration::from_secs(run.stop_grace_sec.unwrap_or(30)),
        };
        supervisor.start(spec).map_err(|e| match e {
            // The previous life of a recreated instance is still on its way
            // out (its stop runs in the background): start on a later pass.
            ccd_supervisor::Error::Stopping { .. } | ccd_supervisor::Error::SpecConflict { .. } => {
                Start::Busy
            }
            e => Start::Failed(e.to_string()),
        })?;
        let Some(guest) = &self.guest else {
            return Ok(Some(None));
        };
        let stop = CancellationToken::new();
        let watched = supervisor.clone();
        guest.boot(
            Vm {
                name: name.to_owned(),
                id: instance["id"].as_str().unwrap_or_default().to_owned(),
                zone: zone.to_owned(),
                ip: ip.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                metadata: metadata_items(&template),
                env,
                program: Arc::new(move || match watched.status(&process)?.state {
                    ProcessState::Running { pid, .. } => Some(pid),
                    _ => None,
                }),
            },
            stop.clone(),
        );
        Ok(Some(Some(stop)))
    }

    fn log_dir(&self, zone: &str, name: &str) -> PathBuf {
        self.data_dir.join("instances").join(zone).join(name)
    }

    /// Appends a line to the instance's `stderr.log`, where its program's
    /// own errors would be.
    fn boot_log(&self, zone: &str, name: &str, line: &str) {
        let dir = self.log_dir(zone, name);
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600) // the same file the supervisor keeps private
                .open(dir.join("stderr.log"))?;
            writeln!(f, "ccd-localcloud: {line}")
        });
        if let Err(e) = written {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the instance's log");
        }
    }

    /// Stops in the background: a program slow to exit must not hold up
    /// every other instance.
    fn stop(&self, key: &str) {
        // Only a life that had a process: stopping by name would otherwise
        // stop the process of the instance's next life, started meanwhile.
        let life = self.running().remove(key);
        if let Some(guest) = life.as_ref().and_then(|l| l.guest.as_ref()) {
            guest.cancel();
        }
        let had_process = life.is_some_and(|l| l.process);
        let (true, Some(supervisor)) = (had_process, self.supervisor.clone()) else {
            return;
        };
        let zone = key
            .split("/zones/")
            .nth(1)
            .and_then(|z| z.split('/').next())
            .unwrap_or("zone");
        let name = format!("{zone}.{}", paths::name_of(key));
        let key = key.to_owned();
        tokio::spawn(async move {
            if let Err(e) = supervisor.stop(&name).await {
                tracing::debug!(instance = key, error = %e, "stop");
            }
        });
    }

    /// Crash on demand: the process is killed and restarts by policy.
    pub async fn crash(&self, key: &str) -> Result<(), String> {
        let supervisor = self.supervisor.as_ref().ok_or("instances are simulated")?;
        let zone = key
            .split("/zones/")
            .nth(1)
            .and_then(|z| z.split('/').next())
            .unwrap_or("zone");
        let name = format!("{zone}.{}", paths::name_of(key));
        supervisor
            .signal(&name, ccd_supervisor::Signal::SIGKILL)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn shutdown(&self) {
        for life in self.running().values() {
            if let Some(guest) = &life.guest {
                guest.cancel();
            }
        }
        if let Some(s) = &self.supervisor {
            s.stop_all().await;
        }
    }
}

/// One life of an instance (a recreated instance has a new id).
#[derive(Debug, Clone)]
struct Life {
    id: String,
    /// A supervised process was started for it.
    process: bool,
    /// Stops what the guest runs beside the process.
    guest: Option<CancellationToken>,
}

enum Start {
    /// The previous process of this instance is still stopping.
    Busy,
    Failed(String),
}

fn stops(instance: &Value) -> bool {
    matches!(
        instance["status"].as_str(),
        Some("STOPPING" | "TERMINATED" | "SUSPENDED")
    )
}

/// The local run description of an instance's template.
fn run_of(cloud: &Cloud, instance: &Value) -> Result<LocalRun, String> {
    local_run::of_template(&template_of(cloud, instance))
}

/// An instance's template, or its own metadata shaped as one when it has none.
fn template_of(cloud: &Cloud, instance: &Value) -> Arc<Value> {
    let template = instance["metadata"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["key"] == "instance-template")
        .and_then(|i| i["value"].as_str())
        .and_then(|l| cloud.store.get(&cloud.key_of(l)));
    match template {
        Some(t) => t,
        // A standalone instance carries its own metadata.
        None => {
            Arc::new(serde_json::json!({"properties": {"metadata": instance["metadata"].clone()}}))
        }
    }
}

/// Names the instance's app (its template's `ccd-app` label) beside its logs,
/// so that `ccd up`'s log shipper knows whose output they are.
fn write_app_file(dir: &std::path::Path, template: &Value, instance: &Value) {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let label = |v: &Value| v["labels"][ccd_wire::APP_LABEL].as_str().map(str::to_owned);
    let Some(app) = label(&template["properties"]).or_else(|| label(instance)) else {
        return;
    };
    let written = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(dir.join(ccd_wire::INSTANCE_APP_FILE))?;
            f.write_all(app.as_bytes())
        });
    if let Err(e) = written {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot name the instance's app; its logs are not shipped");
    }
}

/// The account an instance runs as: its own `serviceAccounts[0]`, else its
/// template's.
fn service_account_of(instance: &Value, template: &Value) -> Option<String> {
    instance
        .pointer("/serviceAccounts/0/email")
        .or_else(|| template.pointer("/properties/serviceAccounts/0/email"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub fn is_simulated(cloud: &Cloud, instance: &Value) -> bool {
    run_of(cloud, instance).map_or(true, |r| r.simulated)
}

fn set_status(store: &Store, key: &str, id: &str, status: &str) {
    let _ = store.update::<()>(key, |old| match old {
        Some(i) if i["id"].as_str() == Some(id) && i["status"] != status => {
            let mut i = i.clone();
            i["status"] = status.into();
            Ok(Some(i))
        }
        _ => Err(()),
    });
}

/// A loopback address of its own for each new instance. Each local cloud
/// starts at a random block of 127.0.0.0/8 (and keeps counting from it after
/// restarts), so that several local clouds on one machine, such as parallel
/// tests, do not hand out the same addresses.
pub fn allocate_ip(store: &Store) -> String {
    let mut n = 0u32;
    let _ = store.update::<()>("ccd/next-instance-ip", |old| {
        n = match old.and_then(Value::as_u64) {
            Some(next) => next as u32,
            None => (crate::clock::new_id().parse::<u64>().unwrap_or(0) % 250) as u32 * 254 * 256,
        };
        Ok(Some(Value::from(n + 1)))
    });
    // Skip .0 and .255 in the last octet to avoid network and broadcast-looking addresses.
    let host = n % 254 + 1;
    let rest = n / 254;
    format!("127.{}.{}.{host}", 1 + rest / 256 % 254, rest % 256)
}

/// `instances.stop`, `start` and `reset`: the process stops (SIGTERM, then
/// SIGKILL after the grace period), starts again, or is restarted.
pub async fn verb(
    cloud: &Arc<Cloud>,
    call: &crate::api::Call,
) -> Result<Value, crate::error::ApiError> {
    use crate::error::ApiError;
    let key = call.key()?.to_owned();
    if cloud.store.get(&key).is_none() {
        return Err(ApiError::not_found(&key));
    }
    let name = call.method.name.clone();
    let next = match name.as_str() {
        "stop" => "STOPPING",
        "start" => "PROVISIONING",
        // A new id makes the runtime stop the process and start it afresh.
        "reset" => "PROVISIONING",
        other => return Err(crate::handlers::not_implemented("instances", other)),
    };
    let change: crate::ops::Change = Box::new(move |i| {
        if name == "start" && i["status"] != "TERMINATED" && i["status"] != "STOPPING" {
            return Ok(());
        }
        i["status"] = next.into();
        if name == "reset" {
            i["id"] = crate::clock::new_id().into();
        }
        Ok(())
    });
    cloud
        .change_operation(call, &call.method.name, &key, change)
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_app_is_named_beside_the_logs_for_the_log_shipper() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("ccd-app-file-{}", std::process::id()));
        let template = serde_json::json!({"properties": {"labels": {"ccd-app": "web"}}});
        write_app_file(&dir.join("web-1"), &template, &Value::Null);
        let file = dir.join("web-1").join(ccd_wire::INSTANCE_APP_FILE);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "web");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_app_file(&dir.join("other"), &serde_json::json!({}), &Value::Null);
        assert!(!dir.join("other").exists(), "no label, no file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
