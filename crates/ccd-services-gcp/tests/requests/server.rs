//! A recording HTTP server on 127.0.0.1 standing for Google's REST APIs:
//! every request is resolved against the trimmed discovery documents
//! (`tests/discovery/`), its query parameters (only the method's, the
//! required ones present) and body checked against the method it resolved
//! to, and answered with the JSON the test queued for that method. Whatever breaks the contract is kept as a problem, and
//! [`Server::recorded`] fails the test on any.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ccd_discovery::{Api, Location, Schema};
use ccd_services_gcp::{GcpConfig, GcpServices};
use serde_json::{Value, json};

/// The contracts, by the name the tests use; enums may come as
/// numbers, as the Rust SDKs send them.
pub static APIS: LazyLock<Vec<(&'static str, Api)>> = LazyLock::new(|| {
    let load = |text: &str| Api::from_json(text).unwrap().with_enum_numbers();
    vec![
        (
            "sqladmin",
            load(include_str!("../discovery/sqladmin-v1.json")),
        ),
        (
            "firestore",
            load(include_str!("../discovery/firestore-v1.json")),
        ),
        (
            "logging",
            load(include_str!("../discovery/logging-v2.json")),
        ),
        (
            "cloudresourcemanager",
            load(include_str!("../discovery/cloudresourcemanager-v3.json")),
        ),
        (
            "secretmanager",
            load(include_str!("../discovery/secretmanager-v1.json")),
        ),
    ]
});

pub fn api(name: &str) -> &'static Api {
    &APIS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The discovery method id, e.g. `sql.databases.insert`.
    pub method: String,
    pub verb: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
}

impl Recorded {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &Value {
        self.body.as_ref().unwrap_or(&Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    script: HashMap<String, VecDeque<(u16, Value)>>,
    recorded: Vec<Recorded>,
    problems: Vec<String>,
}

pub struct Server {
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
}

/// Google's error body.
pub fn error(code: u16, status: &str) -> Value {
    json!({"error": {"code": code, "message": format!("{status} (recorded)"), "status": status}})
}

impl Server {
    pub async fn start() -> Server {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Server { endpoint, shared }
    }

    /// Queues an answer to the next call of `method`; a 2xx body is checked
    /// against the method's response schema, so the fixtures are Google's shapes.
    pub fn answer(&self, method: &str, status: u16, body: Value) -> &Self {
        let (_, m) = find_method(method);
        if (200..300).contains(&status)
            && let Some(schema) = &m.response
        {
            let (name, api) = APIS
                .iter()
                .find(|(_, a)| a.method(method).is_some())
                .unwrap();
            if let Err(e) = api.check_response(schema, &body) {
                panic!("the canned answer to {method} is not a {name} {schema}: {e:?}");
            }
        }
        let mut shared = self.shared.lock().unwrap();
        shared
            .script
            .entry(method.to_owned())
            .or_default()
            .push_back((status, body));
        self
    }

    /// Every request so far, after asserting each kept the contract and every
    /// queued answer was asked for.
    pub fn recorded(&self) -> Vec<Recorded> {
        let shared = self.shared.lock().unwrap();
        assert!(shared.problems.is_empty(), "{:#?}", shared.problems);
        let left: Vec<_> = shared
            .script
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .collect();
        assert!(left.is_empty(), "answers never asked for: {left:?}");
        shared.recorded.clone()
    }

    /// What broke the contract so far (tests of the recorder itself).
    pub fn problems(&self) -> Vec<String> {
        self.shared.lock().unwrap().problems.clone()
    }

    /// The method ids called, in order.
    pub fn methods(&self) -> Vec<String> {
        self.recorded().into_iter().map(|r| r.method).collect()
    }

    /// The adapter, every client pointed here with anonymous credentials.
    pub async fn services(&self) -> GcpServices {
        let mut config = GcpConfig::new("p", "europe-west1");
        config.sql_instance = Some("main".to_owned());
        config.logs_bucket = Some("ccd-logs".to_owned());
        config.endpoint = Some(self.endpoint.clone());
        config.credentials =
            Some(google_cloud_auth::credentials::anonymous::Builder::new().build());
        config.poll_interval = Duration::from_millis(10);
        GcpServices::new(config).await.unwrap()
    }
}

fn find_method(id: &str) -> (&'static str, &'static ccd_discovery::Method) {
    APIS.iter()
        .find_map(|(name, api)| api.method(id).map(|m| (*name, m)))
        .unwrap_or_else(|| panic!("no method {id} in the trimmed documents"))
}

/// The name an enum field's value stands for: a number is looked up in the
/// discovery document's list (declaration order).
pub fn enum_name(api: &Api, schema: &str, field: &str, value: &Value) -> String {
    let Some(Schema::Object { properties, .. }) = api.schema(schema) else {
        panic!("{schema} is not an object schema");
    };
    let Schema::String { enum_values, .. } = &properties[field].schema else {
        panic!("{schema}.{field} is not an enum");
    };
    match value {
        Value::Number(n) => enum_values[usize::try_from(n.as_u64().unwrap()).unwrap()].clone(),
        Value::String(s) => s.clone(),
        other => panic!("{schema}.{field} = {other}"),
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    verb: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);
    let found: Vec<_> = APIS
        .iter()
        .filter_map(|(name, api)| {
            api.resolve(verb.as_str(), &path)
                .map(|(m, _)| (*name, api, m))
        })
        .collect();
    let [(name, api, method)] = found.as_slice() else {
        problem(format!(
            "{verb} {path}: resolved by {} methods",
            found.len()
        ));
        shared.lock().unwrap().problems.extend(problems);
        return (
            StatusCode::NOT_IMPLEMENTED,
            axum::Json(error(501, "UNIMPLEMENTED")),
        )
            .into_response();
    };
    for (q, _) in &query {
        if method.query_parameter(q).is_none() {
            problem(format!(
                "{}: query parameter {q:?} is not the method's",
                method.id
            ));
        }
    }
    let required = method
        .parameters
        .iter()
        .filter(|p| p.location == Location::Query && p.required);
    for p in required {
        if !query.iter().any(|(q, _)| *q == p.name) {
            problem(format!(
                "{}: the required {:?} is missing",
                method.id, p.name
            ));
        }
    }
    let body: Option<Value> = match body.is_empty() {
        true => None,
        false => match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                problem(format!("{}: the body is not JSON: {e}", method.id));
                None
            }
        },
    };
    match (&method.request, &body) {
        (Some(schema), Some(b)) => {
            if let Err(e) = api.check_request(schema, b) {
                problem(format!(
                    "{}: {name} refuses the body as {schema}: {e:?}",
                    method.id
                ));
            }
        }
        (Some(schema), None) => problem(format!("{}: no body, {schema} expected", method.id)),
        (None, Some(b)) => problem(format!("{}: a body it takes none of: {b}", method.id)),
        (None, None) => {}
    }
    let mut shared = shared.lock().unwrap();
    shared.problems.extend(problems);
    shared.recorded.push(Recorded {
        method: method.id.clone(),
        verb: verb.to_string(),
        path,
        query,
        body,
    });
    let answer = shared
        .script
        .get_mut(&method.id)
        .and_then(VecDeque::pop_front);
    let (status, body) = match answer {
        Some(a) => a,
        None => {
            let p = format!("{}: called, but no answer was queued", method.id);
            shared.problems.push(p);
            (501, error(501, "UNIMPLEMENTED"))
        }
    };
    let status = StatusCode::from_u16(status).unwrap();
    (status, axum::Json(body)).into_response()
}
