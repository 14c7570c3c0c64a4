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
    /// Serving, but not as the spec asks: instances unhealthy, a rollout
    /// past its deadline or rolled back, or the cloud drifted.
    Degraded,
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

/// A revision that was Ready: its version, template and spec file hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastGood {
    pub version: String,
    pub template: String,
    pub spec: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub app: String,
    /// The spec file's content hash this status answers.
    pub observed_spec: String,
    pub phase: Phase,
    /// The version the spec asks for, and its template.
    pub target: Option<(String, String)>,
    /// The last revision that was Ready: what a failed rollout goes back to.
    pub last_good: Option<LastGood>,
    /// The target's rollout failed its deadline and the group went back to
    /// `last_good`; it stays there until the spec changes.
    pub rolled_back: bool,
    /// Versions the instances run now.
    pub serving: Vec<String>,
    pub conditions: Vec<Condition>,
    pub instances: Vec<InstanceView>,
    pub endpoints: Vec<String>,
    /// Where the app's group is: its zone, or for a regional group its
    /// region; read back when the spec can no longer say (it was deleted,
    /// broken or moved the group).
    pub zone: Option<String>,
    pub region: Option<String>,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
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
        if let Some(good) = &self.last_good {
            let _ = writeln!(
                y,
                "lastGood:\n  version: {}\n  template: {}\n  spec: {}",
                q(&good.version),
                q(&good.template),
                q(&good.spec)
            );
        }
        if self.rolled_back {
            let _ = writeln!(y, "rolledBack: true");
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
        } else if let Some(region) = &self.region {
            let _ = writeln!(y, "region: {}", q(region));
        }
        y
    }
}

/// What an earlier status object recorded that the controller needs back:
/// where the group is, what was last good, whether the target was rolled back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub observed_spec: Option<String>,
    pub phase: Option<String>,
    pub target_template: Option<String>,
    pub last_good: Option<LastGood>,
    pub rolled_back: bool,
    pub zone: Option<String>,
    pub region: Option<String>,
}

impl Recorded {
    /// Where the group was: `Some(Some(zone))` zonal, `Some(None)` regional,
    /// `None` unknown.
    pub fn group_location(&self) -> Option<Option<String>> {
        match (&self.zone, &self.region) {
            (Some(zone), _) => Some(Some(zone.clone())),
            (None, Some(_)) => Some(None),
            (None, None) => None,
        }
    }

    /// Reads the lines ccd wrote; anything unreadable is simply not recorded.
    pub fn parse(yaml: &[u8]) -> Recorded {
        let Ok(text) = std::str::from_utf8(yaml) else {
            return Recorded::default();
        };
        let mut out = Recorded::default();
        let mut section = "";
        let mut good = (None, None, None);
        for line in text.lines() {
            if !line.starts_with(' ') {
                section = line.split(':').next().unwrap_or_default();
            }
            let (key, value) = match line.trim_start().split_once(": ") {
                Some((k, v)) => (k, unquote(v)),
                None => continue,
            };
            match (section, key, line.starts_with(' ')) {
                ("observedSpec", _, false) => out.observed_spec = value,
                ("phase", _, false) => out.phase = value,
                ("rolledBack", _, false) => out.rolled_back = value.as_deref() == Some("true"),
                ("zone", _, false) => out.zone = value.filter(|z| is_name(z)),
                ("region", _, false) => out.region = value.filter(|r| is_name(r)),
                ("revision", "template", true) => out.target_template = value,
                ("lastGood", "version", true) => good.0 = value,
                ("lastGood", "template", true) => good.1 = value,
                ("lastGood", "spec", true) => good.2 = value,
                _ => {}
            }
        }
        if let (Some(version), Some(template), Some(spec)) = good {
            out.last_good = Some(LastGood {
                version,
                template,
                spec,
            });
        }
        out
    }
}

/// A double-quoted scalar as [`q`] writes it (only the escapes names use).
fn unquote(v: &str) -> Option<String> {
    let v = v.trim();
    let inner = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v);
    (!inner.is_empty()).then(|| inner.replace("\\\"", "\"").replace("\\\\", "\\"))
}

fn is_name(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
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

    fn good() -> LastGood {
        LastGood {
            version: "1.2.0".into(),
            template: "hello-1a2b".into(),
            spec: "sha256:ab".into(),
        }
    }

    #[test]
    fn renders_stable_yaml() {
        let s = Status {
            app: "hello".into(),
            observed_spec: "sha256:ab".into(),
            phase: Phase::Stalled,
            target: None,
            last_good: Some(good()),
            rolled_back: false,
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
            region: None,
        };
        let y = s.to_yaml();
        assert_eq!(y, s.clone().to_yaml(), "no churn");
        assert!(y.contains("phase: Stalled\n"));
        assert!(
            y.contains(r#"message: "specs/hello.yaml:7:9: spec.port: \"x\"""#),
            "{y}"
        );
        assert!(y.contains("instances: []\n"));
        let r = Recorded::parse(y.as_bytes());
        assert_eq!(r.zone.as_deref(), Some("europe-west1-b"));
        assert_eq!(r.phase.as_deref(), Some("Stalled"));
        assert_eq!(r.observed_spec.as_deref(), Some("sha256:ab"));
        assert_eq!(r.last_good, Some(good()));
        assert!(!r.rolled_back);
        assert_eq!(r.target_template, None);
    }

    #[test]
    fn reads_back_a_rolled_back_target() {
        let s = Status {
            app: "hello".into(),
            observed_spec: "sha256:cd".into(),
            phase: Phase::Degraded,
            target: Some(("2.0.0".into(), "hello-9f9f".into())),
            last_good: Some(good()),
            rolled_back: true,
            serving: vec!["1.2.0".into()],
            conditions: vec![],
            instances: vec![],
            endpoints: vec![],
            zone: None,
            region: Some("europe-west1".into()),
        };
        let r = Recorded::parse(s.to_yaml().as_bytes());
        assert_eq!(r.group_location(), Some(None), "regional");
        assert_eq!(r.target_template.as_deref(), Some("hello-9f9f"));
        assert_eq!(r.last_good, Some(good()));
        assert!(r.rolled_back);
        assert_eq!(r.zone, None);
        assert_eq!(Recorded::parse(b"\xff not yaml"), Recorded::default());
    }
}
