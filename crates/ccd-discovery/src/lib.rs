//! The Compute Engine v1 REST contract, embedded, and any other Google REST
//! contract loaded from its discovery document.
//!
//! ccd's local cloud must answer exactly as Google does: same paths, verbs,
//! field names and enum values. This crate embeds a trimmed copy of Google's
//! discovery document (`data/compute-v1.json`, made by `tools/trim.py`) and
//! offers what a server needs from it: routing a request to its method
//! ([`Api::resolve`]) and checking bodies against schemas
//! ([`Api::check_request`], [`Api::check_response`]). Tests of other
//! adapters load other trimmed documents the same way ([`Api::from_json`]).

mod check;
mod model;
mod router;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;

pub use model::{LoadError, Location, Method, ParamType, Parameter, Property, Schema};

use check::Mode;
use router::Router;

/// The trimmed discovery document; see `data/NOTICE`.
const COMPUTE_V1: &str = include_str!("../data/compute-v1.json");

static COMPUTE: LazyLock<Api> = LazyLock::new(|| {
    // The document is compiled in and the crate's tests load it, so a failure
    // here is a build defect, not a runtime condition to recover from.
    #[allow(clippy::expect_used)]
    Api::from_json(COMPUTE_V1).expect("embedded data/compute-v1.json loads")
});

/// A REST API contract: its methods, a path index over them, and its schemas.
#[derive(Debug)]
pub struct Api {
    methods: Vec<Method>,
    by_id: HashMap<String, usize>,
    schemas: HashMap<String, Schema>,
    router: Router,
    /// Requests may give an enum by its number ([`Api::with_enum_numbers`]).
    enum_numbers: bool,
}

/// One problem in a body: where (a JSON field path such as
/// `updatePolicy.maxSurge.fixed` or `versions[0].instanceTemplate`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

impl Api {
    /// The embedded Compute v1 contract.
    pub fn compute() -> &'static Api {
        &COMPUTE
    }

    /// A contract from a (trimmed) discovery document's text; nested
    /// resources and custom verbs (`{resource}:getIamPolicy`) included.
    pub fn from_json(text: &str) -> Result<Api, LoadError> {
        let loaded = model::load(text)?;
        let router = Router::new(&loaded.methods)?;
        Ok(Api {
            methods: loaded.methods,
            by_id: loaded.by_id,
            schemas: loaded.schemas,
            router,
            enum_numbers: false,
        })
    }

    /// The same contract, reading an enum in a request as its number too, as
    /// the front end of an API served by gRPC transcoding (proto JSON) does:
    /// Google's Rust SDKs send enums as numbers. The discovery document lists
    /// an enum's values in declaration order without their numbers, so a
    /// number is accepted when it indexes that list; callers that care which
    /// value it names look it up ([`Schema::String`]'s `enum_values`).
    pub fn with_enum_numbers(mut self) -> Api {
        self.enum_numbers = true;
        self
    }

    /// Finds the method for an HTTP verb and a path relative to the API's
    /// service path (`/compute/v1/` for Compute, e.g.
    /// "projects/p/zones/z/instanceGroupManagers/m/resize"; the root for most
    /// others, e.g. "v3/projects/p:getIamPolicy"); returns it with the path
    /// parameters by name, percent-decoded. A leading `/` and a query string
    /// are ignored; an empty segment matches nothing.
    pub fn resolve(&self, verb: &str, path: &str) -> Option<(&Method, BTreeMap<String, String>)> {
        let (index, params) = self.router.resolve(verb, path)?;
        Some((self.methods.get(index)?, params))
    }

    /// A method by id, e.g. "compute.instanceGroupManagers.resize".
    pub fn method(&self, id: &str) -> Option<&Method> {
        self.methods.get(*self.by_id.get(id)?)
    }

    /// Every method, sorted by resource, then method name.
    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.methods.iter()
    }

    /// A named schema, e.g. "InstanceGroupManager".
    pub fn schema(&self, name: &str) -> Option<&Schema> {
        self.schemas.get(name)
    }

    /// Checks a request body against schema `name` as Google's front end
    /// would; every problem names the field path (e.g. "updatePolicy.maxSurge.fixed").
    /// Output-only fields are accepted (Google ignores them in requests).
    pub fn check_request(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), Vec<FieldError>> {
        check::check(&self.schemas, name, body, Mode::Request, self.enum_numbers)
    }

    /// Strict check for what the server sends: unknown fields, wrong types,
    /// bad enum values, `null`s; int64/uint64 fields must be JSON strings and
    /// int32/uint32 fields JSON numbers, as Google sends them.
    pub fn check_response(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), Vec<FieldError>> {
        check::check(&self.schemas, name, body, Mode::Response, false)
    }
}
