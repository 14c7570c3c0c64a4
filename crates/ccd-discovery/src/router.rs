//! Path resolution: a segment trie built once, so matching a request costs one
//! hash lookup per path segment instead of a scan over every method's template.

use std::collections::{BTreeMap, HashMap};

use crate::model::{LoadError, Method};

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<String, usize>,
    /// The child reached by any non-empty segment (`{param}`).
    param: Option<usize>,
    /// Methods whose template ends here: (verb, method index).
    ends: Vec<(String, usize)>,
}

#[derive(Debug)]
pub(crate) struct Router {
    nodes: Vec<Node>,
    /// Per method: (segment position, parameter name) of each `{param}`.
    captures: Vec<Vec<(usize, String)>>,
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
                    Some(name) => {
                        captures.push((pos, name.to_owned()));
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
            .filter_map(|(pos, name)| Some((name.clone(), percent_decode(segments.get(*pos)?))))
            .collect();
        Some((index, params))
    }

    // Literal children win over `{param}`, with backtracking if the literal
    // branch dead-ends. Recursion depth is bounded by the trie's depth (the
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
        here.param.and_then(|next| self.walk(next, rest, verb))
    }
}

/// `{name}` → `name`. Compute v1 uses no `{+name}` reserved expansions or
/// `:verb` suffixes, so a segment is either wholly a parameter or a literal.
fn template_param(segment: &str) -> Option<&str> {
    segment
        .strip_prefix('{')?
        .strip_suffix('}')
        .map(|n| n.trim_start_matches('+'))
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
    use super::percent_decode;

    #[test]
    fn decodes_escapes_and_keeps_bad_ones() {
        assert_eq!(percent_decode("my%2Dvm"), "my-vm");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }
}
