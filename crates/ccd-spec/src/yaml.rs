//! A YAML document as a tree of nodes that remember where they were written,
//! so every problem found later can point at a line and column.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

use crate::problem::{Location, Problem};

/// Deeper nesting than any spec needs; the limit keeps hostile input from
/// exhausting the stack when the tree is walked or dropped.
const MAX_DEPTH: usize = 64;
/// Spec files are small; a larger input is a mistake, not a spec.
pub const MAX_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar's text; `quoted` when written with quotes or as a block, so it
    /// is a string whatever it looks like.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Location,
}

impl Node {
    /// What a user would call this node's type, for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { quoted: true, .. } => "a string",
            Value::Scalar { text, .. } => match plain_scalar_kind(text) {
                PlainKind::Null => "null",
                PlainKind::Bool => "a boolean",
                PlainKind::Int => "a number",
                PlainKind::Float => "a decimal number",
                PlainKind::Str => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

/// How YAML 1.2's core schema reads an unquoted scalar.
pub fn plain_scalar_kind(text: &str) -> PlainKind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return PlainKind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return PlainKind::Bool,
        ".inf" | "-.inf" | "+.inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN" => {
            return PlainKind::Float;
        }
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let is_int = (!unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()))
        || unsigned
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        || unsigned
            .strip_prefix("0o")
            .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b)));
    if is_int {
        PlainKind::Int
    } else if text.parse::<f64>().is_ok()
        && unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    {
        PlainKind::Float
    } else {
        PlainKind::Str
    }
}

fn location(mark: Marker) -> Location {
    // saphyr counts lines from 1 and columns from 0; editors count both from 1.
    Location {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

enum Open {
    Seq(Location, Vec<Node>),
    Map(Location, Vec<(Node, Node)>, Option<Node>),
}

/// Reads exactly one YAML document into a tree. Anchors, aliases and
/// non-standard tags are refused: a spec has no use for them, and aliases
/// are how small inputs expand into huge ones.
pub fn parse(text: &str) -> Result<Node, Problem> {
    let at_start = Location { line: 1, column: 1 };
    if text.len() > MAX_BYTES {
        return Err(Problem::new(
            at_start,
            "",
            format!(
                "the file is {} bytes; a spec must be under {MAX_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| {
            Problem::new(
                location(*e.marker()),
                "",
                format!("this is not valid YAML: {}", e.info()),
            )
        })?;
        let at = location(span.start);
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Problem::new(
                        at,
                        "",
                        "a spec file holds one document; move each further app into a file of its own",
                    ));
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(Problem::new(
                    at,
                    "",
                    "aliases (*name) are not supported in specs; write the value out",
                ));
            }
            Event::Scalar(text, style, anchor, tag) => {
                refuse_anchor(anchor, at)?;
                let mut quoted = style != ScalarStyle::Plain;
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema() && tag.suffix == "str" {
                        quoted = true;
                    } else {
                        return Err(Problem::new(
                            at,
                            "",
                            format!("the tag {tag} is not supported in specs; remove it"),
                        ));
                    }
                }
                let value = if !quoted && plain_scalar_kind(&text) == PlainKind::Null {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        quoted,
                    }
                };
                Node { value, at }
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                let is_seq = matches!(event, Event::SequenceStart(..));
                refuse_anchor(anchor, at)?;
                if let Some(tag) = tag {
                    return Err(Problem::new(
                        at,
                        "",
                        format!("the tag {tag} is not supported in specs; remove it"),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Problem::new(
                        at,
                        "",
                        format!(
                            "nesting is deeper than {MAX_DEPTH} levels; a spec never needs that"
                        ),
                    ));
                }
                let open = if is_seq {
                    Open::Seq(at, Vec::new())
                } else {
                    Open::Map(at, Vec::new(), None)
                };
                stack.push(open);
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(at, items)) => Node {
                    value: Value::Seq(items),
                    at,
                },
                Some(Open::Map(at, entries, _)) => Node {
                    value: Value::Map(entries),
                    at,
                },
                None => continue,
            },
        };
        match stack.last_mut() {
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending_key)) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => *pending_key = Some(node),
            },
            None => root = Some(node),
        }
    }
    root.ok_or_else(|| {
        Problem::new(
            at_start,
            "",
            "the file is empty; a spec starts with `apiVersion: ccd/v1`",
        )
    })
}

fn refuse_anchor(anchor: usize, at: Location) -> Result<(), Problem> {
    if anchor == 0 {
        Ok(())
    } else {
        Err(Problem::new(
            at,
            "",
            "anchors (&name) are not supported in specs; write the value out",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_remember_line_and_column() {
        let root = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let Value::Map(entries) = root.value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.at, Location { line: 2, column: 1 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[1].at, Location { line: 4, column: 5 });
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn hostile_shapes_are_refused() {
        assert!(parse("a: &x [1]\nb: *x\n").is_err());
        assert!(parse(&"[".repeat(10_000)).is_err());
        assert!(
            parse("a: 1\n---\nb: 2\n")
                .unwrap_err()
                .message
                .contains("one document")
        );
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(parse("a: !custom 1").is_err());
    }

    #[test]
    fn plain_scalars_are_typed_as_yaml_reads_them() {
        assert_eq!(plain_scalar_kind("8080"), PlainKind::Int);
        assert_eq!(plain_scalar_kind("1.20"), PlainKind::Float);
        assert_eq!(plain_scalar_kind("yes"), PlainKind::Str);
        assert_eq!(plain_scalar_kind("true"), PlainKind::Bool);
        assert_eq!(plain_scalar_kind("1.2.0"), PlainKind::Str);
        assert_eq!(plain_scalar_kind("~"), PlainKind::Null);
        assert_eq!(plain_scalar_kind("infinity"), PlainKind::Str);
    }
}
