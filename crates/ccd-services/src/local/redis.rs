//! The apps' caches under `ccd up`: a redis-server of its own under
//! `DATA/services/redis/`, an ACL user per app (`crate::cache`).

use std::path::PathBuf;
use std::time::Duration;

use super::LocalServices;
use super::files::{kept_password, lock, new_password, private_dir, write_private};
use super::rotation;
use super::server::{self, Server};
use crate::cache;
use crate::resp::Connection;
use crate::{ServiceStatus, password};

/// The cache's one variable.
const REDIS_URL: &str = ccd_spec::contract::CACHE[0];

#[derive(Debug)]
pub(crate) struct LocalRedis {
    /// Ours, stopped with ccd up (kill on drop); `None` for one adopted: a
    /// server an earlier ccd up left running (killed with SIGKILL) on its port.
    server: Option<tokio::process::Child>,
    address: String,
    admin_password: String,
}

impl Server for LocalRedis {
    async fn alive(&mut self) -> bool {
        match &mut self.server {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => admin(&self.address, &self.admin_password).await.is_ok(),
        }
    }
}

impl LocalServices {
    async fn redis(&self) -> Result<tokio::sync::MappedMutexGuard<'_, LocalRedis>, String> {
        server::running(
            &self.redis,
            "redis-server",
            LocalRedis::start(self.dir.join("redis")),
            || self.forget("cache"),
        )
        .await
        .map_err(|e| format!("cache: {e}"))
    }

    /// The app's cache user, its password of the current rotation (and the
    /// one it replaced while that is still valid): its status, and the
    /// generation of the password the app is to read.
    pub(super) async fn cache(
        &self,
        app: &str,
        namespace: Option<&str>,
    ) -> Result<(ServiceStatus, u32), String> {
        let grant = cache::grant(app, namespace).map_err(|e| e.to_string())?;
        self.claim(&grant)?;
        let rotation = rotation::read(&self.dir, app, "cache")?;
        let generation = rotation.generation;
        let redis = self.redis().await?;
        let secret = self.secret_file(app, "cache", REDIS_URL, generation);
        // The password the app already has, if any: a restart keeps it.
        let known = std::fs::read_to_string(&secret)
            .ok()
            .and_then(|url| password_in(&url, &grant.user));
        let password = match known {
            Some(p) => p,
            None => new_password()?,
        };
        let mut hashes = vec![password::sha256_hex(&password)];
        hashes.extend((rotation.retiring.iter()).filter_map(|r| r.password_sha256.clone()));
        let done = format!("{} {generation} {}", grant.namespace, hashes.join(" "));
        if !self.applied("cache", app, &done) {
            let mut admin = admin(&redis.address, &redis.admin_password).await?;
            let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
            cache::ensure_user(&mut admin, &grant, &hashes)
                .await
                .map_err(|e| format!("cache: {e}"))?;
            let url = cache::url(&grant, &password, &redis.address);
            self.deliver(app, "cache", generation, &[(REDIS_URL, url)])?;
            self.remember("cache", app, done);
        }
        let status = ServiceStatus {
            endpoint: Some(redis.address.clone()),
            user: Some(grant.user.clone()),
            scope: Some(format!("keys and channels {}*", grant.namespace)),
            name: Some(grant.namespace.clone()),
            message: rotation.message(),
            ..ServiceStatus::ready("cache")
        };
        Ok((status, generation))
    }

    /// A new password for the app's cache user, valid beside the one of
    /// generation `generation`: the variables with it, and the old
    /// password's hash (what keeps it valid until retired).
    pub(super) async fn rotate_cache(
        &self,
        app: &str,
        namespace: Option<&str>,
        generation: u32,
    ) -> Result<(Vec<(&'static str, String)>, String), String> {
        let grant = cache::grant(app, namespace).map_err(|e| e.to_string())?;
        let old = std::fs::read_to_string(self.secret_file(app, "cache", REDIS_URL, generation))
            .ok()
            .and_then(|url| password_in(&url, &grant.user))
            .ok_or_else(|| {
                format!(
                    "cache: {app} has no password yet to rotate: is its cache Ready (`ccd \
                     services {app}`)?"
                )
            })?;
        let redis = self.redis().await?;
        let new = new_password()?;
        let (old, new_hash) = (password::sha256_hex(&old), password::sha256_hex(&new));
        let mut admin = admin(&redis.address, &redis.admin_password).await?;
        cache::ensure_user(&mut admin, &grant, &[&new_hash, &old])
            .await
            .map_err(|e| format!("cache: {e}"))?;
        Ok((
            vec![(REDIS_URL, cache::url(&grant, &new, &redis.address))],
            old,
        ))
    }

    /// Holds `grant.namespace` for its app, unless it overlaps another app's.
    fn claim(&self, grant: &cache::CacheGrant) -> Result<(), String> {
        let mut held = lock(&self.namespaces);
        if let Some(message) = cache::overlap_with(grant, &held) {
            return Err(message);
        }
        held.insert(grant.app.clone(), grant.namespace.clone());
        Ok(())
    }

    /// Takes the app's user away; `delete` also the keys of its `namespace`
    /// (as its status recorded it).
    pub(super) async fn drop_cache(
        &self,
        app: &str,
        namespace: Option<&str>,
        delete: bool,
    ) -> Result<(), String> {
        let redis = self.redis().await?;
        let mut admin = admin(&redis.address, &redis.admin_password).await?;
        let held = lock(&self.namespaces).remove(app);
        if delete && let Some(namespace) = namespace.or(held.as_deref()) {
            cache::delete_keys(&mut admin, namespace)
                .await
                .map_err(|e| format!("cache: {e}"))?;
        }
        cache::remove_user(&mut admin, app)
            .await
            .map_err(|e| format!("cache: {e}"))?;
        if delete {
            self.undeliver(app, "cache");
        }
        self.forget_app("cache", app);
        Ok(())
    }
}

impl LocalRedis {
    /// Starts redis-server with a configuration of its own (its admin
    /// password in a 0600 file, never on a command line), on the port it
    /// had before when that is free, so the apps' URLs stay right.
    async fn start(dir: PathBuf) -> Result<LocalRedis, String> {
        let bin = server::on_path("redis-server", &["/usr/bin", "/usr/sbin", "/usr/local/bin"])
            .ok_or_else(|| {
                "redis-server (Redis 7) is not installed: apt-get install redis-server, then \
                 touch the spec (or restart ccd up)"
                    .to_owned()
            })?;
        let at = |e: std::io::Error, what: &str| format!("{what} {}: {e}", dir.display());
        private_dir(&dir).map_err(|e| at(e, "cannot create"))?;
        let admin_password = kept_password(&dir.join("admin-password"))?;
        if let Some(port) = server::recorded_port(&dir) {
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
        let port = server::claim_port(&dir)?;
        let conf = dir.join("redis.conf");
        write_private(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\nprotected-mode yes\nsave \"\"\nappendonly no\n\
                 dir {}\nrequirepass {admin_password}\n",
                dir.display()
            ),
        )
        .map_err(|e| at(e, "cannot write the configuration in"))?;
        let child = server::spawn(&bin, &[conf.display().to_string()], &dir, "redis.log")?;
        let redis = LocalRedis {
            server: Some(child),
            address: format!("127.0.0.1:{port}"),
            admin_password,
        };
        server::answers(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async { admin(&redis.address, &redis.admin_password).await.map(drop) },
        )
        .await
        .map_err(|last| {
            format!(
                "redis-server did not answer within 10 s ({last}); see {}",
                dir.join("redis.log").display()
            )
        })?;
        tracing::info!(address = %redis.address, "redis-server started for the apps' caches");
        Ok(redis)
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
