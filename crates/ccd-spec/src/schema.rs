//! The JSON Schema of the spec, generated from the model so the two cannot drift.

use schemars::{Schema, SchemaGenerator, json_schema};

pub(crate) fn api_version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "const": "ccd/v1"})
}

pub(crate) fn kind(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "const": "App"})
}

pub(crate) fn secret_version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Secret version: `latest` or a number.",
        "default": "latest",
        "oneOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": "^(latest|[1-9][0-9]*)$"}
        ]
    })
}

/// The schema as pretty JSON with a trailing newline, as committed in
/// `specs/schema/app.v1.json`.
pub fn app_schema_json() -> String {
    let mut schema = schemars::schema_for!(crate::App);
    schema.insert(
        "$id".to_owned(),
        "https://ccd.dev/schema/app.v1.json".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value as Json};

    use crate::yaml::{self, Node, PlainKind, Value, plain_scalar_kind};

    /// YAML as an editor's schema validator sees it (YAML 1.2 core schema).
    fn to_json(node: &Node) -> Json {
        match &node.value {
            Value::Null => Json::Null,
            Value::Scalar { text, quoted: true } => Json::String(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } => match plain_scalar_kind(text) {
                PlainKind::Null => Json::Null,
                PlainKind::Bool => Json::Bool(text.eq_ignore_ascii_case("true")),
                PlainKind::Int | PlainKind::Float => {
                    serde_json::from_str(text).unwrap_or(Json::String(text.clone()))
                }
                PlainKind::Str => Json::String(text.clone()),
            },
            Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
            Value::Map(entries) => {
                let mut m = Map::new();
                for (k, v) in entries {
                    if let Value::Scalar { text, .. } = &k.value {
                        m.insert(text.clone(), to_json(v));
                    }
                }
                Json::Object(m)
            }
        }
    }

    fn schema_accepts(text: &str) -> bool {
        let schema: Json = serde_json::from_str(&super::app_schema_json()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator.is_valid(&to_json(&yaml::parse(text).unwrap()))
    }

    fn examples() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../specs/examples");
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        assert!(out.len() >= 5, "the examples are missing");
        out
    }

    #[test]
    fn the_schema_and_the_parser_accept_every_example() {
        for (path, text) in examples() {
            assert!(
                crate::parse(&text).is_ok(),
                "{path}: {:?}",
                crate::parse(&text)
            );
            assert!(schema_accepts(&text), "the schema rejects {path}");
        }
    }

    #[test]
    fn the_schema_and_the_parser_reject_the_same_shape_mistakes() {
        let (_, base) = examples()
            .into_iter()
            .find(|(p, _)| p.ends_with("hello.yaml"))
            .unwrap();
        let mistakes = [
            ("port: 8080", "port: \"8080\""),
            ("version: 1.2.0", "version: 1.2"),
            ("strategy: rolling", "strategy: rollin"),
            ("maxSurge: 1", "maxSurge: \"1\""),
            ("min: 2", "minimum: 2"),
            ("name: hello", "name: Hello"),
            ("interval: 2s", "interval: 2"),
            ("apiVersion: ccd/v1", "apiVersion: ccd/v2"),
        ];
        for (good, bad) in mistakes {
            assert!(base.contains(good), "{good}");
            let text = base.replacen(good, bad, 1);
            assert!(crate::parse(&text).is_err(), "the parser accepts {bad}");
            assert!(!schema_accepts(&text), "the schema accepts {bad}");
        }
    }
}
