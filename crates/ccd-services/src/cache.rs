//! The cache service: a Redis 7 ACL user per app that reaches only the keys
//! and channels of the app's namespace (`~ns* &ns*`), with the commands that
//! would reach past it (`KEYS`, `SCAN`, `RANDOMKEY`, `PUBSUB`) or harm every
//! app (`FLUSHALL`, `CONFIG`, the rest of `@dangerous`) refused: another
//! app's key, or `FLUSHALL`, answers `NOPERM`.
//!
//! The rules are pure functions ([`grant`], [`overlapping`], [`acl_rules`]);
//! [`ensure_user`] and [`remove_user`] apply them through an administrator's
//! connection. Redis is only ever given the password's SHA-256 (`#<hash>`).

use crate::resp::{Connection, Reply};
use crate::{ServiceError, names};

/// What an app may reach in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheGrant {
    pub app: String,
    /// The ACL user, `ccd-<app>`.
    pub user: String,
    /// Every key and channel of the app starts with it.
    pub namespace: String,
}

/// The grant of `app`, its namespace the spec's or `<app>:`.
pub fn grant(app: &str, namespace: Option<&str>) -> Result<CacheGrant, ServiceError> {
    let namespace = namespace.map_or_else(|| names::default_namespace(app), str::to_owned);
    if namespace.is_empty() || namespace.len() > 128 {
        return Err(ServiceError::Invalid(format!(
            "services.cache.namespace: {namespace:?} must be 1 to 128 characters, e.g. \"{app}:\""
        )));
    }
    if let Some(c) = namespace
        .chars()
        .find(|c| !(c.is_ascii_graphic()) || matches!(c, '*' | '?' | '[' | ']' | '\\' | '^'))
    {
        return Err(ServiceError::Invalid(format!(
            "services.cache.namespace: {namespace:?} holds {c:?}; a namespace is printable ASCII \
             without spaces or the pattern characters * ? [ ] \\ ^, e.g. \"{app}:\""
        )));
    }
    Ok(CacheGrant {
        app: app.to_owned(),
        user: names::cache_user(app),
        namespace,
    })
}

/// Pairs of apps whose namespaces overlap (one starts with the other), so
/// that one could reach the other's keys: each pair is refused.
pub fn overlapping(grants: &[CacheGrant]) -> Vec<(&CacheGrant, &CacheGrant)> {
    let mut sorted: Vec<&CacheGrant> = grants.iter().collect();
    sorted.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    let mut pairs = Vec::new();
    // Sorted, every namespace a later one starts with comes right before the
    // run of those that start with it.
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            if !b.namespace.starts_with(a.namespace.as_str()) {
                break;
            }
            pairs.push((*a, *b));
        }
    }
    pairs
}

/// The `ACL SETUSER` rules of a grant: everything reset, then its password
/// hashes (two while a rotation runs), its keys and channels, every
/// command but those that reach past the namespace or harm other apps.
pub fn acl_rules(grant: &CacheGrant, password_sha256: &[&str]) -> Vec<String> {
    let ns = &grant.namespace;
    let mut rules = vec!["reset".to_owned(), "on".to_owned()];
    rules.extend(password_sha256.iter().map(|h| format!("#{h}")));
    rules.extend([
        format!("~{ns}*"),
        format!("&{ns}*"),
        "+@all".to_owned(),
        "-@dangerous".to_owned(),
        "-@admin".to_owned(),
        // Not dangerous to Redis, but they list or return other apps' keys and channels.
        "-scan".to_owned(),
        "-randomkey".to_owned(),
        "-pubsub".to_owned(),
    ]);
    rules
}

/// Creates the grant's user, or makes an existing one exactly the grant
/// (`reset` first, so nothing an earlier grant allowed is left).
pub async fn ensure_user(
    admin: &mut Connection,
    grant: &CacheGrant,
    password_sha256: &[&str],
) -> Result<(), ServiceError> {
    let rules = acl_rules(grant, password_sha256);
    let mut args = vec!["ACL", "SETUSER", grant.user.as_str()];
    args.extend(rules.iter().map(String::as_str));
    match admin.call(&args).await? {
        r if r.is_ok() => Ok(()),
        reply => Err(refused(&format!("ACL SETUSER {}", grant.user), reply)),
    }
}

/// Removes the user of `app`; one that does not exist is already removed.
pub async fn remove_user(admin: &mut Connection, app: &str) -> Result<(), ServiceError> {
    let user = names::cache_user(app);
    match admin.call(&["ACL", "DELUSER", &user]).await? {
        Reply::Integer(_) => Ok(()),
        reply => Err(refused(&format!("ACL DELUSER {user}"), reply)),
    }
}

/// Why `grant` may not be held beside the namespaces already `held` (app →
/// namespace): the field, both apps and the fix; `None` when it may.
pub fn overlap_with(
    grant: &CacheGrant,
    held: &std::collections::HashMap<String, String>,
) -> Option<String> {
    let mut grants: Vec<CacheGrant> = held
        .iter()
        .filter(|(app, _)| **app != grant.app)
        .map(|(app, namespace)| CacheGrant {
            app: app.clone(),
            user: names::cache_user(app),
            namespace: namespace.clone(),
        })
        .collect();
    grants.push(grant.clone());
    let pairs = overlapping(&grants);
    let (a, b) = pairs
        .iter()
        .find(|(a, b)| a.app == grant.app || b.app == grant.app)?;
    let other = if a.app == grant.app { b } else { a };
    Some(format!(
        "services.cache.namespace: {:?} overlaps app {}'s {:?}: each app needs a namespace that \
         does not start with another's (e.g. \"{}:\")",
        grant.namespace, other.app, other.namespace, grant.app
    ))
}

/// Deletes every key of the namespace (SCAN with the namespace as the
/// pattern: it holds no pattern characters, so it matches its keys alone).
pub async fn delete_keys(admin: &mut Connection, namespace: &str) -> Result<u64, ServiceError> {
    let pattern = format!("{namespace}*");
    let mut cursor = "0".to_owned();
    let mut deleted = 0;
    loop {
        let reply = admin
            .call(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "500"])
            .await?;
        let Reply::Array(Some(parts)) = reply else {
            return Err(refused("SCAN", reply));
        };
        let mut parts = parts.into_iter();
        let (Some(Reply::Bulk(Some(next))), Some(Reply::Array(Some(keys)))) =
            (parts.next(), parts.next())
        else {
            return Err(ServiceError::Protocol {
                service: "redis",
                what: "SCAN".to_owned(),
                detail: "not a cursor and a list of keys".to_owned(),
            });
        };
        let keys: Vec<String> = keys
            .into_iter()
            .filter_map(|k| match k {
                Reply::Bulk(Some(k)) => String::from_utf8(k).ok(),
                _ => None,
            })
            .collect();
        if !keys.is_empty() {
            let mut args = vec!["UNLINK"];
            args.extend(keys.iter().map(String::as_str));
            if let Reply::Integer(n) = admin.call(&args).await? {
                deleted += u64::try_from(n).unwrap_or(0);
            }
        }
        cursor = String::from_utf8_lossy(&next).into_owned();
        if cursor == "0" {
            return Ok(deleted);
        }
    }
}

/// `redis://USER:PASSWORD@ADDRESS/0`, what the app receives as `REDIS_URL`.
pub fn url(grant: &CacheGrant, password: &str, address: &str) -> String {
    format!("redis://{}:{password}@{address}/0", grant.user)
}

fn refused(what: &str, reply: Reply) -> ServiceError {
    ServiceError::Refused {
        service: "redis",
        what: what.to_owned(),
        message: match reply {
            Reply::Error(m) => m,
            other => format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(app: &str, ns: &str) -> CacheGrant {
        grant(app, Some(ns)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_default_namespace_is_the_apps_name_and_a_colon() {
        let web = grant("web", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (web.user.as_str(), web.namespace.as_str()),
            ("ccd-web", "web:")
        );
    }

    #[test]
    fn a_namespace_with_pattern_characters_or_spaces_is_refused_naming_the_field() {
        for bad in ["", "web*", "we?b", "w[e]b", "a b", "w\\", "ü:"] {
            let e = grant("web", Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("services.cache.namespace:"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn namespaces_that_start_with_another_overlap() {
        let grants = [
            g("web", "web:"),
            g("api", "api:"),
            g("webapi", "web:api:"),
            g("w", "w"),
        ];
        let pairs: Vec<(&str, &str)> = overlapping(&grants)
            .into_iter()
            .map(|(a, b)| (a.app.as_str(), b.app.as_str()))
            .collect();
        assert_eq!(pairs, [("w", "web"), ("w", "webapi"), ("web", "webapi")]);
        assert!(overlapping(&[g("a", "a:"), g("b", "b:"), g("ab", "ab:")]).is_empty());
    }

    #[test]
    fn the_rules_reset_first_and_name_only_the_hashes() {
        let rules = acl_rules(&g("web", "web:"), &["abc", "def"]);
        assert_eq!(rules[0], "reset");
        assert!(rules.contains(&"#abc".to_owned()) && rules.contains(&"#def".to_owned()));
        assert!(rules.contains(&"~web:*".to_owned()) && rules.contains(&"&web:*".to_owned()));
        assert!(
            !rules.iter().any(|r| r.starts_with('>')),
            "never the password itself"
        );
    }
}
