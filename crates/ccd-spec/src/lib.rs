//! The ccd app spec, v1: what a user writes to deploy one app.
//!
//! [`parse`] reads a YAML spec and either returns the [`App`] with every
//! default filled in, or every [`Problem`] found, each located by line and
//! column with the field path and a fix. It never panics, whatever the bytes.

mod decode;
mod decode_app;
mod decode_policy;
pub mod document;
mod model;
mod names;
mod problem;
mod schema;
mod values;
mod yaml;

pub use model::*;
pub use names::MAX_APP_NAME;
pub use problem::{Location, Problem, Problems};
pub use schema::app_schema_json;
pub use values::{Cidr, Duration, FixedOrPercent};

/// Parses and validates a spec.
pub fn parse(text: &str) -> Result<App, Problems> {
    let mut problems = match yaml::parse(text) {
        Err(p) => vec![p],
        Ok(root) => {
            let mut cx = decode::Ctx::default();
            match decode_app::app(&mut cx, &root) {
                Some(app) if cx.problems.is_empty() => return Ok(app),
                _ => cx.problems,
            }
        }
    };
    for p in &mut problems {
        p.at = within(text, p.at);
    }
    problems.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.field.cmp(&b.field)));
    problems.dedup();
    Err(Problems(problems))
}

/// The parser may point just past the end of the input (an unclosed bracket);
/// editors want a place inside the file, so such a place moves to the end.
fn within(text: &str, at: Location) -> Location {
    let lines = text.split('\n').count();
    if at.line <= lines {
        return at;
    }
    let last = text.rsplit('\n').next().unwrap_or("");
    Location {
        line: lines,
        column: last.chars().count() + 1,
    }
}

/// Parses a spec from raw bytes, reporting text that is not UTF-8 where it starts.
pub fn parse_bytes(bytes: &[u8]) -> Result<App, Problems> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text.strip_prefix('\u{feff}').unwrap_or(text)),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let column = 1 + String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count();
            Err(Problems(vec![Problem::new(
                Location { line, column },
                "",
                "the file is not UTF-8 text; save it as UTF-8",
            )]))
        }
    }
}

impl AppSpec {
    /// The single probe the health definition names; TCP on the app's port when none is given.
    pub fn probe(&self) -> ProbeKind<'_> {
        let h = &self.health;
        if let Some(http) = &h.http {
            ProbeKind::Http {
                path: &http.path,
                port: http.port.unwrap_or(self.port),
            }
        } else if let Some(exec) = &h.exec {
            ProbeKind::Exec {
                command: &exec.command,
            }
        } else {
            ProbeKind::Tcp {
                port: h.tcp.as_ref().and_then(|t| t.port).unwrap_or(self.port),
            }
        }
    }
}
