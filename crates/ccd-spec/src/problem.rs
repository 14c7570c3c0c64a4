//! A problem found in a spec, located so a user can jump straight to it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// From 1.
    pub line: usize,
    /// From 1, in characters.
    pub column: usize,
}

/// One thing wrong with a spec: where, which field, what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    /// Dotted field path such as `spec.health.interval`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(at: Location, field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            at,
            field: field.into(),
            message: message.into(),
        }
    }

    /// `FILE:LINE:COL: field.path: message`, the form editors and CI logs link.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct InFile<'a>(&'a str, &'a Problem);
        impl fmt::Display for InFile<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", self.0, self.1)
            }
        }
        InFile(file, self)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.at.line, self.at.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one spec, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the spec, the first: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
pub struct Problems(pub Vec<Problem>);
