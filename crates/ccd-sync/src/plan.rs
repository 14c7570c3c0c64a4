//! What a sync changes in the store: a pure function of the commit's files and the store's
//! listing, so every rule is a unit test.

use std::collections::{BTreeMap, BTreeSet};

/// What to do to the store, by app name (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In the commit, and missing from the store or different there.
    pub upload: Vec<String>,
    /// In the store but not in the commit, and `--prune` was given.
    pub delete: Vec<String>,
    /// In the commit and already in the store with the same bytes.
    pub unchanged: Vec<String>,
    /// In the store but not in the commit, left because `--prune` was not given.
    pub kept: Vec<String>,
}

/// Why no plan is made: the store is left alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Pruning would delete more than half of the store's specs.
    #[error(
        "--prune would delete {deletes} of the store's {total} specs ({apps}), more than half: \
         check that --path names the folder of spec files, and pass --force if that many apps \
         are really to go"
    )]
    TooManyDeletes {
        deletes: usize,
        total: usize,
        /// The apps, comma-separated.
        apps: String,
    },
}

/// The plan for a commit whose spec files have `commit` checksums (`sha256:...` by app), over a
/// store whose specs have `store` versions (`None`: there, but unreadable, as too large or
/// ambiguous). `held` are apps the commit has a file for that is not uploaded (a file the
/// store would refuse): never deleted. Deleting needs `prune`, and deleting more than half
/// of the store's specs also needs `force`.
pub fn plan(
    commit: &BTreeMap<String, String>,
    held: &BTreeSet<String>,
    store: &BTreeMap<String, Option<String>>,
    prune: bool,
    force: bool,
) -> Result<Plan, PlanError> {
    let mut out = Plan::default();
    for (app, checksum) in commit {
        match store.get(app) {
            Some(Some(version)) if version == checksum => out.unchanged.push(app.clone()),
            _ => out.upload.push(app.clone()),
        }
    }
    let absent = store
        .keys()
        .filter(|app| !commit.contains_key(*app) && !held.contains(*app))
        .cloned();
    if prune {
        out.delete.extend(absent);
    } else {
        out.kept.extend(absent);
    }
    let total = store.len();
    if !force && out.delete.len() * 2 > total {
        return Err(PlanError::TooManyDeletes {
            deletes: out.delete.len(),
            total,
            apps: out.delete.join(", "),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, c)| ((*a).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn stored(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(a, v)| ((*a).to_owned(), v.map(str::to_owned)))
            .collect()
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn uploads_only_what_differs() {
        let commit = files(&[("a", "sha256:1"), ("b", "sha256:2"), ("c", "sha256:3")]);
        let store = stored(&[
            ("a", Some("sha256:1")),
            ("b", Some("sha256:old")),
            ("x", None),
        ]);
        let p = plan(&commit, &none(), &store, false, false).unwrap();
        assert_eq!(p.upload, ["b", "c"]);
        assert_eq!(p.unchanged, ["a"]);
        assert!(p.delete.is_empty());
        assert_eq!(p.kept, ["x"]);
    }

    #[test]
    fn an_unreadable_spec_in_the_store_is_replaced() {
        let commit = files(&[("a", "sha256:1")]);
        let p = plan(&commit, &none(), &stored(&[("a", None)]), false, false).unwrap();
        assert_eq!(p.upload, ["a"]);
    }

    #[test]
    fn deletes_only_with_prune() {
        let commit = files(&[("a", "sha256:1"), ("b", "sha256:2"), ("c", "sha256:3")]);
        let store = stored(&[
            ("a", Some("sha256:1")),
            ("b", Some("sha256:2")),
            ("c", Some("sha256:3")),
            ("gone", Some("sha256:4")),
        ]);
        let kept = plan(&commit, &none(), &store, false, false).unwrap();
        assert_eq!(
            (kept.delete.len(), kept.kept.as_slice()),
            (0, &["gone".to_owned()][..])
        );
        let pruned = plan(&commit, &none(), &store, true, false).unwrap();
        assert_eq!(pruned.delete, ["gone"]);
        assert!(pruned.kept.is_empty());
    }

    #[test]
    fn half_may_go_more_needs_force() {
        let store = stored(&[
            ("a", Some("sha256:1")),
            ("b", Some("sha256:2")),
            ("c", Some("sha256:3")),
            ("d", Some("sha256:4")),
        ]);
        let half = files(&[("a", "sha256:1"), ("b", "sha256:2")]);
        assert_eq!(
            plan(&half, &none(), &store, true, false).unwrap().delete,
            ["c", "d"]
        );
        let one = files(&[("a", "sha256:1")]);
        let err = plan(&one, &none(), &store, true, false).unwrap_err();
        assert_eq!(
            err,
            PlanError::TooManyDeletes {
                deletes: 3,
                total: 4,
                apps: "b, c, d".into()
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("3 of the store's 4") && message.contains("--force"),
            "{message}"
        );
        assert_eq!(
            plan(&one, &none(), &store, true, true).unwrap().delete,
            ["b", "c", "d"]
        );
        // An empty commit folder would delete everything: the usual mistake of a wrong --path.
        let empty = BTreeMap::new();
        assert!(plan(&empty, &none(), &store, true, false).is_err());
        // The only spec of a store is more than half of it.
        let single = stored(&[("a", Some("sha256:1"))]);
        assert!(plan(&empty, &none(), &single, true, false).is_err());
        assert!(plan(&empty, &none(), &BTreeMap::new(), true, false).is_ok());
    }

    #[test]
    fn a_held_file_is_never_deleted() {
        let store = stored(&[("a", Some("sha256:1")), ("big", Some("sha256:2"))]);
        let commit = files(&[("a", "sha256:1")]);
        let held = BTreeSet::from(["big".to_owned()]);
        let p = plan(&commit, &held, &store, true, false).unwrap();
        assert!(p.delete.is_empty() && p.kept.is_empty() && p.upload.is_empty());
    }
}
