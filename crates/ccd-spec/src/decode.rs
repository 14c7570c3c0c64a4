//! The machinery that turns a located YAML tree into typed values while
//! collecting every problem, rather than stopping at the first as serde would.

use std::collections::BTreeMap;

use crate::problem::{Location, Problem};
use crate::values::{Cidr, Duration, FixedOrPercent};
use crate::yaml::{Node, PlainKind, Value, plain_scalar_kind};

/// Collects problems while decoding.
#[derive(Debug, Default)]
pub struct Ctx {
    pub problems: Vec<Problem>,
}

impl Ctx {
    pub fn report(&mut self, at: Location, field: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(at, field, message));
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
                for (key, value) in entries {
                    let Value::Scalar { text, .. } = &key.value else {
                        self.report(key.at, field, "keys must be plain names");
                        continue;
                    };
                    if seen.iter().any(|e| e.key == text) {
                        let path = join(field, text);
                        self.report(key.at, &path, "is given twice; keep one");
                        continue;
                    }
                    seen.push(Entry {
                        key: text.as_str(),
                        key_at: key.at,
                        value,
                        used: false,
                    });
                }
                Some(Fields {
                    at: node.at,
                    path: field.to_owned(),
                    entries: seen,
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
    entries: Vec<Entry<'a>>,
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
        let entry = self.entries.iter_mut().find(|e| e.key == key)?;
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
            let hint = match closest(entry.key, known.iter().copied()) {
                Some(c) => format!("; did you mean {c}?"),
                None => format!("; known fields here: {}", known.join(", ")),
            };
            cx.report(
                entry.key_at,
                &join(&self.path, entry.key),
                format!("unknown field{hint}"),
            );
        }
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The known name closest to `word` when it is close enough to be a typo.
fn closest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    known
        .map(|k| (edit_distance(&word, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
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
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
