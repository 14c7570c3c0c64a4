//! The YAML documents ccd writes beside the specs and reads back (status
//! objects, rollout controls), as JSON values: typed once with serde by
//! their owners, written in a stable block style, read with the same safe
//! parser as specs (no aliases, bounded depth and size).
//!
//! Output is deterministic (keys in the value's order, one way to write each
//! scalar), so an unchanged document is byte-identical and its store skips
//! the write.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use crate::yaml::{self, Node, PlainKind, Value as Yaml, plain_scalar_kind};
use crate::{Location, Problem};

/// Renders `value` as block YAML under a `# header` comment line. Strings
/// are double-quoted unless they are a plain CamelCase word (`Ready`,
/// `RolledBack`), which every YAML reader takes for a string.
pub fn to_yaml(header: &str, value: &Value) -> String {
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            let _ = writeln!(out, "{}", scalar(other));
        }
    }
    out
}

/// Reads a document [`to_yaml`] wrote (or a person wrote by hand): plain
/// scalars are typed as YAML 1.2's core schema reads them, quoted ones are
/// strings.
pub fn from_yaml(bytes: &[u8]) -> Result<Value, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        Problem::new(
            Location { line: 1, column: 1 },
            "",
            "the file is not UTF-8 text",
        )
    })?;
    let root = yaml::parse(text.strip_prefix('\u{feff}').unwrap_or(text))?;
    Ok(to_json(root))
}

fn to_json(node: Node) -> Value {
    match node.value {
        Yaml::Null => Value::Null,
        Yaml::Scalar { text, quoted: true } => Value::String(text),
        Yaml::Scalar {
            text,
            quoted: false,
        } => plain(text),
        Yaml::Seq(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match k.value {
                    Yaml::Scalar { text, .. } => text,
                    Yaml::Null => String::new(),
                    other => format!("{other:?}"),
                };
                map.insert(key, to_json(v));
            }
            Value::Object(map)
        }
    }
}

fn plain(text: String) -> Value {
    match plain_scalar_kind(&text) {
        PlainKind::Null => Value::Null,
        PlainKind::Bool => Value::Bool(text.eq_ignore_ascii_case("true")),
        PlainKind::Int => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .unwrap_or(Value::String(text)),
        PlainKind::Float => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        PlainKind::Str => Value::String(text),
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn is_empty_collection(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

fn write_map(out: &mut String, map: &Map<String, Value>, level: usize) {
    for (key, value) in map {
        indent(out, level);
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, value, level + 1);
    }
}

/// What follows `key:` or `- `: a scalar on the same line, or a nested
/// collection on the lines below.
fn write_value(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, level);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, level);
        }
        other => {
            let _ = writeln!(out, " {}", scalar(other));
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        match item {
            // A mapping item starts on the dash's line: `- name: x`.
            Value::Object(m) if !m.is_empty() => {
                out.push_str("- ");
                let mut first = true;
                for (key, value) in m {
                    if !first {
                        indent(out, level + 1);
                    }
                    first = false;
                    out.push_str(&key_text(key));
                    out.push(':');
                    write_value(out, value, level + 2);
                }
            }
            other if is_empty_collection(other) || !other.is_array() => {
                let _ = writeln!(out, "- {}", scalar(other));
            }
            Value::Array(nested) => {
                out.push_str("-\n");
                write_seq(out, nested, level + 1);
            }
            _ => {}
        }
    }
}

fn key_text(key: &str) -> String {
    let simple = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if simple && !key.starts_with('-') && plain_scalar_kind(key) == PlainKind::Str {
        key.to_owned()
    } else {
        quote(key)
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_plain_word(s) => s.clone(),
        Value::String(s) => quote(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// `Ready`, `RolledBack`: a capitalised word of letters and digits that YAML
/// reads as a string (not `True`, `Null`, ...).
fn is_plain_word(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && plain_scalar_kind(s) == PlainKind::Str
}

/// A YAML double-quoted scalar (JSON's escaping is valid YAML).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_every_shape() {
        let v = json!({
            "app": "web",
            "phase": "Ready",
            "status": "True",
            "count": 3,
            "ratio": 0.25,
            "flag": true,
            "none": null,
            "version": "1.10",
            "empty": [],
            "nothing": {},
            "list": ["a", "B", 7],
            "items": [{"name": "x", "tags": ["p", "q"], "inner": {"k": "v"}}, {"name": "y"}],
            "nested": [[1, 2], []],
            "text": "line one\nline \"two\" \\ \u{1}",
        });
        let y = to_yaml("Written by a test.", &v);
        assert!(y.starts_with("# Written by a test.\n"), "{y}");
        assert!(y.contains("phase: Ready\n"), "{y}");
        assert!(
            y.contains("status: \"True\"\n"),
            "a word YAML reads as a bool is quoted: {y}"
        );
        assert!(y.contains("version: \"1.10\"\n"), "{y}");
        assert!(
            y.contains("items:\n  - name: \"x\"\n    tags:\n      - \"p\"\n"),
            "{y}"
        );
        assert_eq!(from_yaml(y.as_bytes()).unwrap(), v, "{y}");
        assert_eq!(y, to_yaml("Written by a test.", &v), "deterministic");
    }

    #[test]
    fn hostile_or_broken_input_is_an_error_not_a_panic() {
        assert!(from_yaml(b"\xff").is_err());
        assert!(from_yaml(b"a: &x [1]\nb: *x\n").is_err());
        assert!(from_yaml(b"a: [").is_err());
        assert_eq!(from_yaml(b"a: 1\n").unwrap(), json!({"a": 1}));
    }
}
