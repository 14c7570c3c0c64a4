//! The services of `ccd up`, on this machine: a redis-server of its own
//! under `DATA/services/redis/` (started when an app first asks for a
//! cache), and credentials written where the local cloud's Secret Manager
//! reads them (`DATA/cloud/secrets/<secret>`, mode 0600), so that instances
//! get them as the spec's own secrets, by reference.
//!
//! The cache and PostgreSQL (`DATA/services/postgres/`, `postgres.rs`) are
//! provided so far; the other kinds are reported as not provided, and do not
//! hold the app back (it receives nothing for them).

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::cache::{self, CacheGrant};
use crate::postgres::LocalPostgres;
use crate::resp::Connection;
use crate::sql;
use crate::{Provisioned, ServiceState, ServiceStatus, Services, names, password};

/// `ccd up`'s services.
#[derive(Debug)]
pub struct LocalServices {
    /// `DATA/services`.
    dir: PathBuf,
    /// The local cloud's Secret Manager folder.
    secrets: PathBuf,
    /// The server, once an app asked for a cache; started again if it stops.
    redis: tokio::sync::Mutex<Option<LocalRedis>>,
    /// The namespace each app holds, so that no two overlap.
    namespaces: Mutex<HashMap<String, String>>,
    /// What was applied in this process: (namespace, password hash) per app.
    applied: Mutex<HashMap<String, (String, String)>>,
    /// The PostgreSQL cluster, once an app asked for a database.
    postgres: tokio::sync::Mutex<Option<LocalPostgres>>,
    /// What was applied to it in this process: (database, password hash) per app.
    applied_sql: Mutex<HashMap<String, (String, String)>>,
}

#[derive(Debug)]
struct LocalRedis {
    /// Ours, stopped with ccd up (kill on drop); `None` for one adopted: a
    /// server an earlier ccd up left running (killed with SIGKILL) on its port.
    server: Option<tokio::process::Child>,
    address: String,
    admin_password: String,
}

impl LocalServices {
    /// Services kept under `data/services`, credentials in `secrets`.
    pub fn new(data: &Path, secrets: &Path) -> Self {
        LocalServices {
            dir: data.join("services"),
            secrets: secrets.to_owned(),
            redis: tokio::sync::Mutex::new(None),
            namespaces: Mutex::default(),
            applied: Mutex::default(),
            postgres: tokio::sync::Mutex::new(None),
            applied_sql: Mutex::default(),
        }
    }

    async fn sql(&self, app: &str, database: Option<&str>) -> Result<ServiceStatus, String> {
        let grant = sql::grant(app, database).map_err(|e| e.to_string())?;
        let mut slot = self.postgres.lock().await;
        if let Some(pg) = slot.as_mut()
            && !pg.alive().await
        {
            tracing::warn!(
                port = pg.port,
                "the apps' PostgreSQL stopped; starting it again"
            );
            *slot = None;
            lock(&self.applied_sql).clear();
        }
        if slot.is_none() {
            *slot = Some(LocalPostgres::start(self.dir.join("postgres")).await?);
        }
        let Some(pg) = slot.as_ref() else {
            return Err("sql: PostgreSQL did not start".to_owned());
        };
        let password_file = self.secrets.join(names::sql_secret(app, "PGPASSWORD"));
        let password = match std::fs::read_to_string(&password_file) {
            Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
            _ => password::generate().map_err(|e| format!("no randomness for a password: {e}"))?,
        };
        let done = (grant.database.clone(), password::sha256_hex(&password));
        if lock(&self.applied_sql).get(app) != Some(&done) {
            pg.apply(&sql::provision(&grant, &password))
                .await
                // psql quotes a failed statement: never the password.
                .map_err(|e| format!("sql: {}", e.replace(&password, "<password>")))?;
            for (env, value) in sql::env(&grant, &password, "127.0.0.1", pg.port) {
                let file = self.secrets.join(names::sql_secret(app, env));
                write_secret(&self.secrets, &file, &value)?;
            }
            lock(&self.applied_sql).insert(app.to_owned(), done);
        }
        Ok(ServiceStatus {
            kind: "sql".into(),
            state: ServiceState::Ready,
            endpoint: Some(format!("127.0.0.1:{}", pg.port)),
            user: Some(grant.role.clone()),
            scope: Some(format!("database {}", grant.database)),
            env: sql::ENV.map(str::to_owned).to_vec(),
            message: String::new(),
        })
    }

    async fn cache(&self, app: &str, namespace: Option<&str>) -> Result<ServiceStatus, String> {
        let grant = cache::grant(app, namespace).map_err(|e| e.to_string())?;
        self.claim(&grant)?;
        let (address, admin_password) = self.redis().await?;
        let secret = self.secrets.join(names::cache_secret(app));
        // The password the app already has, if any: a restart keeps it.
        let known = std::fs::read_to_string(&secret)
            .ok()
            .and_then(|url| password_in(&url, &grant.user));
        let password = match known {
            Some(p) => p,
            None => {
                password::generate().map_err(|e| format!("no randomness for a password: {e}"))?
            }
        };
        let hash = password::sha256_hex(&password);
        let done = (grant.namespace.clone(), hash.clone());
        let applied = lock(&self.applied).get(app) == Some(&done);
        if !applied {
            let mut admin = admin(&address, &admin_password).await?;
            cache::ensure_user(&mut admin, &grant, &hash)
                .await
                .map_err(|e| format!("cache: {e}"))?;
            write_secret(
                &self.secrets,
                &secret,
                &cache::url(&grant, &password, &address),
            )?;
            lock(&self.applied).insert(app.to_owned(), done);
        }
        Ok(ServiceStatus {
            kind: "cache".into(),
            state: ServiceState::Ready,
            endpoint: Some(address),
            user: Some(grant.user.clone()),
            scope: Some(format!("keys and channels {}*", grant.namespace)),
            env: vec![names::CACHE_ENV.to_owned()],
            message: String::new(),
        })
    }

    /// The server's address and admin password: the running one, or one
    /// started (again: a server that stopped has lost its users, so every
    /// grant is applied again).
    async fn redis(&self) -> Result<(String, String), String> {
        let mut slot = self.redis.lock().await;
        if let Some(r) = slot.as_mut() {
            let alive = match &mut r.server {
                Some(child) => matches!(child.try_wait(), Ok(None)),
                None => admin(&r.address, &r.admin_password).await.is_ok(),
            };
            if alive {
                return Ok((r.address.clone(), r.admin_password.clone()));
            }
            tracing::warn!(address = %r.address, "the apps' redis-server stopped; starting it again");
            *slot = None;
            lock(&self.applied).clear();
        }
        let r = LocalRedis::start(self.dir.join("redis")).await?;
        let found = (r.address.clone(), r.admin_password.clone());
        *slot = Some(r);
        Ok(found)
    }

    /// Holds `grant.namespace` for its app, unless it overlaps another app's.
    fn claim(&self, grant: &CacheGrant) -> Result<(), String> {
        let mut held = lock(&self.namespaces);
        for (other, namespace) in held.iter() {
            if *other == grant.app {
                continue;
            }
            if namespace.starts_with(&grant.namespace)
                || grant.namespace.starts_with(namespace.as_str())
            {
                return Err(format!(
                    "services.cache.namespace: {:?} overlaps app {other}'s {namespace:?}: each app \
                     needs a namespace that does not start with another's (e.g. \"{}:\")",
                    grant.namespace, grant.app
                ));
            }
        }
        held.insert(grant.app.clone(), grant.namespace.clone());
        Ok(())
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
            if let Some(c) = &asked.cache {
                match self.cache(name, c.namespace.as_deref()).await {
                    Ok(status) => {
                        out.credentials
                            .insert(names::CACHE_ENV.to_owned(), names::cache_secret(name));
                        out.services.push(status);
                    }
                    Err(message) => {
                        out.problem = Some(message.clone());
                        out.services.push(failed("cache", message));
                    }
                }
            }
            if let Some(db) = &asked.sql {
                let result = match db.engine {
                    ccd_spec::SqlEngine::Postgres => self.sql(name, db.database.as_deref()).await,
                    ccd_spec::SqlEngine::Mysql => Err(
                        "services.sql.engine: mysql is not provided by ccd up; use engine: postgres"
                            .to_owned(),
                    ),
                };
                match result {
                    Ok(status) => {
                        for env in &status.env {
                            out.credentials
                                .insert(env.clone(), names::sql_secret(name, env));
                        }
                        out.services.push(status);
                    }
                    Err(message) => {
                        out.problem.get_or_insert_with(|| message.clone());
                        out.services.push(failed("sql", message));
                    }
                }
            }
            let later = [
                ("nosql", asked.nosql.is_some()),
                ("storage", asked.storage.is_some()),
                ("logs", asked.logs.is_some()),
            ];
            for (kind, _) in later.into_iter().filter(|(_, asked)| *asked) {
                out.services.push(ServiceStatus {
                    state: ServiceState::NotProvided,
                    ..failed(
                        kind,
                        format!("{kind} is not provided by ccd up yet: the app receives no credentials for it"),
                    )
                });
            }
            out
        })
    }
}

fn failed(kind: &str, message: String) -> ServiceStatus {
    ServiceStatus {
        kind: kind.to_owned(),
        state: ServiceState::Failed,
        endpoint: None,
        user: None,
        scope: None,
        env: Vec::new(),
        message,
    }
}

impl LocalRedis {
    /// Starts redis-server with a configuration of its own (its admin
    /// password in a 0600 file, never on a command line), on the port it
    /// had before when that is free, so the apps' URLs stay right.
    async fn start(dir: PathBuf) -> Result<LocalRedis, String> {
        let bin = find_redis().ok_or_else(|| {
            "cache: redis-server (Redis 7) is not installed: apt-get install redis-server, then \
             touch the spec (or restart ccd up)"
                .to_owned()
        })?;
        let at = |e: std::io::Error, what: &str| format!("cache: {what} {}: {e}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| at(e, "cannot create"))?;
        let admin_file = dir.join("admin-password");
        let admin_password = match std::fs::read_to_string(&admin_file) {
            Ok(p) if !p.trim().is_empty() => p.trim().to_owned(),
            _ => {
                let p = password::generate().map_err(|e| at(e, "no password for"))?;
                write_private(&admin_file, &p)
                    .map_err(|e| at(e, "cannot write the password in"))?;
                p
            }
        };
        let port_file = dir.join("port");
        let recorded = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
        if let Some(port) = recorded {
            // A server an earlier ccd up left behind (SIGKILL): ours if it
            // takes our admin password. Adopted, the apps' URLs stay right.
            let address = format!("127.0.0.1:{port}");
            if admin(&address, &admin_password).await.is_ok() {
                tracing::info!(%address, "adopted the redis-server an earlier ccd up left running");
                return Ok(LocalRedis {
                    server: None,
                    address,
                    admin_password,
                });
            }
        }
        let port = crate::server::port_for(recorded)
            .ok_or_else(|| "cache: no free port on 127.0.0.1".to_owned())?;
        write_private(&port_file, &port.to_string())
            .map_err(|e| at(e, "cannot write the port in"))?;
        let conf = dir.join("redis.conf");
        write_private(
            &conf,
            &format!(
                "bind 127.0.0.1\nport {port}\nprotected-mode yes\nsave \"\"\nappendonly no\n\
                 dir {}\nrequirepass {admin_password}\n",
                dir.display()
            ),
        )
        .map_err(|e| at(e, "cannot write the configuration in"))?;
        let log = std::fs::File::create(dir.join("redis.log")).map_err(|e| at(e, "no log in"))?;
        let err = log.try_clone().map_err(|e| at(e, "no log in"))?;
        let server = tokio::process::Command::new(&bin)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cache: cannot start {}: {e}", bin.display()))?;
        let redis = LocalRedis {
            server: Some(server),
            address: format!("127.0.0.1:{port}"),
            admin_password,
        };
        let answered = crate::server::answers(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async { admin(&redis.address, &redis.admin_password).await.map(drop) },
        )
        .await;
        match answered {
            Ok(()) => {
                tracing::info!(address = %redis.address, "redis-server started for the apps' caches");
                Ok(redis)
            }
            Err(last) => Err(format!(
                "cache: redis-server did not answer within 10 s ({last}); see {}",
                dir.join("redis.log").display()
            )),
        }
    }
}

/// A connection as the server's administrator.
async fn admin(address: &str, password: &str) -> Result<Connection, String> {
    let mut c = Connection::connect(address)
        .await
        .map_err(|e| format!("cache: {e}"))?;
    c.auth("default", password)
        .await
        .map_err(|e| format!("cache: {e}"))?;
    Ok(c)
}

/// redis-server on PATH, or where Debian puts it.
fn find_redis() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|d: PathBuf| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// The password in `redis://USER:PASSWORD@...`.
fn password_in(url: &str, user: &str) -> Option<String> {
    let rest = url
        .trim()
        .strip_prefix("redis://")?
        .strip_prefix(user)?
        .strip_prefix(':')?;
    let (password, _) = rest.split_once('@')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// Writes a secret the local cloud reads: a folder only its owner enters,
/// the file 0600, replaced whole.
fn write_secret(dir: &Path, file: &Path, value: &str) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cache: cannot create {}: {e}", dir.display()))?;
    write_private(file, value).map_err(|e| format!("cache: cannot write {}: {e}", file.display()))
}

/// `path` holds `text`, mode 0600, replaced whole (a temporary file renamed).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_read_back_from_the_url_of_its_user_only() {
        let url = "redis://ccd-web:abc123@127.0.0.1:6379/0\n";
        assert_eq!(password_in(url, "ccd-web").as_deref(), Some("abc123"));
        assert_eq!(password_in(url, "ccd-api"), None);
        assert_eq!(password_in("redis://ccd-web:@h/0", "ccd-web"), None);
    }
}
