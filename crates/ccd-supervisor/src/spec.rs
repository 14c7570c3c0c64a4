use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// What to run under one name, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Unique name within a supervisor: 1 to 128 of `[A-Za-z0-9._-]`, not
    /// starting with a dot (it names the pid file).
    pub name: String,
    /// Program to execute; a bare name is looked up in `PATH`.
    pub command: String,
    /// Arguments, after Kubernetes-style `$(VAR)` expansion against `env`.
    pub args: Vec<String>,
    /// The child's whole environment, apart from `PATH` and `HOME` (see
    /// [`Supervisor::start`](crate::Supervisor::start)).
    pub env: BTreeMap<String, String>,
    /// Working directory; the supervisor's own when `None`.
    pub working_dir: Option<PathBuf>,
    /// Directory that receives `stdout.log` and `stderr.log`.
    pub log_dir: PathBuf,
    /// How long a stop waits after SIGTERM before it sends SIGKILL.
    pub stop_grace: Duration,
}

pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return invalid("must be 1 to 128 characters long");
    }
    if name.starts_with('.') {
        return invalid("must not start with a dot");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Expands `$(VAR)` references in `arg` the way Kubernetes expands a
/// container's `args`: a defined `VAR` is replaced by its value, `$$` yields a
/// literal `$` (so `$$(VAR)` yields `$(VAR)`), and anything else, including
/// `$(UNKNOWN)` and an unclosed `$(`, is kept as written.
pub(crate) fn expand_arg(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            out.push('$');
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(close) => {
                    let var = &reference[..close];
                    match env.get(var) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(var);
                            out.push(')');
                        }
                    }
                    rest = &reference[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = reference;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn expand(arg: &str) -> String {
        let env = BTreeMap::from([
            ("PORT".to_owned(), "8080".to_owned()),
            ("HOST".to_owned(), "127.0.0.1".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        expand_arg(arg, &env)
    }

    #[test]
    fn replaces_known_variables() {
        assert_eq!(expand("$(PORT)"), "8080");
        assert_eq!(
            expand("--listen=$(HOST):$(PORT)/x"),
            "--listen=127.0.0.1:8080/x"
        );
        assert_eq!(expand("a$(EMPTY)b"), "ab");
    }

    #[test]
    fn keeps_unknown_and_malformed_references() {
        assert_eq!(expand("$(NOPE)"), "$(NOPE)");
        assert_eq!(expand("$(PORT"), "$(PORT");
        assert_eq!(expand("$PORT"), "$PORT");
        assert_eq!(expand("cost: 5$"), "cost: 5$");
        assert_eq!(expand("é$(PORT)ü"), "é8080ü");
    }

    #[test]
    fn double_dollar_escapes() {
        assert_eq!(expand("$$(PORT)"), "$(PORT)");
        assert_eq!(expand("$$$(PORT)"), "$8080");
        assert_eq!(expand("$$"), "$");
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("web-1.v2_a").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(".hidden").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"x".repeat(129)).is_err());
    }
}
