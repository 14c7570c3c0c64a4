//! Path resolution: a segment trie built once, so matching a request costs one
//! hash lookup per path segment instead of a scan over every method's template.

use std::collections::{BTreeMap, HashMap};

use crate::model::{LoadError, Method};

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<String, usize>,
    /// The children reached by a segment `VALUE:verb` (`{param}:verb`, the
    /// custom methods of Google's resource-oriented APIs), by verb.
    verbs: HashMap<String, usize>,
    /// The child reached by any non-empty segment (`{param}`).
    param: Option<usize>,
    /// Methods whose template ends here: (verb, method index).
    ends: Vec<(String, usize)>,
}

#[derive(Debug)]
pub(crate) struct Router {
    nodes: Vec<Node>,
    /// Per method: (segment position, parameter name, length of the
    /// `:verb` after it) of each `{param}`.
    captures: Vec<Vec<(usize, String, usize)>>,
}

impl Router {
    pub(crate) fn new(methods: &[Method]) -> Result<Router, LoadError> {
        let mut router = Router {
            nodes: vec![Node::default()],
            captures: Vec::new(),
        };
        for (index, method) in methods.iter().enumerate() {
            let mut node = 0;
            let mut captures = Vec::new();
            for (pos, segment) in method.flat_path.split('/').enumerate() {
                node = match template_param(segment) {
                    Some((name, Some(verb))) => {
                        captures.push((pos, name.to_owned(), verb.len() + 1));
                        match router.nodes[node].verbs.get(verb) {
                            Some(&next) => next,
                            None => {
                                let next = router.push();
                                router.nodes[node].verbs.insert(verb.to_owned(), next);
                                next
                            }
                        }
                    }
                    Some((name, None)) => {
                        captures.push((pos, name.to_owned(), 0));
                        match router.nodes[node].param {
                            Some(next) => next,
                            None => {
                                let next = router.push();
                                router.nodes[node].param = Some(next);
                                next
                            }
                        }
                    }
                    None => match router.nodes[node].literals.get(segment) {
                        Some(&next) => next,
                        None => {
                            let next = router.push();
                            router.nodes[node].literals.insert(segment.to_owned(), next);
                            next
                        }
                    },
                };
            }
            let ends = &mut router.nodes[node].ends;
            if let Some((_, other)) = ends.iter().find(|(verb, _)| *verb == method.http_method) {
                return Err(LoadError::Ambiguous(
                    methods[*other].id.clone(),
                    method.id.clone(),
                ));
            }
            ends.push((method.http_method.clone(), index));
            router.captures.push(captures);
        }
        Ok(router)
    }

    fn push(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// The index of the method for `verb` and `path`, with its path parameters.
    pub(crate) fn resolve(
        &self,
        verb: &str,
        path: &str,
    ) -> Option<(usize, BTreeMap<String, String>)> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.strip_prefix('/').unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let index = self.walk(0, &segments, verb)?;
        let params = self.captures[index]
            .iter()
            .filter_map(|(pos, name, verb)| {
                let segment = segments.get(*pos)?;
                let value = segment.get(..segment.len().checked_sub(*verb)?)?;
                Some((name.clone(), percent_decode(value)))
            })
            .collect();
        Some((index, params))
    }

    // Literal children win over `{param}:verb`, which wins over `{param}`,
    // with backtracking if a branch dead-ends. Recursion depth is bounded by the trie's depth (the
    // longest template), not by the request path: a node without a matching
    // child stops the descent.
    fn walk(&self, node: usize, segments: &[&str], verb: &str) -> Option<usize> {
        let here = &self.nodes[node];
        let Some((first, rest)) = segments.split_first() else {
            return here
                .ends
                .iter()
                // Methods are case-sensitive (RFC 9110, 9.1): `get` is not GET.
                .find(|(v, _)| v == verb)
                .map(|(_, index)| *index);
        };
        if first.is_empty() {
            return None;
        }
        if let Some(found) = here
            .literals
            .get(*first)
            .and_then(|&next| self.walk(next, rest, verb))
        {
            return Some(found);
        }
        if let Some(found) = first
            .rsplit_once(':')
            .filter(|(value, _)| !value.is_empty())
            .and_then(|(_, custom)| here.verbs.get(custom))
            .and_then(|&next| self.walk(next, rest, verb))
        {
            return Some(found);
        }
        here.param.and_then(|next| self.walk(next, rest, verb))
    }
}

/// `{name}` → (`name`, None); `{name}:verb` → (`name`, Some(`verb`)); a
/// literal → None. Flat paths use no `{+name}` expansions across segments,
/// so a segment is wholly a parameter, a parameter and a custom verb, or a
/// literal (`entries:list` included).
fn template_param(segment: &str) -> Option<(&str, Option<&str>)> {
    let (name, after) = segment.strip_prefix('{')?.split_once('}')?;
    let name = name.trim_start_matches('+');
    match after {
        "" => Some((name, None)),
        _ => Some((name, Some(after.strip_prefix(':')?))),
    }
}

/// Clients percent-encode path segments; the handler wants the value. Invalid
/// escapes are kept verbatim, as lenient servers do.
fn percent_decode(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_owned();
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits always fit in a byte.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{percent_decode, template_param};

    #[test]
    fn a_template_segment_is_a_parameter_with_or_without_a_verb() {
        assert_eq!(template_param("{project}"), Some(("project", None)));
        assert_eq!(
            template_param("{projectsId}:getIamPolicy"),
            Some(("projectsId", Some("getIamPolicy")))
        );
        assert_eq!(template_param("entries:list"), None);
        assert_eq!(template_param("{a}b"), None);
    }

    #[test]
    fn decodes_escapes_and_keeps_bad_ones() {
        assert_eq!(percent_decode("my%2Dvm"), "my-vm");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }
}
