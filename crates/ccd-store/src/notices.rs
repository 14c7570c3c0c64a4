//! Cloud Storage's Pub/Sub notifications for a bucket store, as change hints.
//!
//! Google documents them as at-least-once and unordered: a message may come
//! twice, late, or after a newer one about the same object
//! (<https://cloud.google.com/storage/docs/pubsub-notifications>). So a
//! notification is only a hint about an object name: [`Notices::admit`] turns
//! one into the hint the store's own watchers give (the app a spec file
//! defines, or [`crate::MARKER_HINT`]), drops what is not about this store's
//! `specs/`, and drops a generation of an object it has already hinted. Whoever
//! takes the hint reads the object again; the periodic list stays the backstop
//! for whatever a lost message would have said.

use std::collections::{BTreeMap, HashMap};

use crate::names;

/// Objects remembered for their generations; past it the memory starts again
/// (at worst one more read per object).
const REMEMBERED_OBJECTS: usize = 100_000;

/// What one notification comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An app (or the marker) to look at again.
    Hint(String),
    /// A generation already hinted, or older than one that was.
    Seen,
    /// Another bucket, another prefix, not a spec file, or an event that
    /// does not change an object's content.
    Elsewhere,
    /// Not a Cloud Storage notification: the reason, for a log line.
    Malformed(&'static str),
}

impl Notice {
    /// A label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::Hint(_) => "hint",
            Notice::Seen => "seen",
            Notice::Elsewhere => "elsewhere",
            Notice::Malformed(_) => "malformed",
        }
    }
}

/// The hint filter of one bucket store's notifications.
#[derive(Debug)]
pub struct Notices {
    bucket: String,
    /// `<prefix>/specs/`, or `specs/` at the bucket's root.
    specs: String,
    /// Per object: the newest generation hinted, and whether its deletion was.
    generations: HashMap<String, (u64, bool)>,
}

impl Notices {
    /// For the store at `gs://bucket/prefix`.
    pub fn new(bucket: &str, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let specs = if prefix.is_empty() {
            format!("{}/", names::SPECS_DIR)
        } else {
            format!("{prefix}/{}/", names::SPECS_DIR)
        };
        Notices {
            bucket: bucket.to_owned(),
            specs,
            generations: HashMap::new(),
        }
    }

    /// What a notification's attributes (`bucketId`, `objectId`,
    /// `objectGeneration`, `eventType`) come to. The payload is not needed.
    pub fn admit(&mut self, attributes: &BTreeMap<String, String>) -> Notice {
        let get = |k: &str| attributes.get(k).map(String::as_str);
        let (Some(bucket), Some(object), Some(event)) =
            (get("bucketId"), get("objectId"), get("eventType"))
        else {
            return Notice::Malformed("no bucketId, objectId or eventType attribute");
        };
        let Some(generation) = get("objectGeneration").and_then(|g| g.parse::<u64>().ok()) else {
            return Notice::Malformed("no numeric objectGeneration attribute");
        };
        let deleted = match event {
            "OBJECT_FINALIZE" => false,
            "OBJECT_DELETE" => true,
            // Metadata changes leave the content; an archived generation
            // comes with the finalize (or delete) that replaced it.
            "OBJECT_METADATA_UPDATE" | "OBJECT_ARCHIVE" => return Notice::Elsewhere,
            _ => return Notice::Malformed("an eventType Cloud Storage does not send"),
        };
        if bucket != self.bucket {
            return Notice::Elsewhere;
        }
        let Some(hint) = object
            .strip_prefix(&self.specs)
            .filter(|file| !file.contains('/'))
            .and_then(names::hint_of)
        else {
            return Notice::Elsewhere;
        };
        let fresh = match self.generations.get(object) {
            None => true,
            Some(&(newest, was_deleted)) => {
                generation > newest || (generation == newest && deleted && !was_deleted)
            }
        };
        if !fresh {
            return Notice::Seen;
        }
        if self.generations.len() >= REMEMBERED_OBJECTS && !self.generations.contains_key(object) {
            self.generations.clear();
        }
        self.generations
            .insert(object.to_owned(), (generation, deleted));
        Notice::Hint(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(bucket: &str, object: &str, generation: u64, event: &str) -> BTreeMap<String, String> {
        [
            ("bucketId", bucket.to_owned()),
            ("objectId", object.to_owned()),
            ("objectGeneration", generation.to_string()),
            ("eventType", event.to_owned()),
            ("payloadFormat", "JSON_API_V1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    const F: &str = "OBJECT_FINALIZE";
    const D: &str = "OBJECT_DELETE";

    #[test]
    fn a_spec_of_this_store_is_a_hint_for_its_app_and_the_marker_for_the_marker() {
        let mut n = Notices::new("b", "/prod/");
        assert_eq!(
            n.admit(&note("b", "prod/specs/web.yaml", 1, F)),
            Notice::Hint("web".into())
        );
        assert_eq!(
            n.admit(&note("b", "prod/specs/.ccd-sync", 7, F)),
            Notice::Hint(crate::MARKER_HINT.into())
        );
        let mut root = Notices::new("b", "");
        assert_eq!(
            root.admit(&note("b", "specs/api.yml", 1, F)),
            Notice::Hint("api".into())
        );
    }

    #[test]
    fn what_is_not_a_spec_of_this_store_is_elsewhere() {
        let mut n = Notices::new("b", "prod");
        for (bucket, object) in [
            ("other", "prod/specs/web.yaml"),
            ("b", "staging/specs/web.yaml"),
            ("b", "prod/status/web.yaml"),
            ("b", "prod/specs/nested/web.yaml"),
            ("b", "prod/specs/.web.yaml.swp"),
            ("b", "prod/specs/README.md"),
            ("b", "prod/specsweb.yaml"),
        ] {
            assert_eq!(
                n.admit(&note(bucket, object, 1, F)),
                Notice::Elsewhere,
                "{bucket}/{object}"
            );
        }
        assert_eq!(
            n.admit(&note(
                "b",
                "prod/specs/web.yaml",
                2,
                "OBJECT_METADATA_UPDATE"
            )),
            Notice::Elsewhere
        );
    }

    #[test]
    fn duplicates_and_late_generations_are_seen_and_a_deletion_is_a_hint_once() {
        let mut n = Notices::new("b", "prod");
        let web = "prod/specs/web.yaml";
        assert_eq!(n.admit(&note("b", web, 5, F)), Notice::Hint("web".into()));
        assert_eq!(n.admit(&note("b", web, 5, F)), Notice::Seen, "a duplicate");
        assert_eq!(n.admit(&note("b", web, 3, F)), Notice::Seen, "older, late");
        assert_eq!(
            n.admit(&note("b", web, 3, D)),
            Notice::Seen,
            "an older one's deletion"
        );
        assert_eq!(n.admit(&note("b", web, 5, D)), Notice::Hint("web".into()));
        assert_eq!(n.admit(&note("b", web, 5, D)), Notice::Seen);
        assert_eq!(
            n.admit(&note("b", web, 5, F)),
            Notice::Seen,
            "deleted since"
        );
        assert_eq!(n.admit(&note("b", web, 9, F)), Notice::Hint("web".into()));
    }

    #[test]
    fn a_message_that_is_not_a_notification_is_malformed() {
        let mut n = Notices::new("b", "prod");
        assert!(matches!(n.admit(&BTreeMap::new()), Notice::Malformed(_)));
        let mut bad = note("b", "prod/specs/web.yaml", 1, F);
        bad.insert("objectGeneration".into(), "x".into());
        assert!(matches!(n.admit(&bad), Notice::Malformed(_)));
        assert!(matches!(
            n.admit(&note("b", "prod/specs/web.yaml", 1, "OBJECT_EXPLODE")),
            Notice::Malformed(_)
        ));
    }
}
