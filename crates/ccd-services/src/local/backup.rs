//! SQL backups under `ccd up`: `pg_dump` of the app's database into the
//! app's own folder (`DATA/services/backups/APP/<UTC time>.dump`, 0600),
//! each restored into a scratch database and compared table by table by
//! row count before it is kept. A backup that restores nothing, or not what
//! the database holds, is a failure and is not kept.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::LocalServices;
use super::files::{private_dir, write_private};
use crate::sql;

/// How long a dump, a restore or a count may take.
const LONG: Duration = Duration::from_secs(600);

/// What the last backup of an app came to (`last.json` beside its backups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    /// When it was taken, RFC 3339 UTC.
    pub time: String,
    pub ok: bool,
    /// The kept file, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub tables: usize,
    pub rows: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Whether a backup is due: none succeeded yet, or the last success is a
/// whole `schedule` old.
pub fn due(last_success: Option<SystemTime>, schedule: Duration, now: SystemTime) -> bool {
    last_success.is_none_or(|t| now.duration_since(t).is_ok_and(|age| age >= schedule))
}

impl LocalServices {
    fn backups_dir(&self, app: &str) -> PathBuf {
        self.dir.join("backups").join(app)
    }

    /// The app's last backup, if any was tried.
    pub fn last_backup(&self, app: &str) -> Option<BackupReport> {
        let text = std::fs::read_to_string(self.backups_dir(app).join("last.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Backs the app's database up now, checks it by a restore, keeps the
    /// `keep` newest backups, and records the outcome (`last.json`).
    pub async fn backup(
        &self,
        app: &str,
        database: Option<&str>,
        keep: u32,
        now: SystemTime,
    ) -> BackupReport {
        let time = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let report = match self.checked_dump(app, database, keep, time).await {
            Ok((file, tables, rows)) => BackupReport {
                time: time.to_string(),
                ok: true,
                file: Some(file),
                tables,
                rows,
                message: String::new(),
            },
            Err(message) => BackupReport {
                time: time.to_string(),
                ok: false,
                file: None,
                tables: 0,
                rows: 0,
                message,
            },
        };
        let dir = self.backups_dir(app);
        let written = serde_json::to_string_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|text| {
                private_dir(&dir).and_then(|()| write_private(&dir.join("last.json"), &text))
            });
        if let Err(e) = written {
            tracing::warn!(app, error = %e, "cannot record the backup's outcome");
        }
        report
    }

    async fn checked_dump(
        &self,
        app: &str,
        database: Option<&str>,
        keep: u32,
        time: jiff::Timestamp,
    ) -> Result<(PathBuf, usize, u64), String> {
        let grant = sql::grant(app, database).map_err(|e| e.to_string())?;
        let pg = self.postgres().await?;
        let dump = pg
            .run("pg_dump", &["-Fc", "-d", &grant.database], None, LONG)
            .await?;
        let source = row_counts(&pg, &grant.database).await?;
        // Its own scratch database: `ccd up`'s schedule and a person's
        // `ccd services backup` may check at the same time.
        let scratch = format!(
            "ccd-restore-{}",
            &crate::password::sha256_hex(&format!("{app} {time} {}", std::process::id()))[..16]
        );
        let drop_scratch = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE);\n",
            sql::ident(&scratch)
        );
        pg.apply(&format!(
            "{drop_scratch}CREATE DATABASE {};\n",
            sql::ident(&scratch)
        ))
        .await?;
        let restored = async {
            pg.run(
                "pg_restore",
                &["--no-owner", "--no-acl", "-d", &scratch],
                Some(&dump),
                LONG,
            )
            .await?;
            row_counts(&pg, &scratch).await
        }
        .await;
        let cleaned = pg.apply(&drop_scratch).await;
        let restored = restored?;
        cleaned?;
        if restored.is_empty() {
            return Err(format!(
                "the backup of database {} restores no table: not kept (a backup that restores \
                 nothing is no backup)",
                grant.database
            ));
        }
        if restored != source {
            let differs: Vec<String> = source
                .iter()
                .filter(|(t, n)| restored.iter().find(|(r, _)| r == t).map(|(_, m)| m) != Some(n))
                .map(|(t, n)| format!("{t} ({n} rows in the database)"))
                .collect();
            return Err(format!(
                "the restored backup of database {} differs from it: {}; not kept (a table \
                 written during the backup differs too: the next backup tries again)",
                grant.database,
                differs.join(", ")
            ));
        }
        let dir = self.backups_dir(app);
        private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join(format!("{}.dump", time.strftime("%Y%m%dT%H%M%SZ")));
        write_private(&file, &dump).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        prune(&dir, keep);
        let rows = restored.iter().map(|(_, n)| n).sum();
        Ok((file, restored.len(), rows))
    }
}

/// Each table of `database` (outside PostgreSQL's own schemas) and its rows.
async fn row_counts(
    pg: &super::postgres::LocalPostgres,
    database: &str,
) -> Result<Vec<(String, u64)>, String> {
    let listed = query(
        pg,
        database,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .await?;
    let mut counts = Vec::new();
    for table in listed.lines().filter(|l| !l.is_empty()) {
        // Names come quoted from format('%I.%I'): safe in the statement.
        let counted = query(pg, database, &format!("SELECT count(*) FROM {table}")).await?;
        let n = counted
            .trim()
            .parse()
            .map_err(|_| format!("cannot count the rows of {table}"))?;
        counts.push((table.to_owned(), n));
    }
    Ok(counts)
}

/// One statement's rows in `database`, unaligned, one per line.
async fn query(
    pg: &super::postgres::LocalPostgres,
    database: &str,
    statement: &str,
) -> Result<String, String> {
    let out = pg
        .run(
            "psql",
            &["-X", "-qAt", "-d", database, "-c", statement],
            None,
            LONG,
        )
        .await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Keeps the `keep` newest backups (their names sort by time).
fn prune(dir: &std::path::Path, keep: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dumps: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dump"))
        .collect();
    dumps.sort();
    let excess = dumps.len().saturating_sub(keep as usize);
    for old in &dumps[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "cannot remove an old backup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_due_first_and_then_a_schedule_after_the_last_success() {
        let day = Duration::from_secs(86_400);
        let t0 = SystemTime::UNIX_EPOCH + day * 1000;
        assert!(due(None, day, t0));
        assert!(!due(Some(t0), day, t0 + day / 2));
        assert!(due(Some(t0), day, t0 + day));
        // A clock that went back is not a reason to back up again.
        assert!(!due(Some(t0), day, t0 - day));
    }
}
