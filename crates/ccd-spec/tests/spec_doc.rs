//! `docs/spec.md` documents the spec field by field: every property of the
//! JSON Schema must be named there, so the page cannot fall behind the model.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

use std::collections::BTreeSet;

use serde_json::Value as Json;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md");

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH)
        .unwrap_or_else(|e| panic!("{DOC_PATH}: {e}; docs/spec.md documents the spec by field"))
}

fn schema() -> Json {
    serde_json::from_str(&ccd_spec::app_schema_json()).expect("the schema is JSON")
}

/// The schema a `$ref` points at: `#/$defs/Name` or `#/definitions/Name`.
fn resolve<'a>(root: &'a Json, reference: &str) -> &'a Json {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("{reference}: only references into this schema are expected"));
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} does not resolve"))
}

/// Every property name reachable from `node`, at every depth, following
/// `$ref`s (each definition once) through properties, items, combinators
/// and maps.
fn collect<'a>(
    root: &'a Json,
    node: &'a Json,
    seen_refs: &mut BTreeSet<&'a str>,
    out: &mut BTreeSet<String>,
) {
    let Json::Object(map) = node else {
        return;
    };
    if let Some(Json::String(reference)) = map.get("$ref")
        && seen_refs.insert(reference.as_str())
    {
        collect(root, resolve(root, reference), seen_refs, out);
    }
    if let Some(Json::Object(properties)) = map.get("properties") {
        for (name, sub) in properties {
            out.insert(name.clone());
            collect(root, sub, seen_refs, out);
        }
    }
    for key in ["items", "additionalProperties", "not", "if", "then", "else"] {
        if let Some(sub) = map.get(key) {
            collect(root, sub, seen_refs, out);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Json::Array(subs)) = map.get(key) {
            for sub in subs {
                collect(root, sub, seen_refs, out);
            }
        }
    }
}

fn schema_property_names() -> BTreeSet<String> {
    let root = schema();
    let mut out = BTreeSet::new();
    collect(&root, &root, &mut BTreeSet::new(), &mut out);
    out
}

#[test]
fn the_walk_reaches_nested_and_referenced_properties() {
    let names = schema_property_names();
    // Top level, inside a `$ref`, behind `anyOf` (optional), inside `items`
    // (canary steps) and two references deep (external → https → domains).
    for expected in [
        "apiVersion",
        "spec",
        "maxSurge",
        "path",
        "weight",
        "domains",
        "retention",
    ] {
        assert!(
            names.contains(expected),
            "the schema walk missed {expected}: {names:?}"
        );
    }
}

#[test]
fn every_schema_property_is_documented_in_spec_md() {
    let doc = doc();
    let missing: Vec<String> = schema_property_names()
        .into_iter()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/spec.md does not mention these spec fields as `name`: {}; document each (type, default, rules, example)",
        missing.join(", ")
    );
}

#[test]
fn every_full_spec_in_spec_md_is_valid() {
    let doc = doc();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((i + 2, String::new()))
            }
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    let specs: Vec<_> = blocks
        .into_iter()
        .filter(|(_, text)| text.lines().any(|l| l.starts_with("apiVersion:")))
        .collect();
    assert!(!specs.is_empty(), "docs/spec.md shows no complete spec");
    for (line, text) in specs {
        if let Err(problems) = ccd_spec::parse(&text) {
            panic!("docs/spec.md: the spec starting at line {line} is invalid: {problems:?}");
        }
    }
}
