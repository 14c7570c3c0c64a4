//! The status object written beside each spec (`status/<app>.yaml`): what
//! the controller saw and did, in words a user acts on. It holds nothing
//! that changes when nothing happened (no timestamps), so it is rewritten
//! only when something did.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The new revision is being rolled out.
    Progressing,
    /// Every instance runs the spec's revision and is healthy.
    Ready,
    /// The spec cannot be deployed; the last good revision keeps serving.
    Stalled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    pub name: String,
    pub version: String,
    pub status: String,
    pub health: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub app: String,
    /// The spec file's content hash this status answers.
    pub observed_spec: String,
    pub phase: Phase,
    /// The version the spec asks for, and its template.
    pub target: Option<(String, String)>,
    /// Versions the instances run now.
    pub serving: Vec<String>,
    pub conditions: Vec<Condition>,
    pub instances: Vec<InstanceView>,
    pub endpoints: Vec<String>,
    /// Where the app's group is; read back when the spec can no longer say
    /// (it was deleted or broken).
    pub zone: Option<String>,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Stalled => "Stalled",
        }
    }
}

/// A YAML double-quoted scalar (JSON string escaping is valid YAML).
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Status {
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(
            y,
            "# Written by ccd for specs/{}.yaml; edits are overwritten.",
            self.app
        );
        let _ = writeln!(y, "app: {}", q(&self.app));
        let _ = writeln!(y, "observedSpec: {}", q(&self.observed_spec));
        let _ = writeln!(y, "phase: {}", self.phase.as_str());
        if let Some((version, template)) = &self.target {
            let _ = writeln!(
                y,
                "revision:\n  version: {}\n  template: {}",
                q(version),
                q(template)
            );
        }
        list(&mut y, "serving", self.serving.iter().map(|v| q(v)));
        let _ = writeln!(y, "conditions:");
        for c in &self.conditions {
            let status = if c.status { "True" } else { "False" };
            let _ = writeln!(
                y,
                "  - type: {}\n    status: \"{status}\"\n    reason: {}\n    message: {}",
                c.kind,
                c.reason,
                q(&c.message)
            );
        }
        if self.instances.is_empty() {
            let _ = writeln!(y, "instances: []");
        } else {
            let _ = writeln!(y, "instances:");
            for i in &self.instances {
                let _ = writeln!(
                    y,
                    "  - name: {}\n    version: {}\n    status: {}\n    health: {}",
                    q(&i.name),
                    q(&i.version),
                    i.status,
                    i.health
                );
            }
        }
        list(&mut y, "endpoints", self.endpoints.iter().map(|e| q(e)));
        if let Some(zone) = &self.zone {
            let _ = writeln!(y, "zone: {}", q(zone));
        }
        y
    }
}

/// The `zone` a status object recorded.
pub fn recorded_zone(yaml: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(yaml).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix("zone: "))?;
    let zone = value.trim().trim_matches('"');
    let ok = !zone.is_empty()
        && zone
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then(|| zone.to_owned())
}

fn list(y: &mut String, key: &str, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        let _ = writeln!(y, "{key}: []");
    } else {
        let _ = writeln!(y, "{key}:");
        for i in items {
            let _ = writeln!(y, "  - {i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_stable_yaml() {
        let s = Status {
            app: "hello".into(),
            observed_spec: "sha256:ab".into(),
            phase: Phase::Stalled,
            target: None,
            serving: vec!["1.2.0".into()],
            conditions: vec![Condition {
                kind: "Stalled",
                status: true,
                reason: "InvalidSpec".into(),
                message: "specs/hello.yaml:7:9: spec.port: \"x\"".into(),
            }],
            instances: vec![],
            endpoints: vec![],
            zone: Some("europe-west1-b".into()),
        };
        let y = s.to_yaml();
        assert_eq!(y, s.clone().to_yaml(), "no churn");
        assert!(y.contains("phase: Stalled\n"));
        assert!(
            y.contains(r#"message: "specs/hello.yaml:7:9: spec.port: \"x\"""#),
            "{y}"
        );
        assert!(y.contains("instances: []\n"));
        assert_eq!(
            recorded_zone(y.as_bytes()).as_deref(),
            Some("europe-west1-b")
        );
    }
}
