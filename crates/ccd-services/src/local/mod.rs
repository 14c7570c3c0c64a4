//! The services of `ccd up`, on this machine, each started when an app
//! first asks for it and again if it stops, under `DATA/services/`:
//! redis-server (`redis.rs`), PostgreSQL (`sql.rs`, `postgres.rs`), Google's
//! Firestore emulator (`firestore.rs`), fake-gcs-server (`storage.rs`), and
//! log shipping (`crate::logs`, which `ccd up` runs with [`LocalServices::log_asks`]).
//! Credentials are written where the local cloud's Secret Manager reads
//! them (`DATA/cloud/secrets/<secret>`, 0600), so that instances get them
//! as the spec's own secrets, by reference.
//!
//! Deleting an app releases its services as each one's `onDelete` says;
//! what is kept is recorded (`retained.rs`) until `ccd services prune`.
//!
//! A password can be rotated (`ccd services rotate`, [`LocalServices::rotate`]):
//! the new one is made valid beside the old and written as the secrets'
//! next version, which the template then reads, so the app rolls out with
//! it; once every instance runs with it ([`Services::settle`]) the old one
//! stops working (`rotation.rs` records where each stands).

mod backup;
mod files;
mod firestore;
mod postgres;
mod redis;
mod retained;
mod rotate;
mod rotation;
mod server;
mod sql;
mod storage;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use files::{lock, write_secret};
use firestore::LocalFirestore;
use postgres::LocalPostgres;
use redis::LocalRedis;
use storage::LocalGcs;

pub use backup::BackupReport;
pub use firestore::local_project;
pub use retained::Retained;
pub use storage::LOCAL_BUCKET;

use crate::{Provisioned, Released, ServiceState, ServiceStatus, Services, names};

/// `ccd up`'s services.
#[derive(Debug)]
pub struct LocalServices {
    /// `DATA/services`.
    dir: PathBuf,
    /// The local cloud's Secret Manager folder.
    secrets: PathBuf,
    redis: tokio::sync::Mutex<Option<LocalRedis>>,
    postgres: tokio::sync::Mutex<Option<LocalPostgres>>,
    firestore: tokio::sync::Mutex<Option<LocalFirestore>>,
    gcs: tokio::sync::Mutex<Option<LocalGcs>>,
    /// The namespace each app holds, so that no two overlap.
    namespaces: Mutex<HashMap<String, String>>,
    /// What was applied in this process, per (kind, app): a fingerprint of
    /// the grant, so an unchanged one costs nothing.
    applied: Mutex<HashMap<(&'static str, String), String>>,
    /// The apps whose spec asks for logs, and their retention: what the
    /// log shipper ships.
    logs: tokio::sync::watch::Sender<BTreeMap<String, Duration>>,
    /// The apps whose spec asks for SQL backups: what the backup loop backs up.
    backups: tokio::sync::watch::Sender<BTreeMap<String, ccd_spec::SqlDatabase>>,
    /// What each app's spec asked for when last provided: what retiring a
    /// rotated credential provides again.
    asked: Mutex<HashMap<String, ccd_spec::Services>>,
}

impl LocalServices {
    /// Services kept under `data/services`, credentials in `secrets`.
    pub fn new(data: &Path, secrets: &Path) -> Self {
        LocalServices {
            dir: services_dir(data),
            secrets: secrets.to_owned(),
            redis: tokio::sync::Mutex::new(None),
            postgres: tokio::sync::Mutex::new(None),
            firestore: tokio::sync::Mutex::new(None),
            gcs: tokio::sync::Mutex::new(None),
            namespaces: Mutex::default(),
            applied: Mutex::default(),
            logs: tokio::sync::watch::Sender::new(BTreeMap::new()),
            backups: tokio::sync::watch::Sender::new(BTreeMap::new()),
            asked: Mutex::default(),
        }
    }

    /// Where shipped logs are kept (`ccd logs` reads them there).
    pub fn logs_dir(data: &Path) -> PathBuf {
        logs_under(&services_dir(data))
    }

    /// The apps asking for logs and their retention, for the log shipper.
    pub fn log_asks(&self) -> tokio::sync::watch::Receiver<BTreeMap<String, Duration>> {
        self.logs.subscribe()
    }

    /// Backs up every app whose spec asks, when due (`schedule` after the
    /// last success; 5 minutes after a failure), until `stop`.
    pub async fn run_backups(
        self: std::sync::Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let asks = self.backups.borrow().clone();
            for (app, sql) in asks {
                let Some(backup) = &sql.backup else { continue };
                let now = ccd_clock::wall();
                let last = self.last_backup(&app);
                let wait = match &last {
                    Some(r) if !r.ok => backup.schedule.as_std().min(Duration::from_secs(300)),
                    _ => backup.schedule.as_std(),
                };
                let last_time = last
                    .and_then(|r| r.time.parse::<jiff::Timestamp>().ok())
                    .map(SystemTime::from);
                if !backup::due(last_time, wait, now) {
                    continue;
                }
                let report = self
                    .backup(&app, sql.database.as_deref(), backup.keep, now)
                    .await;
                if report.ok {
                    tracing::info!(
                        app,
                        tables = report.tables,
                        rows = report.rows,
                        "SQL backup taken and checked by a restore"
                    );
                } else {
                    tracing::warn!(app, problem = %report.message, "SQL backup failed");
                }
            }
        }
    }

    fn applied(&self, kind: &'static str, app: &str, done: &str) -> bool {
        lock(&self.applied)
            .get(&(kind, app.to_owned()))
            .is_some_and(|d| d == done)
    }

    fn remember(&self, kind: &'static str, app: &str, done: String) {
        lock(&self.applied).insert((kind, app.to_owned()), done);
    }

    /// A server of `kind` stopped: everything applied to it is to be done again.
    fn forget(&self, kind: &'static str) {
        lock(&self.applied).retain(|(k, _), _| *k != kind);
    }

    fn forget_app(&self, kind: &'static str, app: &str) {
        lock(&self.applied).remove(&(kind, app.to_owned()));
    }

    /// The file of the variable `env` of `app`'s `kind`, generation
    /// `generation` (the secret version `N` is the file `NAME@N`; the
    /// first generation is read as `latest`, the file `NAME`).
    fn secret_file(&self, app: &str, kind: &str, env: &str, generation: u32) -> PathBuf {
        let name = names::secret_of(app, kind, env);
        match generation {
            0 => self.secrets.join(name),
            g => self.secrets.join(format!("{name}@{g}")),
        }
    }

    /// Writes the variables of a service's `generation` as their secrets'
    /// version, not yet the latest: what a rotation rolls out.
    fn stage(
        &self,
        app: &str,
        kind: &str,
        generation: u32,
        values: &[(&str, String)],
    ) -> Result<(), String> {
        for (env, value) in values {
            let file = self.secret_file(app, kind, env, generation);
            write_secret(&self.secrets, &file, value).map_err(|e| format!("{kind}: {e}"))?;
        }
        Ok(())
    }

    /// Writes the variables a service delivers to the app, each its
    /// secret's version `generation` and its latest.
    fn deliver(
        &self,
        app: &str,
        kind: &str,
        generation: u32,
        values: &[(&str, String)],
    ) -> Result<(), String> {
        self.stage(app, kind, generation, values)?;
        self.stage(app, kind, 0, values)
    }

    /// Removes the secrets of a service that is gone, every version.
    fn undeliver(&self, app: &str, kind: &str) {
        for env in ccd_spec::contract::of(kind) {
            let name = names::secret_of(app, kind, env);
            let versions = format!("{name}@");
            for entry in std::fs::read_dir(&self.secrets)
                .into_iter()
                .flatten()
                .flatten()
            {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                if *file == name || file.starts_with(&versions) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        rotation::remove(&self.dir, app, kind);
    }

    /// Provides `app`'s `kind`: its status, and the generation of the
    /// credential the app is to read.
    async fn provide(
        &self,
        app: &str,
        asked: &ccd_spec::Services,
        kind: &str,
    ) -> Result<(ServiceStatus, u32), String> {
        let first = |status| (status, 0);
        match kind {
            "cache" => {
                let ns = asked.cache.as_ref().and_then(|c| c.namespace.as_deref());
                self.cache(app, ns).await
            }
            "sql" => match asked
                .sql
                .as_ref()
                .map(|s| (s.engine, s.database.as_deref()))
            {
                Some((ccd_spec::SqlEngine::Postgres, database)) => self.sql(app, database).await,
                _ => Err(
                    "services.sql.engine: mysql is not provided by ccd up; use engine: postgres"
                        .to_owned(),
                ),
            },
            "nosql" => {
                let database = asked.nosql.as_ref().and_then(|n| n.database.as_deref());
                self.nosql(app, database).await.map(first)
            }
            "storage" => {
                let bucket = asked.storage.as_ref().and_then(|s| s.bucket.as_deref());
                self.storage(app, bucket).await.map(first)
            }
            _ => Err(format!("{kind} is not a service")),
        }
    }

    /// What deleting apps kept, by app.
    pub fn retained(&self) -> Result<Vec<Retained>, String> {
        retained::list(&self.dir)
    }

    /// Removes what deleting `app` kept: its data and accounts are gone.
    /// The kinds removed; what could not be is kept on record, and named.
    pub async fn prune(&self, app: &str) -> Result<Vec<String>, String> {
        let Some(record) = self.retained()?.into_iter().find(|r| r.app == app) else {
            return Err(format!("{app} has nothing kept (see `ccd services prune`)"));
        };
        let (mut removed, mut kept, mut problems) = (Vec::new(), Vec::new(), Vec::new());
        for service in record.services {
            let gone = ServiceStatus {
                on_delete: Some(ccd_spec::OnDelete::Delete.as_str().to_owned()),
                ..service.clone()
            };
            match self.release_one(app, &gone).await {
                Ok(()) => removed.push(service.kind.clone()),
                Err(e) => {
                    problems.push(format!("{}: {e}", service.kind));
                    kept.push(service);
                }
            }
        }
        retained::record(&self.dir, app, &kept)?;
        if problems.is_empty() {
            Ok(removed)
        } else {
            Err(format!(
                "{app}: kept, because removing failed: {}",
                problems.join("; ")
            ))
        }
    }

    /// Releases one service of a deleted app as its `onDelete` says.
    async fn release_one(&self, app: &str, service: &ServiceStatus) -> Result<(), String> {
        let delete = service.on_delete.as_deref() == Some("delete");
        let name = service.name.as_deref();
        match service.kind.as_str() {
            "cache" => self.drop_cache(app, name, delete).await,
            "sql" if service.on_delete.as_deref() == Some("snapshot") => {
                // A checked backup first (every earlier one kept); only then
                // is the database dropped. A failed one keeps the database.
                let report = self.backup(app, name, u32::MAX, ccd_clock::wall()).await;
                if !report.ok {
                    return Err(format!(
                        "sql: no snapshot, the database is kept: {}",
                        report.message
                    ));
                }
                self.drop_sql(app, name, true).await
            }
            "sql" => self.drop_sql(app, name, delete).await,
            "nosql" if delete => self.drop_nosql(app, name).await,
            "storage" if delete => {
                let bucket = name.and_then(|n| n.split_once('/')).map(|(b, _)| b);
                self.drop_storage(app, bucket).await
            }
            "logs" => {
                // Shipped logs expire by their retention; delete removes them now.
                if delete {
                    let dir = logs_under(&self.dir).join(app);
                    if dir.exists() {
                        std::fs::remove_dir_all(&dir)
                            .map_err(|e| format!("logs: cannot remove {}: {e}", dir.display()))?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Services for LocalServices {
    fn ensure<'a>(
        &'a self,
        app: &'a ccd_spec::App,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Provisioned> + Send + 'a>> {
        Box::pin(async move {
            let name = app.metadata.name.as_str();
            let asked = &app.spec.services;
            let mut out = Provisioned::default();
            // The app is back: what its deletion kept is its own again.
            if let Err(e) = retained::record(&self.dir, name, &[]) {
                tracing::warn!(app = name, error = %e, "cannot clear the record of kept services");
            }
            lock(&self.asked).insert(name.to_owned(), asked.clone());
            for (kind, variables) in asked.variables() {
                match self.provide(name, asked, kind).await {
                    Ok((status, generation)) => {
                        out.ready_at(name, kind, variables, generation, status);
                    }
                    Err(message) => out.failed(kind, message),
                }
            }
            let backed_up = asked.sql.as_ref().filter(|s| s.backup.is_some());
            self.backups.send_if_modified(|asks| match backed_up {
                Some(s) => asks.insert(name.to_owned(), s.clone()).as_ref() != Some(s),
                None => asks.remove(name).is_some(),
            });
            let retention = asked.logs.as_ref().map(|l| l.retention.as_std());
            self.logs.send_if_modified(|asks| match retention {
                Some(r) => asks.insert(name.to_owned(), r) != Some(r),
                None => asks.remove(name).is_some(),
            });
            if let Some(logs) = &asked.logs {
                out.services.push(ServiceStatus {
                    scope: Some(format!("stdout and stderr, kept {}", logs.retention)),
                    name: Some(format!("logs/{name}")),
                    ..ServiceStatus::ready("logs")
                });
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
            lock(&self.asked).remove(app);
            self.logs
                .send_if_modified(|asks| asks.remove(app).is_some());
            let mut released = Released::default();
            let mut kept = Vec::new();
            for service in services.iter().filter(|s| s.state == ServiceState::Ready) {
                let result = self.release_one(app, service).await;
                let delete = matches!(service.on_delete.as_deref(), Some("delete" | "snapshot"));
                match result {
                    Ok(()) if delete => released.deleted.push(service.kind.clone()),
                    Ok(()) => {
                        released.retained.push(service.kind.clone());
                        kept.push(service.clone());
                    }
                    Err(e) => {
                        released.problems.push(format!(
                            "{}: kept, because removing it failed ({e}); `ccd services prune {app}` \
                             removes it",
                            service.kind
                        ));
                        kept.push(service.clone());
                    }
                }
            }
            if let Err(e) = retained::record(&self.dir, app, &kept) {
                released.problems.push(e);
            }
            released
        })
    }

    fn settle<'a>(
        &'a self,
        app: &'a str,
        in_use: &'a BTreeMap<String, crate::Credential>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(async move {
            let mut retired = Vec::new();
            for kind in ["sql", "cache"] {
                if let Some(done) = self.retire(app, kind, in_use).await {
                    retired.push(done);
                }
            }
            retired
        })
    }
}

/// `DATA/services`, where every service of `ccd up` keeps its files.
fn services_dir(data: &Path) -> PathBuf {
    data.join("services")
}

/// Where shipped logs are kept below the services' folder.
fn logs_under(services: &Path) -> PathBuf {
    services.join("logs")
}
