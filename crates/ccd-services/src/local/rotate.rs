//! Rotating an app's password under `ccd up` ([`LocalServices::rotate`],
//! which `ccd services rotate` runs), and retiring the old one once every
//! instance runs with the new ([`LocalServices::retire`], from
//! `Services::settle`). Where each stands is `rotation.rs`'s record.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::LocalServices;
use super::files::lock;
use super::rotation;
use crate::Credential;

impl LocalServices {
    /// Makes a new password of `app`'s `kind` valid beside the old one and
    /// its secrets' next version: the app rolls out with it on the next
    /// pass of `ccd up`, and the old one is retired once every instance
    /// runs with the new. What the app's status will say, in words.
    pub async fn rotate(&self, app: &ccd_spec::App, kind: &str) -> Result<String, String> {
        let name = app.metadata.name.as_str();
        let asked = &app.spec.services;
        let current = rotation::read(&self.dir, name, kind)?;
        if let Some(r) = &current.retiring {
            return Err(format!(
                "{name}'s {kind}: a rotation is under way since {}: password {} rolls out, and \
                 password {} is retired once every instance runs with it (`ccd services {name}` \
                 shows it); rotate again after that",
                r.since, current.generation, r.generation
            ));
        }
        let next = current.generation + 1;
        let since = jiff::Timestamp::try_from(ccd_clock::wall())
            .map(|t| t.to_string())
            .unwrap_or_default();
        // The new password is valid, and staged as the next version, before
        // the record names it: a crash in between leaves the old rotation.
        let (values, old_hash) = match (kind, asked) {
            ("cache", ccd_spec::Services { cache: Some(c), .. }) => {
                let ns = c.namespace.as_deref();
                let (values, old) = self.rotate_cache(name, ns, current.generation).await?;
                (values, Some(old))
            }
            ("sql", ccd_spec::Services { sql: Some(s), .. }) => (
                self.rotate_sql(name, s.database.as_deref(), next).await?,
                None,
            ),
            ("cache" | "sql", _) => {
                return Err(format!(
                    "{name} does not ask for {kind} (services.{kind} in specs/{name}.yaml)"
                ));
            }
            _ => {
                return Err(format!(
                    "{kind} has no password to rotate under ccd up: the emulators take none, and \
                     on Google Cloud the app's service account reaches it; rotate sql or cache"
                ));
            }
        };
        self.stage(name, kind, next, &values)?;
        let rotated = rotation::Rotation {
            generation: next,
            retiring: Some(rotation::Retiring {
                generation: current.generation,
                since,
                password_sha256: old_hash,
            }),
        };
        rotation::write(&self.dir, name, kind, &rotated)?;
        self.deliver(name, kind, next, &values)?;
        Ok(rotated.message())
    }

    /// Retires the password a rotation of `app`'s `kind` replaced, when
    /// `in_use` (what every instance runs with) is the new one: the record
    /// first (a crash after it leaves the next pass to finish), then the
    /// server, then the old secret versions. What was done, in words.
    pub(super) async fn retire(
        &self,
        app: &str,
        kind: &str,
        in_use: &BTreeMap<String, Credential>,
    ) -> Option<String> {
        let current = rotation::read(&self.dir, app, kind).ok()?;
        let old = current.retiring.as_ref()?;
        let running: Vec<Option<u32>> = ccd_spec::contract::of(kind)
            .iter()
            .filter_map(|env| in_use.get(*env))
            .map(Credential::generation)
            .collect();
        if running.is_empty() || running.iter().any(|g| *g != Some(current.generation)) {
            return None;
        }
        let settled = rotation::Rotation {
            generation: current.generation,
            retiring: None,
        };
        if let Err(e) = rotation::write(&self.dir, app, kind, &settled) {
            tracing::warn!(app, kind, error = %e, "cannot record the end of a rotation");
            return None;
        }
        let asked = lock(&self.asked).get(app).cloned()?;
        if let Err(e) = self.provide(app, &asked, kind).await {
            return Some(format!(
                "{kind}: password {} is to be retired, but {e}; the next pass tries again",
                old.generation
            ));
        }
        if old.generation > 0 {
            for env in ccd_spec::contract::of(kind) {
                let _ = std::fs::remove_file(self.secret_file(app, kind, env, old.generation));
            }
        }
        Some(format!(
            "{kind}: password {} no longer logs in; every instance runs with password {}",
            old.generation, current.generation
        ))
    }

    /// Calls `changed` with the app of each rotation record that changed,
    /// every `every` until `stop`: `ccd services rotate` runs in another
    /// process, and the app's next pass is what rolls it out.
    pub async fn watch_rotations(
        self: std::sync::Arc<Self>,
        changed: impl Fn(String) + Send,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let dir = self.dir.join("rotations");
        let mut seen = stamps(&dir);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = stamps(&dir);
            for (app, stamp) in &now {
                if seen.get(app) != Some(stamp) {
                    changed(app.clone());
                }
            }
            seen = now;
        }
    }
}

/// Each app's latest rotation record change.
fn stamps(dir: &Path) -> BTreeMap<String, SystemTime> {
    let mut out = BTreeMap::new();
    for app in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = app.file_name().to_string_lossy().into_owned();
        for record in std::fs::read_dir(app.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(modified) = record.metadata().and_then(|m| m.modified()) {
                let latest = out.entry(name.clone()).or_insert(modified);
                *latest = (*latest).max(modified);
            }
        }
    }
    out
}
