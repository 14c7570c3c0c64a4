//! The URL map (GCE's `urlMaps`): host rules pick a path matcher, path rules pick a route.
//!
//! [`UrlMap`] is the configuration; [`Router`] is its compiled, immutable form that a frontend
//! swaps in whole, so a request always sees one consistent map.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend_service::BackendService;
use crate::error::LbError;
use crate::retry::RetryPolicy;
use crate::split::{RouteAction, ServiceSplit};

/// Which backend services serve which hosts and paths.
#[derive(Debug, Clone)]
pub struct UrlMap {
    /// Route for requests whose host matches no host rule.
    pub default_route: RouteAction,
    /// Hosts to path matchers.
    pub host_rules: Vec<HostRule>,
    /// Named path matchers referred to by host rules.
    pub path_matchers: Vec<PathMatcher>,
}

impl UrlMap {
    /// A map that sends everything to one route.
    pub fn new(default_route: RouteAction) -> Self {
        Self {
            default_route,
            host_rules: Vec::new(),
            path_matchers: Vec::new(),
        }
    }
}

/// Sends requests for some hosts to a path matcher.
#[derive(Debug, Clone)]
pub struct HostRule {
    /// Host names: exact (`app.example.com`), a leading wildcard (`*.example.com`, `*-app.com`),
    /// or `*` for any host. The most specific match wins: exact, then the longest wildcard.
    pub hosts: Vec<String>,
    /// Name of the [`PathMatcher`] for these hosts.
    pub path_matcher: String,
}

/// Chooses a route by request path.
#[derive(Debug, Clone)]
pub struct PathMatcher {
    /// Name host rules refer to.
    pub name: String,
    /// Route for paths that match no rule.
    pub default_route: RouteAction,
    /// Path rules; the longest matching path wins, whatever the order.
    pub path_rules: Vec<PathRule>,
}

/// Sends some paths to a route.
#[derive(Debug, Clone)]
pub struct PathRule {
    /// Exact paths (`/login`) or prefixes ending in `/*` (`/api/*` matches `/api/` and below).
    pub paths: Vec<String>,
    /// Where matching requests go.
    pub route: RouteAction,
}

#[derive(Debug)]
pub(crate) struct Router {
    default: ServiceSplit,
    /// Lowercase exact host names, to matcher index.
    exact_hosts: HashMap<Box<str>, usize>,
    /// Lowercase suffixes of wildcard hosts (what follows the `*`), longest first.
    wildcard_hosts: Vec<(Box<str>, usize)>,
    any_host: Option<usize>,
    matchers: Vec<CompiledMatcher>,
}

#[derive(Debug)]
struct CompiledMatcher {
    default: ServiceSplit,
    routes: Vec<ServiceSplit>,
    exact_paths: HashMap<Box<str>, usize>,
    /// Prefixes (ending in `/`), longest first, to route index.
    prefixes: Vec<(Box<str>, usize)>,
}

impl Router {
    pub(crate) fn new(map: &UrlMap) -> Result<Self, LbError> {
        let invalid = LbError::InvalidUrlMap;
        let default = ServiceSplit::new(&map.default_route)
            .map_err(|reason| invalid(format!("default route: {reason}")))?;
        let mut matcher_index = HashMap::new();
        let mut matchers = Vec::with_capacity(map.path_matchers.len());
        for matcher in &map.path_matchers {
            if matcher_index
                .insert(matcher.name.as_str(), matchers.len())
                .is_some()
            {
                return Err(invalid(format!("duplicate path matcher {}", matcher.name)));
            }
            matchers.push(
                CompiledMatcher::new(matcher).map_err(|reason| {
                    invalid(format!("path matcher {}: {reason}", matcher.name))
                })?,
            );
        }

        let mut router = Self {
            default,
            exact_hosts: HashMap::new(),
            wildcard_hosts: Vec::new(),
            any_host: None,
            matchers,
        };
        for rule in &map.host_rules {
            let &index = matcher_index
                .get(rule.path_matcher.as_str())
                .ok_or_else(|| {
                    invalid(format!(
                        "host rule refers to unknown path matcher {}",
                        rule.path_matcher
                    ))
                })?;
            if rule.hosts.is_empty() {
                return Err(invalid("host rule without hosts".to_owned()));
            }
            for host in &rule.hosts {
                router.add_host(host, index).map_err(invalid)?;
            }
        }
        router
            .wildcard_hosts
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Ok(router)
    }

    fn add_host(&mut self, pattern: &str, matcher: usize) -> Result<(), String> {
        let pattern = pattern.to_ascii_lowercase();
        let valid_chars = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        let duplicate = || format!("host {pattern} appears in more than one host rule");
        if pattern == "*" {
            if self.any_host.replace(matcher).is_some() {
                return Err(duplicate());
            }
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            if !valid_chars(suffix) {
                return Err(format!("invalid host pattern {pattern}"));
            }
            if self.wildcard_hosts.iter().any(|(s, _)| **s == *suffix) {
                return Err(duplicate());
            }
            self.wildcard_hosts.push((suffix.into(), matcher));
        } else {
            if !valid_chars(&pattern) {
                return Err(format!("invalid host pattern {pattern}"));
            }
            if self.exact_hosts.contains_key(pattern.as_str()) {
                return Err(duplicate());
            }
            self.exact_hosts.insert(pattern.into(), matcher);
        }
        Ok(())
    }

    /// The backend service for a request to `host` (as in the `Host` header or the URI
    /// authority, port allowed) and `path`, and its route's retry policy.
    pub(crate) fn route(
        &self,
        host: Option<&str>,
        path: &str,
    ) -> (&BackendService, Option<&Arc<RetryPolicy>>) {
        let split = match host.and_then(|host| self.matcher_for(strip_port(host))) {
            Some(matcher) => matcher.route(path),
            None => &self.default,
        };
        (split.pick(), split.retry_policy())
    }

    fn matcher_for(&self, host: &str) -> Option<&CompiledMatcher> {
        let index = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.match_host(&host.to_ascii_lowercase())
        } else {
            self.match_host(host)
        }?;
        self.matchers.get(index)
    }

    fn match_host(&self, host: &str) -> Option<usize> {
        if let Some(&index) = self.exact_hosts.get(host) {
            return Some(index);
        }
        self.wildcard_hosts
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(&**suffix))
            .map(|&(_, index)| index)
            .or(self.any_host)
    }
}

impl CompiledMatcher {
    fn new(matcher: &PathMatcher) -> Result<Self, String> {
        let default = ServiceSplit::new(&matcher.default_route)?;
        let mut compiled = Self {
            default,
            routes: Vec::with_capacity(matcher.path_rules.len()),
            exact_paths: HashMap::new(),
            prefixes: Vec::new(),
        };
        for rule in &matcher.path_rules {
            let index = compiled.routes.len();
            compiled.routes.push(ServiceSplit::new(&rule.route)?);
            if rule.paths.is_empty() {
                return Err("path rule without paths".to_owned());
            }
            for path in &rule.paths {
                compiled.add_path(path, index)?;
            }
        }
        compiled
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(compiled)
    }

    fn add_path(&mut self, path: &str, route: usize) -> Result<(), String> {
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(format!("path {path:?} must start with / and have no query"));
        }
        let duplicate = || format!("path {path} appears in more than one path rule");
        match path.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') && !prefix.contains('*') => {
                if self.prefixes.iter().any(|(p, _)| **p == *prefix) {
                    return Err(duplicate());
                }
                self.prefixes.push((prefix.into(), route));
            }
            Some(_) => return Err(format!("path {path:?}: * may only end a path, after /")),
            None if path.contains('*') => {
                return Err(format!("path {path:?}: * may only end a path, after /"));
            }
            None => {
                if self.exact_paths.insert(path.into(), route).is_some() {
                    return Err(duplicate());
                }
            }
        }
        Ok(())
    }

    fn route(&self, path: &str) -> &ServiceSplit {
        // An exact path that matches is at least as long as any matching prefix, so it wins.
        let index = self.exact_paths.get(path).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, _)| path.starts_with(&**prefix))
                .map(|&(_, index)| index)
        });
        match index.and_then(|index| self.routes.get(index)) {
            Some(split) => split,
            None => &self.default,
        }
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend_service::tests::idle_service;

    fn to(name: &str) -> RouteAction {
        RouteAction::service(idle_service(name))
    }

    fn sample_map() -> UrlMap {
        UrlMap {
            default_route: to("default"),
            host_rules: vec![
                HostRule {
                    hosts: vec!["app.example.com".into()],
                    path_matcher: "app".into(),
                },
                HostRule {
                    hosts: vec!["*.example.com".into()],
                    path_matcher: "wild".into(),
                },
                HostRule {
                    hosts: vec!["*.eu.example.com".into()],
                    path_matcher: "eu".into(),
                },
            ],
            path_matchers: vec![
                PathMatcher {
                    name: "app".into(),
                    default_route: to("app-web"),
                    path_rules: vec![
                        PathRule {
                            paths: vec!["/api/*".into()],
                            route: to("app-api"),
                        },
                        PathRule {
                            paths: vec!["/api/v2/*".into(), "/login".into()],
                            route: to("app-v2"),
                        },
                    ],
                },
                PathMatcher {
                    name: "wild".into(),
                    default_route: to("wild"),
                    path_rules: vec![],
                },
                PathMatcher {
                    name: "eu".into(),
                    default_route: to("eu"),
                    path_rules: vec![],
                },
            ],
        }
    }

    fn route(router: &Router, host: Option<&str>, path: &str) -> String {
        router.route(host, path).0.name().to_owned()
    }

    #[tokio::test]
    async fn exact_host_and_longest_path_win() {
        let router = Router::new(&sample_map()).unwrap();
        let app = Some("app.example.com");
        assert_eq!(route(&router, app, "/"), "app-web");
        assert_eq!(
            route(&router, app, "/api"),
            "app-web",
            "/api/* needs the slash"
        );
        assert_eq!(route(&router, app, "/api/"), "app-api");
        assert_eq!(route(&router, app, "/api/v1/users"), "app-api");
        assert_eq!(route(&router, app, "/api/v2/users"), "app-v2");
        assert_eq!(route(&router, app, "/login"), "app-v2");
        assert_eq!(route(&router, app, "/login/x"), "app-web");
    }

    #[tokio::test]
    async fn host_matching_ignores_port_and_case_and_prefers_longer_wildcards() {
        let router = Router::new(&sample_map()).unwrap();
        assert_eq!(
            route(&router, Some("APP.Example.com:8443"), "/api/x"),
            "app-api"
        );
        assert_eq!(route(&router, Some("shop.example.com"), "/"), "wild");
        assert_eq!(route(&router, Some("shop.eu.example.com"), "/"), "eu");
        assert_eq!(route(&router, Some("example.com"), "/"), "default");
        assert_eq!(route(&router, Some("other.org"), "/"), "default");
        assert_eq!(route(&router, None, "/"), "default");
    }

    #[tokio::test]
    async fn star_host_catches_everything_else() {
        let mut map = sample_map();
        map.host_rules.push(HostRule {
            hosts: vec!["*".into()],
            path_matcher: "wild".into(),
        });
        let router = Router::new(&map).unwrap();
        assert_eq!(route(&router, Some("other.org"), "/"), "wild");
        assert_eq!(route(&router, Some("[::1]:80"), "/"), "wild");
        assert_eq!(route(&router, Some("app.example.com"), "/"), "app-web");
    }

    #[tokio::test]
    async fn rejects_inconsistent_maps() {
        let mut unknown_matcher = sample_map();
        unknown_matcher.host_rules[0].path_matcher = "nope".into();
        assert!(Router::new(&unknown_matcher).is_err());

        let mut duplicate_host = sample_map();
        duplicate_host.host_rules[1]
            .hosts
            .push("APP.example.com".into());
        assert!(Router::new(&duplicate_host).is_err());

        for bad_path in ["api/*", "/a*", "/a/*/b", "/q?x=1"] {
            let mut map = sample_map();
            map.path_matchers[0].path_rules[0].paths = vec![bad_path.into()];
            assert!(Router::new(&map).is_err(), "{bad_path} accepted");
        }

        let mut bad_host = sample_map();
        bad_host.host_rules[0].hosts = vec!["a.*.com".into()];
        assert!(Router::new(&bad_host).is_err());
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
