//! The ccd app spec, v1: what a user writes to deploy one app.
//!
//! [`parse`] reads a YAML spec and either returns the [`App`] with every
//! default filled in, or every [`Problem`] found, each located by line and
//! column with the field path and a fix. It never panics, whatever the bytes.

mod decode;
mod decode_app;
mod decode_policy;
mod decode_services;
pub mod document;
mod model;
mod names;
mod problem;
mod schema;
mod values;
mod yaml;

pub use decode::MAX_PROBLEMS;
pub use model::*;
pub use names::{MAX_APP_NAME, app_name};
pub use problem::{Location, Problem, Problems};
pub use schema::app_schema_json;
pub use values::{Cidr, Duration, FixedOrPercent};

/// Parses and validates a spec. At most [`MAX_PROBLEMS`] problems are listed,
/// the first in file order, then one that counts the rest.
pub fn parse(text: &str) -> Result<App, Problems> {
    let (mut problems, more) = match yaml::parse(text) {
        Err(p) => (vec![p], None),
        Ok(root) => {
            let mut cx = decode::Ctx::default();
            match decode_app::app(&mut cx, &root) {
                Some(app) if !cx.has_problems() => return Ok(app),
                _ => cx.into_problems(),
            }
        }
    };
    let end = End::of(text);
    for p in &mut problems {
        p.at = end.within(p.at);
    }
    problems.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.field.cmp(&b.field)));
    problems.dedup();
    problems.extend(more.map(|mut p| {
        p.at = end.within(p.at);
        p
    }));
    Err(Problems(problems))
}

/// Where the text ends, measured once (not once per problem: that was
/// quadratic for a file of many problems).
struct End {
    lines: usize,
    last_line_chars: usize,
}

impl End {
    fn of(text: &str) -> End {
        End {
            lines: text.split('\n').count(),
            last_line_chars: text.rsplit('\n').next().unwrap_or("").chars().count(),
        }
    }

    /// The parser may point just past the end of the input (an unclosed
    /// bracket); editors want a place inside the file, so such a place moves
    /// to the end.
    fn within(&self, at: Location) -> Location {
        if at.line <= self.lines {
            return at;
        }
        Location {
            line: self.lines,
            column: self.last_line_chars + 1,
        }
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

/// Parses one app's spec file as the controller and `ccd sync` judge it: [`parse_bytes`], and
/// its `metadata.name` must be `name`, the app the file's name defines. Problems come as lines
/// located in `path` (`PATH:LINE:COL: field: what is wrong and how to fix it`).
pub fn parse_file(name: &str, path: &str, bytes: &[u8]) -> Result<App, Vec<String>> {
    match parse_bytes(bytes) {
        Ok(app) if app.metadata.name != name => Err(vec![format!(
            "{path}:1:1: metadata.name: {:?} does not match the file name; name the file {}.yaml or the app {name:?}",
            app.metadata.name, app.metadata.name
        )]),
        Ok(app) => Ok(app),
        Err(problems) => Err(problems
            .0
            .iter()
            .map(|p| p.display_in(path).to_string())
            .collect()),
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
