//! The routes and the OpenAPI document generated from their annotations
//! (utoipa), to which the spec's JSON Schema is added as the `App` schema:
//! `ccd schema`'s own, its definitions under `Spec*` names, so the document
//! and `ccd validate` cannot disagree.

use std::sync::Arc;

use axum::Router;
use serde_json::{Value, json};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiState, apps, events, rollouts};

#[derive(OpenApi)]
#[openapi(
    info(title = "ccd", description = "ccd's REST API: apps, plans, rollouts, events and services."),
    modifiers(&Bearer)
)]
struct Document;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes under `/v1`, and the document that describes them.
pub(crate) fn routes() -> (Router<Arc<ApiState>>, Value) {
    let (router, api) = OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(apps::list))
        .routes(routes!(apps::get, apps::put, apps::delete))
        .routes(routes!(rollouts::history))
        .routes(routes!(rollouts::control))
        .routes(routes!(rollouts::services))
        .routes(routes!(rollouts::plan))
        .routes(routes!(events::list))
        .routes(routes!(events::stream))
        .split_for_parts();
    let mut document = serde_json::to_value(&api).unwrap_or_default();
    add_app_schema(&mut document);
    describe_responses(&mut document);
    (router, document)
}

/// The spec's schema as `#/components/schemas/App`, and JSON request bodies
/// of that schema beside YAML ones.
fn add_app_schema(document: &mut Value) {
    let mut app: Value = serde_json::from_str(&ccd_spec::app_schema_json()).unwrap_or_default();
    let defs = app
        .as_object_mut()
        .and_then(|o| {
            o.remove("$schema");
            o.remove("$id");
            o.remove("$defs")
        })
        .unwrap_or_default();
    rename_refs(&mut app);
    let schemas = &mut document["components"]["schemas"];
    if let Value::Object(defs) = defs {
        for (name, mut schema) in defs {
            rename_refs(&mut schema);
            schemas[format!("Spec{name}")] = schema;
        }
    }
    schemas["App"] = app;
    for (path, method) in [("/v1/apps/{name}", "put"), ("/v1/apps/{name}/plan", "post")] {
        // `get_mut`, not indexing: indexing a missing key would add it.
        let content = document
            .pointer_mut(&format!(
                "/paths/{}/{method}/requestBody/content",
                path.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_object_mut);
        if let Some(content) = content {
            content.insert(
                "application/json".to_owned(),
                json!({"schema": {"$ref": "#/components/schemas/App"}}),
            );
        }
    }
}

/// Every response has a description (OpenAPI requires one): the status's
/// reason phrase where the handler's annotation gives none.
fn describe_responses(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in operation.values_mut() {
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            for (code, response) in responses.iter_mut() {
                if response.get("description").is_none() {
                    let reason = code
                        .parse::<u16>()
                        .ok()
                        .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("the answer");
                    response["description"] = Value::String(reason.to_owned());
                }
            }
        }
    }
}

fn rename_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            *r = format!("#/components/schemas/Spec{name}");
                        }
                    }
                    (_, v) => rename_refs(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rename_refs),
        _ => {}
    }
}
