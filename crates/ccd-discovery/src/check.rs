//! Body checks against the contract's schemas.
//!
//! Requests are checked the way Google's front end parses proto JSON: unknown
//! fields, wrong JSON types and unknown enum values are rejected, numbers may
//! come as JSON numbers or numeric strings, `null` means "unset". Responses
//! are checked strictly against what Google actually sends, so the local
//! cloud cannot drift from it unnoticed: int64/uint64 as strings, int32 as
//! numbers, no `null`s.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::FieldError;
use crate::model::{Property, Schema};

/// Deepest nesting of objects and arrays accepted in a body. The deepest
/// Compute v1 schema nests 18 levels, so this rejects only hostile bodies.
pub(crate) const MAX_DEPTH: usize = 64;

/// Problems reported per body at most; a huge bad body should not produce a
/// huge error response.
const MAX_ERRORS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Request,
    Response,
}

pub(crate) fn check(
    schemas: &HashMap<String, Schema>,
    name: &str,
    body: &Value,
    mode: Mode,
    enum_numbers: bool,
) -> Result<(), Vec<FieldError>> {
    let Some(root) = schemas.get(name) else {
        return Err(vec![FieldError {
            field: String::new(),
            message: format!("no schema named {name:?} in the contract"),
        }]);
    };
    let mut checker = Checker {
        schemas,
        mode,
        enum_numbers,
        root: snake(name),
        path: Vec::new(),
        errors: Vec::new(),
    };
    // Depth first, and on its own: the schema walk below recurses along the
    // body, and the depth scan bounds that recursion.
    if checker.too_deep(body, 1) {
        let message = match mode {
            Mode::Request => format!(
                "Invalid JSON payload received. Nesting at '{}' is deeper than {MAX_DEPTH} levels.",
                checker.location()
            ),
            Mode::Response => format!("nesting deeper than {MAX_DEPTH} levels"),
        };
        return Err(vec![FieldError {
            field: checker.field(),
            message,
        }]);
    }
    checker.value(root, body);
    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(checker.errors)
    }
}

#[derive(Debug, Clone, Copy)]
enum Seg<'v> {
    Field(&'v str),
    Key(&'v str),
    Index(usize),
}

struct Checker<'s, 'v> {
    schemas: &'s HashMap<String, Schema>,
    mode: Mode,
    /// An enum may come as its number (see `Api::with_enum_numbers`).
    enum_numbers: bool,
    /// The body's schema in snake case, the root of Google-style locations.
    root: String,
    path: Vec<Seg<'v>>,
    errors: Vec<FieldError>,
}

impl<'s, 'v> Checker<'s, 'v> {
    /// Whether `v` (at `depth`) nests deeper than allowed; if so, `path` is
    /// left pointing at the first container past the limit. Recursion stops at
    /// the limit, so this is safe on any body.
    fn too_deep(&mut self, v: &'v Value, depth: usize) -> bool {
        if !(v.is_object() || v.is_array()) {
            return false;
        }
        if depth > MAX_DEPTH {
            return true;
        }
        match v {
            Value::Object(map) => map
                .iter()
                .any(|(k, c)| self.descend(Seg::Field(k), c, depth)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .any(|(i, c)| self.descend(Seg::Index(i), c, depth)),
            _ => false,
        }
    }

    fn descend(&mut self, seg: Seg<'v>, child: &'v Value, depth: usize) -> bool {
        self.path.push(seg);
        let deep = self.too_deep(child, depth + 1);
        if !deep {
            self.path.pop();
        }
        deep
    }

    fn value(&mut self, schema: &'s Schema, v: &'v Value) {
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        let Some(schema) = self.deref(schema) else {
            return;
        };
        if v.is_null() {
            // Proto JSON reads null as "unset"; Google never sends it.
            if self.mode == Mode::Response {
                self.problem("null is never sent by Google: omit unset fields".to_owned());
            }
            return;
        }
        match schema {
            Schema::Object {
                properties,
                additional,
            } => match v {
                Value::Object(map) => self.object(properties, additional.as_deref(), map),
                _ => self.invalid(v, "TYPE_MESSAGE", "a JSON object"),
            },
            Schema::Array(items) => match v {
                Value::Array(list) => {
                    for (i, item) in list.iter().enumerate() {
                        self.path.push(Seg::Index(i));
                        if item.is_null() {
                            self.invalid(item, "TYPE_MESSAGE", "a value (lists cannot hold null)");
                        } else {
                            self.value(items, item);
                        }
                        self.path.pop();
                    }
                }
                _ => self.invalid(v, "a list", "a JSON array"),
            },
            Schema::String {
                format,
                enum_values,
            } => {
                self.string(format.as_deref(), enum_values, v);
            }
            Schema::Integer { format } => self.integer(Int::of(format.as_deref()), v),
            Schema::Number { format } => self.number(format.as_deref(), v),
            Schema::Boolean => {
                if !v.is_boolean() {
                    self.invalid(v, "TYPE_BOOL", "true or false");
                }
            }
            Schema::Any | Schema::Ref(_) => {}
        }
    }

    /// Follows `$ref`s to a structural schema. Named schemas are objects in
    /// Compute, but a chain of refs is followed a bounded number of times.
    fn deref(&mut self, mut schema: &'s Schema) -> Option<&'s Schema> {
        for _ in 0..8 {
            let Schema::Ref(name) = schema else {
                return Some(schema);
            };
            let Some(next) = self.schemas.get(name) else {
                self.problem(format!("schema {name:?} is missing from the contract"));
                return None;
            };
            schema = next;
        }
        Some(schema)
    }

    fn object(
        &mut self,
        properties: &'s std::collections::BTreeMap<String, Property>,
        additional: Option<&'s Schema>,
        map: &'v Map<String, Value>,
    ) {
        for (key, v) in map {
            if let Some(p) = properties.get(key) {
                self.path.push(Seg::Field(key));
                self.value(&p.schema, v);
                self.path.pop();
            } else if let Some(each) = additional {
                self.path.push(Seg::Key(key));
                self.value(each, v);
                self.path.pop();
            } else {
                let message = match self.mode {
                    Mode::Request => format!(
                        "Invalid JSON payload received. Unknown name \"{key}\" at '{}': Cannot find field.",
                        self.location()
                    ),
                    Mode::Response => format!("unknown field \"{key}\": not in the schema"),
                };
                self.path.push(Seg::Field(key));
                self.problem(message);
                self.path.pop();
            }
        }
    }

    fn string(&mut self, format: Option<&str>, enum_values: &[String], v: &Value) {
        if !enum_values.is_empty() {
            let numbered = |n: u64| usize::try_from(n).is_ok_and(|n| n < enum_values.len());
            match v.as_str() {
                Some(s) if enum_values.iter().any(|e| e == s) => {}
                None if self.enum_numbers && v.as_u64().is_some_and(numbered) => {}
                Some(_) => {
                    let valid = enum_values.join(", ");
                    self.invalid(v, "TYPE_ENUM", &format!("one of {valid}"));
                }
                None => self.invalid(v, "TYPE_ENUM", "a string enum value"),
            }
            return;
        }
        match format {
            Some("int64") => self.integer(Int::I64, v),
            Some("uint64") => self.integer(Int::U64, v),
            // Google sends bytes URL-safe; the Rust SDK decodes only that
            // form, so a response in standard base64 would break clients.
            Some("byte") => match v.as_str() {
                Some(s) if self.mode == Mode::Response && s.contains(['+', '/']) => self.invalid(
                    v,
                    "TYPE_BYTES",
                    "URL-safe base64 text (- and _, not + and /)",
                ),
                Some(s) if is_base64(s) => {}
                Some(_) => self.invalid(v, "TYPE_BYTES", "base64 text"),
                None => self.invalid(v, "TYPE_BYTES", "a base64 string"),
            },
            _ => {
                if !v.is_string() {
                    self.invalid(v, "TYPE_STRING", "a string");
                }
            }
        }
    }

    fn integer(&mut self, int: Int, v: &Value) {
        let (label, name) = (int.label(), int.name());
        // Google sends 64-bit integers as strings (JavaScript cannot hold
        // them) and 32-bit ones as numbers; requests may use either.
        let as_string = matches!(int, Int::I64 | Int::U64);
        let parsed = match (v, self.mode) {
            (Value::Number(n), Mode::Request) => integral(n),
            (Value::String(s), Mode::Request) => s.parse::<i128>().ok(),
            (Value::Number(n), Mode::Response) if !as_string => {
                n.as_i64().map(i128::from).or(n.as_u64().map(i128::from))
            }
            (Value::String(s), Mode::Response) if as_string => s.parse::<i128>().ok(),
            _ => None,
        };
        match parsed {
            Some(i) if int.holds(i) => {}
            Some(_) => self.invalid(v, label, &format!("an integer in the {name} range")),
            None => {
                let expected = match (self.mode, as_string) {
                    (Mode::Request, _) => format!("{name}: a JSON number or a numeric string"),
                    (Mode::Response, true) => {
                        format!("{name} as a JSON string, as Google sends it")
                    }
                    (Mode::Response, false) => {
                        format!("{name} as a JSON number, as Google sends it")
                    }
                };
                self.invalid(v, label, &expected);
            }
        }
    }

    fn number(&mut self, format: Option<&str>, v: &Value) {
        let label = if format == Some("float") {
            "TYPE_FLOAT"
        } else {
            "TYPE_DOUBLE"
        };
        match (v, self.mode) {
            (Value::Number(_), _) => {}
            (Value::String(s), Mode::Request) => {
                let special = matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity");
                if !special && s.parse::<f64>().is_err() {
                    self.invalid(v, label, "a number");
                }
            }
            _ => self.invalid(v, label, "a JSON number"),
        }
    }

    /// Google's wording for a value it cannot read into the field, plus what
    /// would have been accepted.
    fn invalid(&mut self, v: &Value, label: &str, expected: &str) {
        let shown = shown(v);
        let message = match self.mode {
            Mode::Request => format!(
                "Invalid value at '{}' ({label}), {shown}: expected {expected}",
                self.location()
            ),
            Mode::Response => format!("got {shown}, expected {expected}"),
        };
        self.problem(message);
    }

    fn problem(&mut self, message: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FieldError {
                field: self.field(),
                message,
            });
        }
    }

    /// The JSON field path: `updatePolicy.maxSurge.fixed`, `versions[0].name`.
    fn field(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(k) | Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }

    /// Google's proto location: `instance_group_manager.update_policy.max_surge`.
    fn location(&self) -> String {
        let mut out = self.root.clone();
        for seg in &self.path {
            match seg {
                Seg::Field(k) => {
                    out.push('.');
                    out.push_str(&snake(k));
                }
                Seg::Key(k) => {
                    let _ = write!(out, "[{k}]");
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
enum Int {
    I32,
    U32,
    I64,
    U64,
}

impl Int {
    fn of(format: Option<&str>) -> Int {
        match format {
            Some("uint32") => Int::U32,
            Some("int64") => Int::I64,
            Some("uint64") => Int::U64,
            _ => Int::I32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Int::I32 => "int32",
            Int::U32 => "uint32",
            Int::I64 => "int64",
            Int::U64 => "uint64",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Int::I32 => "TYPE_INT32",
            Int::U32 => "TYPE_UINT32",
            Int::I64 => "TYPE_INT64",
            Int::U64 => "TYPE_UINT64",
        }
    }

    fn holds(self, i: i128) -> bool {
        match self {
            Int::I32 => i32::try_from(i).is_ok(),
            Int::U32 => u32::try_from(i).is_ok(),
            Int::I64 => i64::try_from(i).is_ok(),
            Int::U64 => u64::try_from(i).is_ok(),
        }
    }
}

/// A JSON number's integer value; proto JSON accepts `3.0` for an integer
/// field but not `3.5`.
fn integral(n: &serde_json::Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    let f = n.as_f64()?;
    // Beyond 2^64 the value cannot fit any integer format; the cast saturates
    // and `holds` then rejects it.
    (f.is_finite() && f.fract() == 0.0).then_some(f as i128)
}

/// Standard or URL-safe base64, padding optional: what proto JSON accepts.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    // Unpadded, one leftover character cannot encode a byte; padded, the
    // length is whole quads.
    let length_ok = match (padding, s.len() % 4) {
        (0, rest) => rest != 1,
        (1 | 2, rest) => rest == 0,
        _ => false,
    };
    length_ok
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// A short rendering of a value for a message, so a huge bad value does not
/// get echoed back whole.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 60 {
        return text;
    }
    let cut: String = text.chars().take(57).collect();
    format!("{cut}...")
}

/// `InstanceGroupManager` → `instance_group_manager`, `IPAddress` → `i_p_address`
/// (the proto field names behind Compute's JSON names).
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{is_base64, snake};

    #[test]
    fn snake_case_matches_proto_names() {
        assert_eq!(snake("InstanceGroupManager"), "instance_group_manager");
        assert_eq!(snake("updatePolicy"), "update_policy");
        assert_eq!(snake("IPAddress"), "i_p_address");
    }

    #[test]
    fn base64_forms() {
        assert!(is_base64("42WmSpB8rSM="));
        assert!(is_base64("42WmSpB8rSM"));
        assert!(is_base64("a-_b"));
        assert!(is_base64(""));
        assert!(!is_base64("abcde"));
        assert!(!is_base64("not base64!"));
        assert!(!is_base64("ab==="));
    }
}
