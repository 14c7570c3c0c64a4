//! The model of the contract and its loading from the trimmed discovery JSON.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;

/// One REST method, e.g. `compute.instanceGroupManagers.resize`.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub id: String,
    /// The resource collection, e.g. `instanceGroupManagers`; a nested one
    /// by its dotted path, e.g. `projects.databases`.
    pub resource: String,
    /// The method name within the resource, e.g. `resize`.
    pub name: String,
    /// Upper-case HTTP verb.
    pub http_method: String,
    /// Path template relative to the API's service path (`/compute/v1/` for
    /// Compute, the host's root for most others), e.g. `projects/{project}/zones/{zone}/...`
    /// or `v3/projects/{projectsId}:getIamPolicy`.
    pub flat_path: String,
    /// Parameters in the document's `parameterOrder`, then the rest by name.
    pub parameters: Vec<Parameter>,
    /// Request body schema name.
    pub request: Option<String>,
    /// Response body schema name.
    pub response: Option<String>,
    /// The API-wide query parameters (`alt`, `fields`, `prettyPrint`, ...), shared.
    standard: Arc<[Parameter]>,
}

impl Method {
    /// A query parameter of this method, or one of the standard parameters every
    /// method accepts. Google also accepts system parameters with a `$` prefix
    /// (`$alt=json`, which google-cloud-rust sends), so `$name` finds `name` too.
    pub fn query_parameter(&self, name: &str) -> Option<&Parameter> {
        let own = |n: &str| {
            self.parameters
                .iter()
                .chain(self.standard.iter())
                .find(|p| p.location == Location::Query && p.name == n)
        };
        own(name).or_else(|| name.strip_prefix('$').and_then(own))
    }
}

/// A path or query parameter of a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub location: Location,
    pub kind: ParamType,
    pub required: bool,
    /// Allowed values; empty when any value of `kind` is allowed.
    pub enum_values: Vec<String>,
    /// e.g. `int32`, `uint32`.
    pub format: Option<String>,
    /// The parameter may be given several times (`views=A&views=B`).
    pub repeated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

/// A body schema, as the discovery document describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Schema {
    /// A message: named properties and/or a map (`additionalProperties`).
    Object {
        properties: BTreeMap<String, Property>,
        additional: Option<Box<Schema>>,
    },
    Array(Box<Schema>),
    /// A named schema (`$ref`).
    Ref(String),
    /// Strings, including int64/uint64 (`format`) and enums (`enum_values` not empty).
    String {
        format: Option<String>,
        enum_values: Vec<String>,
    },
    /// `int32` or `uint32` (`format`).
    Integer {
        format: Option<String>,
    },
    /// `float` or `double` (`format`).
    Number {
        format: Option<String>,
    },
    Boolean,
    /// Any JSON value (only inside `google.protobuf.Any`).
    Any,
}

/// A property of an object schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub schema: Schema,
    /// Output only: the server sets it and ignores it in requests.
    pub read_only: bool,
}

/// Why a document could not be loaded: for the embedded one, only if the
/// data file is broken, which the crate's tests rule out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("not a discovery document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{at}: unknown type {ty:?}")]
    UnknownType { at: String, ty: String },
    #[error("{at}: $ref to missing schema {name:?}")]
    MissingRef { at: String, name: String },
    #[error("{at}: unknown parameter location or type")]
    BadParameter { at: String },
    #[error("two methods share a path and verb: {0} and {1}")]
    Ambiguous(String, String),
}

#[derive(Deserialize)]
struct RawDoc {
    #[serde(default)]
    parameters: BTreeMap<String, RawParam>,
    resources: BTreeMap<String, RawResource>,
    schemas: BTreeMap<String, RawSchema>,
}

#[derive(Deserialize)]
struct RawResource {
    #[serde(default)]
    methods: BTreeMap<String, RawMethod>,
    /// Nested collections (`projects.databases.operations`).
    #[serde(default)]
    resources: BTreeMap<String, RawResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMethod {
    id: String,
    http_method: String,
    flat_path: Option<String>,
    path: String,
    #[serde(default)]
    parameters: BTreeMap<String, RawParam>,
    #[serde(default)]
    parameter_order: Vec<String>,
    request: Option<RawRef>,
    response: Option<RawRef>,
}

#[derive(Deserialize)]
struct RawRef {
    #[serde(rename = "$ref")]
    name: String,
}

#[derive(Deserialize)]
struct RawParam {
    location: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    required: bool,
    #[serde(default, rename = "enum")]
    enum_values: Vec<String>,
    format: Option<String>,
    #[serde(default)]
    repeated: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSchema {
    #[serde(rename = "type")]
    ty: Option<String>,
    format: Option<String>,
    #[serde(default, rename = "enum")]
    enum_values: Vec<String>,
    #[serde(rename = "$ref")]
    reference: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, RawSchema>,
    items: Option<Box<RawSchema>>,
    additional_properties: Option<Box<RawSchema>>,
    #[serde(default)]
    read_only: bool,
}

/// The loaded document: methods sorted by resource and name, plus lookups.
pub(crate) struct Loaded {
    pub methods: Vec<Method>,
    pub by_id: HashMap<String, usize>,
    pub schemas: HashMap<String, Schema>,
}

pub(crate) fn load(text: &str) -> Result<Loaded, LoadError> {
    let raw: RawDoc = serde_json::from_str(text)?;
    let standard: Arc<[Parameter]> = raw
        .parameters
        .iter()
        .map(|(name, p)| parameter(name, p, "parameters"))
        .collect::<Result<Vec<_>, _>>()?
        .into();

    let mut schemas = HashMap::new();
    for (name, s) in &raw.schemas {
        schemas.insert(name.clone(), schema(s, name)?);
    }

    let mut methods = Vec::new();
    // Depth first over nested resources; a discovery document nests a few
    // levels at most, and a path stack keeps this iterative anyway.
    let mut pending: Vec<(String, &RawResource)> = raw
        .resources
        .iter()
        .rev()
        .map(|(name, r)| (name.clone(), r))
        .collect();
    while let Some((resource, r)) = pending.pop() {
        for (name, m) in &r.methods {
            methods.push(method(&resource, name, m, &schemas, &standard)?);
        }
        pending.extend(
            r.resources
                .iter()
                .rev()
                .map(|(name, child)| (format!("{resource}.{name}"), child)),
        );
    }

    for (name, s) in &schemas {
        refs_exist(s, &schemas, name)?;
    }
    let by_id = methods
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.clone(), i))
        .collect();
    Ok(Loaded {
        methods,
        by_id,
        schemas,
    })
}

fn method(
    resource: &str,
    name: &str,
    m: &RawMethod,
    schemas: &HashMap<String, Schema>,
    standard: &Arc<[Parameter]>,
) -> Result<Method, LoadError> {
    let mut parameters = Vec::with_capacity(m.parameters.len());
    for p in &m.parameter_order {
        if let Some(raw_p) = m.parameters.get(p) {
            parameters.push(parameter(p, raw_p, &m.id)?);
        }
    }
    for (p, raw_p) in &m.parameters {
        if !m.parameter_order.contains(p) {
            parameters.push(parameter(p, raw_p, &m.id)?);
        }
    }
    for r in [&m.request, &m.response].into_iter().flatten() {
        if !schemas.contains_key(&r.name) {
            return Err(LoadError::MissingRef {
                at: m.id.clone(),
                name: r.name.clone(),
            });
        }
    }
    Ok(Method {
        id: m.id.clone(),
        resource: resource.to_owned(),
        name: name.to_owned(),
        http_method: m.http_method.to_ascii_uppercase(),
        flat_path: m.flat_path.clone().unwrap_or_else(|| m.path.clone()),
        parameters,
        request: m.request.as_ref().map(|r| r.name.clone()),
        response: m.response.as_ref().map(|r| r.name.clone()),
        standard: standard.clone(),
    })
}

fn parameter(name: &str, p: &RawParam, at: &str) -> Result<Parameter, LoadError> {
    let bad = || LoadError::BadParameter {
        at: format!("{at}.{name}"),
    };
    let location = match p.location.as_str() {
        "path" => Location::Path,
        "query" => Location::Query,
        _ => return Err(bad()),
    };
    let kind = match p.ty.as_str() {
        "string" => ParamType::String,
        "integer" => ParamType::Integer,
        "number" => ParamType::Number,
        "boolean" => ParamType::Boolean,
        _ => return Err(bad()),
    };
    Ok(Parameter {
        name: name.to_owned(),
        location,
        kind,
        required: p.required,
        enum_values: p.enum_values.clone(),
        format: p.format.clone(),
        repeated: p.repeated,
    })
}

// The document nests at most a handful of levels per schema (nesting across
// schemas goes through `$ref`), so recursing over it is bounded.
fn schema(s: &RawSchema, at: &str) -> Result<Schema, LoadError> {
    if let Some(name) = &s.reference {
        return Ok(Schema::Ref(name.clone()));
    }
    let ty = s.ty.as_deref().unwrap_or("");
    Ok(match ty {
        "object" => {
            let mut properties = BTreeMap::new();
            for (name, p) in &s.properties {
                let schema = schema(p, &format!("{at}.{name}"))?;
                properties.insert(
                    name.clone(),
                    Property {
                        schema,
                        read_only: p.read_only,
                    },
                );
            }
            let additional = match &s.additional_properties {
                Some(a) => Some(Box::new(schema(a, &format!("{at}{{}}"))?)),
                None => None,
            };
            Schema::Object {
                properties,
                additional,
            }
        }
        "array" => match &s.items {
            Some(items) => Schema::Array(Box::new(schema(items, &format!("{at}[]"))?)),
            None => Schema::Array(Box::new(Schema::Any)),
        },
        "string" => Schema::String {
            format: s.format.clone(),
            enum_values: s.enum_values.clone(),
        },
        "integer" => Schema::Integer {
            format: s.format.clone(),
        },
        "number" => Schema::Number {
            format: s.format.clone(),
        },
        "boolean" => Schema::Boolean,
        "any" => Schema::Any,
        _ => {
            return Err(LoadError::UnknownType {
                at: at.to_owned(),
                ty: ty.to_owned(),
            });
        }
    })
}

fn refs_exist(s: &Schema, all: &HashMap<String, Schema>, at: &str) -> Result<(), LoadError> {
    match s {
        Schema::Ref(name) if !all.contains_key(name) => Err(LoadError::MissingRef {
            at: at.to_owned(),
            name: name.clone(),
        }),
        Schema::Object {
            properties,
            additional,
        } => {
            for p in properties.values() {
                refs_exist(&p.schema, all, at)?;
            }
            additional
                .as_deref()
                .map_or(Ok(()), |a| refs_exist(a, all, at))
        }
        Schema::Array(items) => refs_exist(items, all, at),
        _ => Ok(()),
    }
}
