//! The machinery that turns a located YAML tree into typed values while
//! collecting every problem, rather than stopping at the first as serde would.
//!
//! Everything here is linear in the size of the input (hash lookups, no
//! pairwise comparisons), and the problems kept are capped: a spec is user
//! input, and one hostile file must not stall the controller that reads it
//! nor fill its status.

use std::borrow::Cow;
use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};

use crate::problem::{Location, Problem};
use crate::values::{Cidr, Duration, FixedOrPercent};
use crate::yaml::{Node, PlainKind, Value, plain_scalar_kind};

/// Problems listed for one spec at most; the rest are counted in one last
/// problem. A user fixes a spec from the top, and the status (and every
/// copy of it) stays small whatever the file.
pub const MAX_PROBLEMS: usize = 100;
/// A field path or message longer than this (one echoing a huge value) keeps
/// its start and its end, where the fix is, around an ellipsis.
const MAX_FIELD_CHARS: usize = 256;
const MAX_MESSAGE_CHARS: usize = 512;

/// Collects problems while decoding: the first [`MAX_PROBLEMS`] in file
/// order, and a count of the others.
#[derive(Debug, Default)]
pub struct Ctx {
    /// Keyed by place, field and the order of reporting, so that problems at
    /// the same place keep the order they were found in.
    kept: BTreeMap<(Location, String, u64), String>,
    reported: u64,
    /// Problems found beyond the kept ones, and the earliest place among them.
    more: usize,
    first_more: Option<Location>,
}

impl Ctx {
    pub fn report(&mut self, at: Location, field: &str, message: impl Into<String>) {
        let message = message.into();
        self.report_with(at, field, || message);
    }

    /// Reports a problem whose message is only built if it is kept.
    pub fn report_with(&mut self, at: Location, field: &str, message: impl FnOnce() -> String) {
        let order = self.reported;
        self.reported += 1;
        let field = clip(field, MAX_FIELD_CHARS);
        let full = self.kept.len() >= MAX_PROBLEMS;
        if full
            && self
                .kept
                .last_key_value()
                .is_some_and(|((last_at, last_field, _), _)| {
                    (at, field.as_ref()) >= (*last_at, last_field.as_str())
                })
        {
            self.count_more(at);
            return;
        }
        let message = clip(&message(), MAX_MESSAGE_CHARS).into_owned();
        let field = field.into_owned();
        // The same problem reached twice (through two rules) is listed once.
        let twin = self
            .kept
            .range((at, field.clone(), 0)..=(at, field.clone(), u64::MAX))
            .any(|(_, m)| *m == message);
        if twin {
            return;
        }
        self.kept.insert((at, field, order), message);
        if self.kept.len() > MAX_PROBLEMS
            && let Some(((at, _, _), _)) = self.kept.pop_last()
        {
            self.count_more(at);
        }
    }

    fn count_more(&mut self, at: Location) {
        self.more += 1;
        self.first_more = Some(self.first_more.map_or(at, |first| first.min(at)));
    }

    /// Whether any problem was reported.
    pub fn has_problems(&self) -> bool {
        !self.kept.is_empty()
    }

    /// The problems kept, in file order, and the one that counts the rest
    /// (placed at the first of them), if any were left out.
    pub fn into_problems(self) -> (Vec<Problem>, Option<Problem>) {
        let kept = self
            .kept
            .into_iter()
            .map(|((at, field, _), message)| Problem { at, field, message })
            .collect();
        let more = self.first_more.map(|at| {
            let n = self.more;
            let s = if n == 1 { "" } else { "s" };
            Problem::new(at, "", format!("… and {n} more problem{s}"))
        });
        (kept, more)
    }

    fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        let found = node.kind_name();
        let fix = match (&node.value, expected) {
            (Value::Scalar { quoted: false, .. }, "a string") => "; put it in quotes",
            (Value::Scalar { quoted: true, .. }, "a number") => "; remove the quotes",
            _ => "",
        };
        self.report(
            node.at,
            field,
            format!("expected {expected}, found {found}{fix}"),
        );
    }

    /// Opens a mapping for field-by-field reading.
    pub fn fields<'a>(&mut self, node: &'a Node, field: &str) -> Option<Fields<'a>> {
        match &node.value {
            Value::Map(entries) => {
                let mut seen: Vec<Entry<'a>> = Vec::with_capacity(entries.len());
                // Each key's place in `seen`: one lookup per key, where
                // comparing with every earlier key was quadratic.
                let mut index: HashMap<&'a str, usize> = HashMap::with_capacity(entries.len());
                for (key, value) in entries {
                    let Value::Scalar { text, .. } = &key.value else {
                        self.report(key.at, field, "keys must be plain names");
                        continue;
                    };
                    match index.entry(text.as_str()) {
                        Slot::Occupied(_) => {
                            self.report(key.at, &join(field, text), "is given twice; keep one");
                        }
                        Slot::Vacant(slot) => {
                            slot.insert(seen.len());
                            seen.push(Entry {
                                key: text.as_str(),
                                key_at: key.at,
                                value,
                                used: false,
                            });
                        }
                    }
                }
                Some(Fields {
                    at: node.at,
                    path: field.to_owned(),
                    entries: seen,
                    index,
                })
            }
            _ => {
                self.wrong_type(node, field, "a mapping");
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, quoted }
                if *quoted || plain_scalar_kind(text) == PlainKind::Str =>
            {
                Some(text.clone())
            }
            _ => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// `true` or `false`, unquoted.
    pub fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } if plain_scalar_kind(text) == PlainKind::Bool => {
                Some(text.eq_ignore_ascii_case("true"))
            }
            _ => {
                self.wrong_type(node, field, "true or false");
                None
            }
        }
    }

    /// A whole number within `min..=max`.
    pub fn int(&mut self, node: &Node, field: &str, min: i64, max: i64) -> Option<i64> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } if plain_scalar_kind(text) == PlainKind::Int => match text.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    self.report(
                        node.at,
                        field,
                        format!("{text} is out of range; use {min} to {max}"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(node, field, "a number");
                None
            }
        }
    }

    pub fn u16(&mut self, node: &Node, field: &str, min: u16) -> Option<u16> {
        self.int(node, field, min.into(), u16::MAX.into())
            .and_then(|n| u16::try_from(n).ok())
    }

    pub fn u32(&mut self, node: &Node, field: &str, min: u32, max: u32) -> Option<u32> {
        self.int(node, field, min.into(), max.into())
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A number (whole or decimal) within `min..=max`.
    pub fn float(&mut self, node: &Node, field: &str, min: f64, max: f64) -> Option<f64> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } if matches!(plain_scalar_kind(text), PlainKind::Int | PlainKind::Float) => {
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() && n >= min && n <= max => Some(n),
                    _ => {
                        self.report(
                            node.at,
                            field,
                            format!("{text} is out of range; use {min} to {max}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(node, field, "a number");
                None
            }
        }
    }

    pub fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        match &node.value {
            Value::Scalar { text, .. } => Duration::parse(text)
                .map_err(|message| self.report(node.at, field, message))
                .ok(),
            _ => {
                self.wrong_type(node, field, "a duration such as 10s");
                None
            }
        }
    }

    pub fn cidr(&mut self, node: &Node, field: &str) -> Option<Cidr> {
        let text = self.string(node, field)?;
        Cidr::parse(&text)
            .map_err(|message| self.report(node.at, field, message))
            .ok()
    }

    pub fn fixed_or_percent(&mut self, node: &Node, field: &str) -> Option<FixedOrPercent> {
        match &node.value {
            Value::Scalar {
                text,
                quoted: false,
            } if plain_scalar_kind(text) == PlainKind::Int => {
                self.u32(node, field, 0, 1000).map(FixedOrPercent::Fixed)
            }
            Value::Scalar { text, .. } => FixedOrPercent::parse_percent(text)
                .map_err(|message| self.report(node.at, field, message))
                .ok(),
            _ => {
                self.wrong_type(node, field, "a number or a percentage such as \"25%\"");
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(
        &mut self,
        node: &Node,
        field: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(node, field)?;
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let hint = closest(&text, names.iter().copied())
            .map(|c| format!(" (did you mean {c}?)"))
            .unwrap_or_default();
        self.report(
            node.at,
            field,
            format!("{text:?} is not one of {}{hint}", names.join(", ")),
        );
        None
    }

    /// A list whose items are each decoded by `item`; bad items are reported and skipped.
    pub fn list<T>(
        &mut self,
        node: &Node,
        field: &str,
        mut item: impl FnMut(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, field, "a list");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, node) in items.iter().enumerate() {
            match item(self, node, &format!("{field}[{i}]")) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub fn strings(&mut self, node: &Node, field: &str) -> Option<Vec<String>> {
        self.list(node, field, |cx, n, f| cx.string(n, f))
    }

    /// A mapping from names to values, with each name checked by `check_key`.
    pub fn map_of<T>(
        &mut self,
        node: &Node,
        field: &str,
        check_key: fn(&str) -> Result<(), String>,
        mut value: impl FnMut(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Option<BTreeMap<String, T>> {
        let mut fields = self.fields(node, field)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for entry in &mut fields.entries {
            entry.used = true;
            let path = join(field, entry.key);
            if let Err(message) = check_key(entry.key) {
                self.report(entry.key_at, &path, message);
                ok = false;
            } else if let Some(v) = value(self, entry.value, &path) {
                out.insert(entry.key.to_owned(), v);
            } else {
                ok = false;
            }
        }
        ok.then_some(out)
    }
}

/// The entries of one mapping being read; `finish` reports the keys nobody asked for.
#[derive(Debug)]
pub struct Fields<'a> {
    pub at: Location,
    pub path: String,
    /// In file order, each key once.
    entries: Vec<Entry<'a>>,
    index: HashMap<&'a str, usize>,
}

#[derive(Debug)]
struct Entry<'a> {
    key: &'a str,
    key_at: Location,
    value: &'a Node,
    used: bool,
}

impl<'a> Fields<'a> {
    /// The node under `key`, marking it as known.
    pub fn take(&mut self, key: &str) -> Option<&'a Node> {
        let entry = self.entries.get_mut(*self.index.get(key)?)?;
        entry.used = true;
        Some(entry.value)
    }

    /// Decodes `key` if present; `Ok(None)` when absent, `Err(())` when present but bad.
    pub fn optional<T>(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        decode: impl FnOnce(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Result<Option<T>, ()> {
        match self.take(key) {
            None => Ok(None),
            Some(Node {
                value: Value::Null, ..
            }) => Ok(None),
            Some(node) => decode(cx, node, &join(&self.path, key)).map(Some).ok_or(()),
        }
    }

    /// Decodes `key` if present, else uses `default`.
    pub fn or<T>(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        default: T,
        decode: impl FnOnce(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        self.optional(cx, key, decode)
            .ok()
            .map(|v| v.unwrap_or(default))
    }

    /// Decodes `key`, reporting its absence with `hint` on how to fill it in.
    pub fn required<T>(
        &mut self,
        cx: &mut Ctx,
        key: &str,
        hint: &str,
        decode: impl FnOnce(&mut Ctx, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        match self.optional(cx, key, decode) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                cx.report(
                    self.at,
                    &join(&self.path, key),
                    format!("is required; {hint}"),
                );
                None
            }
            Err(()) => None,
        }
    }

    /// Reports every key that was not read, suggesting the closest known one.
    pub fn finish(self, cx: &mut Ctx, known: &[&str]) {
        for entry in self.entries.into_iter().filter(|e| !e.used) {
            // The suggestion is only looked for if the problem is listed.
            cx.report_with(
                entry.key_at,
                &join(&self.path, entry.key),
                || match closest(entry.key, known.iter().copied()) {
                    Some(c) => format!("unknown field; did you mean {c}?"),
                    None => format!("unknown field; known fields here: {}", known.join(", ")),
                },
            );
        }
    }
}

/// `text`, or its start and end around an ellipsis when it is longer than
/// `max` characters.
fn clip(text: &str, max: usize) -> Cow<'_, str> {
    let half = max / 2;
    // Only the first `max` characters are counted: a huge text costs no more
    // than a short one here.
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let head_end = text.char_indices().nth(half).map_or(text.len(), |(i, _)| i);
            let tail_start = text
                .char_indices()
                .rev()
                .nth(half - 1)
                .map_or(0, |(i, _)| i);
            Cow::Owned(format!("{}…{}", &text[..head_end], &text[tail_start..]))
        }
    }
}

/// `path.key`, clipped like every reported field: a path under a huge key
/// stays short, so the paths of its many children cost no more than theirs.
pub fn join(path: &str, key: &str) -> String {
    let joined = if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    };
    match clip(&joined, MAX_FIELD_CHARS) {
        Cow::Borrowed(_) => joined,
        Cow::Owned(clipped) => clipped,
    }
}

/// The known name closest to `word` when it is close enough to be a typo.
fn closest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let chars = word.chars().count();
    let word = word.to_ascii_lowercase();
    known
        .map(|k| (k, 2.max(k.len() / 4)))
        // The distance is at least the difference in length: skipping those
        // changes no answer and bounds the work for a huge word by the
        // known names' lengths.
        .filter(|(k, most)| chars.abs_diff(k.chars().count()) <= *most)
        .map(|(k, most)| (edit_distance(&word, &k.to_ascii_lowercase()), k, most))
        .filter(|(d, _, most)| d <= most)
        .min_by_key(|(d, _, _)| *d)
        .map(|(_, k, _)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(
            closest("replica", ["replicas", "rollout"].into_iter()),
            Some("replicas")
        );
        assert_eq!(
            closest("maxsurge", ["maxSurge"].into_iter()),
            Some("maxSurge")
        );
        assert_eq!(closest("zzz", ["replicas"].into_iter()), None);
        assert_eq!(
            closest(&"replicas".repeat(1000), ["replicas"].into_iter()),
            None
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    fn at(line: usize) -> Location {
        Location { line, column: 1 }
    }

    fn listed(cx: Ctx) -> Vec<String> {
        let (kept, more) = cx.into_problems();
        kept.iter().chain(&more).map(ToString::to_string).collect()
    }

    #[test]
    fn the_first_hundred_in_file_order_are_kept_and_the_rest_counted() {
        let mut cx = Ctx::default();
        // Reported last line first, as a decoder may find them.
        for line in (1..=250).rev() {
            cx.report(at(line), "f", "bad");
        }
        let listed = listed(cx);
        assert_eq!(listed.len(), MAX_PROBLEMS + 1);
        assert_eq!(listed[0], "1:1: f: bad");
        assert_eq!(listed[99], "100:1: f: bad");
        assert_eq!(listed[100], "101:1: … and 150 more problems");
    }

    #[test]
    fn a_hundred_problems_have_no_count_and_one_more_is_counted() {
        let mut cx = Ctx::default();
        for line in 1..=MAX_PROBLEMS {
            cx.report(at(line), "f", "bad");
        }
        assert_eq!(listed(cx).len(), MAX_PROBLEMS);

        let mut cx = Ctx::default();
        for line in 1..=MAX_PROBLEMS + 1 {
            cx.report(at(line), "f", "bad");
        }
        let listed = listed(cx);
        assert_eq!(listed.last().unwrap(), "101:1: … and 1 more problem");
    }

    #[test]
    fn a_message_past_the_cap_is_never_built() {
        let mut cx = Ctx::default();
        for line in 1..=MAX_PROBLEMS {
            cx.report(at(line), "f", "bad");
        }
        cx.report_with(at(500), "f", || unreachable!("a dropped problem's message"));
        // An earlier place still displaces the last one kept.
        cx.report_with(at(1), "e", || "first".to_owned());
        let listed = listed(cx);
        assert_eq!(listed[0], "1:1: e: first");
        assert_eq!(listed[100], "100:1: … and 2 more problems");
    }

    #[test]
    fn the_same_problem_twice_is_listed_once_and_order_at_one_place_is_kept() {
        let mut cx = Ctx::default();
        cx.report(at(3), "f", "second rule");
        cx.report(at(3), "f", "first rule");
        cx.report(at(3), "f", "second rule");
        assert_eq!(listed(cx), ["3:1: f: second rule", "3:1: f: first rule"]);
    }

    #[test]
    fn a_huge_value_in_a_message_keeps_its_start_and_end() {
        let mut cx = Ctx::default();
        let value = format!("{}{}", "é".repeat(1 << 20), "z");
        cx.report(
            at(1),
            &value,
            format!("{value:?} is bad; write a short one"),
        );
        let (kept, _) = cx.into_problems();
        let p = &kept[0];
        assert_eq!(p.field, format!("{}…{}z", "é".repeat(128), "é".repeat(127)));
        assert_eq!(p.message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(
            p.message.starts_with("\"é") && p.message.ends_with("z\" is bad; write a short one")
        );
        assert_eq!(clip("short", 10), "short");
    }
}
