//! Decoding of `services`: what the app's data lives in, and what happens to
//! it when the app is deleted.

use crate::decode::{Ctx, Fields};
use crate::decode_app::checked;
use crate::model::*;
use crate::values::Duration;
use crate::yaml::Node;

pub fn services(cx: &mut Ctx, node: &Node, path: &str) -> Option<Services> {
    let mut f = cx.fields(node, path)?;
    let sql = f.optional(cx, "sql", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let engine = f.or(cx, "engine", SqlEngine::Postgres, |cx, n, p| {
            cx.choice(
                n,
                p,
                &[
                    ("postgres", SqlEngine::Postgres),
                    ("mysql", SqlEngine::Mysql),
                ],
            )
        });
        let database = f.optional(cx, "database", |cx, n, p| checked(cx, n, p, sql_identifier));
        let backup = f.optional(cx, "backup", backup);
        let on_delete = on_delete(cx, &mut f, true);
        f.finish(cx, &["engine", "database", "backup", "onDelete"]);
        Some(SqlDatabase {
            engine: engine?,
            database: database.ok()?,
            backup: backup.ok()?,
            on_delete: on_delete?,
        })
    });
    let nosql = f.optional(cx, "nosql", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let database = f.optional(cx, "database", |cx, n, p| {
            checked(cx, n, p, firestore_database)
        });
        let on_delete = on_delete(cx, &mut f, false);
        f.finish(cx, &["database", "onDelete"]);
        Some(NoSqlDatabase {
            database: database.ok()?,
            on_delete: on_delete?,
        })
    });
    let cache = f.optional(cx, "cache", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let namespace = f.optional(cx, "namespace", |cx, n, p| {
            checked(cx, n, p, cache_namespace)
        });
        let on_delete = on_delete(cx, &mut f, false);
        f.finish(cx, &["namespace", "onDelete"]);
        Some(Cache {
            namespace: namespace.ok()?,
            on_delete: on_delete?,
        })
    });
    let storage = f.optional(cx, "storage", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let bucket = f.optional(cx, "bucket", |cx, n, p| checked(cx, n, p, bucket_name));
        let on_delete = on_delete(cx, &mut f, false);
        f.finish(cx, &["bucket", "onDelete"]);
        Some(FileStorage {
            bucket: bucket.ok()?,
            on_delete: on_delete?,
        })
    });
    let logs = f.optional(cx, "logs", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let retention = f.or(
            cx,
            "retention",
            Duration::from_secs(30 * 24 * 3600),
            |cx, n, p| cx.duration(n, p),
        );
        let on_delete = on_delete(cx, &mut f, false);
        f.finish(cx, &["retention", "onDelete"]);
        Some(LogShipping {
            retention: retention?,
            on_delete: on_delete?,
        })
    });
    f.finish(cx, &["sql", "nosql", "cache", "storage", "logs"]);
    Some(Services {
        sql: sql.ok()?,
        nosql: nosql.ok()?,
        cache: cache.ok()?,
        storage: storage.ok()?,
        logs: logs.ok()?,
    })
}

fn backup(cx: &mut Ctx, node: &Node, path: &str) -> Option<SqlBackup> {
    let mut f = cx.fields(node, path)?;
    let schedule = f.required(
        cx,
        "schedule",
        "say how often, e.g. `schedule: 24h`",
        |cx, n, p| {
            let every = cx.duration(n, p)?;
            if every < Duration::from_secs(15 * 60) {
                cx.report(
                    n.at,
                    p,
                    "a backup at most every 15 minutes; write 15m or more (e.g. 24h)",
                );
                return None;
            }
            Some(every)
        },
    );
    let keep = f.or(cx, "keep", 7, |cx, n, p| cx.u32(n, p, 1, 1000));
    f.finish(cx, &["schedule", "keep"]);
    Some(SqlBackup {
        schedule: schedule?,
        keep: keep?,
    })
}

/// `onDelete`; `snapshot` only where there is a snapshot to take (sql: a
/// `pg_dump` into the app's storage).
fn on_delete(cx: &mut Ctx, f: &mut Fields<'_>, snapshots: bool) -> Option<OnDelete> {
    f.or(cx, "onDelete", OnDelete::Retain, |cx, n, p| {
        let choice = cx.choice(
            n,
            p,
            &[
                ("retain", OnDelete::Retain),
                ("snapshot", OnDelete::Snapshot),
                ("delete", OnDelete::Delete),
            ],
        )?;
        if choice == OnDelete::Snapshot && !snapshots {
            cx.report(
                n.at,
                p,
                "snapshot is offered for sql only (a pg_dump into the app's storage); \
                 write retain (keep the data) or delete",
            );
            return None;
        }
        Some(choice)
    })
}

/// Firestore's rule for a database id (4 to 63 characters, lowercase
/// letters, digits and '-', starting with a letter).
fn firestore_database(s: &str) -> Result<(), String> {
    let ok = (4..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a Firestore database id; use 4-63 lowercase letters, digits and '-', \
             starting with a letter and not ending with '-'"
        ))
    }
}

fn sql_identifier(s: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid name; use lowercase letters, digits and '_', starting with a letter"
        ))
    }
}

fn cache_namespace(s: &str) -> Result<(), String> {
    // Printable ASCII without Redis's pattern characters: the namespace
    // becomes the ACL pattern `~<namespace>*`, which must match it alone.
    let ok = (1..=64).contains(&s.len())
        && s.ends_with(':')
        && !s
            .chars()
            .any(|c| !c.is_ascii_graphic() || matches!(c, '*' | '?' | '[' | ']' | '\\' | '^'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a key namespace; write a short prefix of letters, digits and \
             punctuation other than * ? [ ] \\ ^, ending in ':', e.g. hello:"
        ))
    }
}

fn bucket_name(s: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a bucket name; use 3-63 lowercase letters, digits, '-', '_' or '.'"
        ))
    }
}
