//! How ccd marks what it owns. Resources with labels get `ccd-managed` and
//! `ccd-app`; the many Compute resources without labels (templates, groups,
//! health checks, backend services, URL maps, proxies, certificates,
//! firewalls) carry the same words in their description:
//! `ccd-managed=true ccd-app=web`.

use std::collections::{BTreeMap, HashMap};

use crate::model::{APP_LABEL, MANAGED_LABEL};

/// The description marker, with extra `key=value` words (values without spaces).
pub(crate) fn description(app: &str, extra: &[(&str, &str)]) -> String {
    let mut out = format!("{MANAGED_LABEL}=true {APP_LABEL}={app}");
    for (k, v) in extra {
        let v: String = v
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        out.push_str(&format!(" {k}={v}"));
    }
    out
}

/// The value of `key` in a description marker.
pub(crate) fn word<'a>(description: Option<&'a str>, key: &str) -> Option<&'a str> {
    description?
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Whether a description marks the resource as ccd's and `app`'s.
pub(crate) fn owned_by(description: Option<&str>, app: &str) -> bool {
    word(description, MANAGED_LABEL) == Some("true") && word(description, APP_LABEL) == Some(app)
}

/// The labels of a resource of `app`: the app's own first, ccd's on top.
pub(crate) fn labels(app: &str, extra: &BTreeMap<String, String>) -> HashMap<String, String> {
    let mut out: HashMap<String, String> =
        extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.insert(MANAGED_LABEL.to_owned(), "true".to_owned());
    out.insert(APP_LABEL.to_owned(), app.to_owned());
    out
}

/// The last segment of a resource URL: its name.
pub(crate) fn name_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap_or(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let d = description("web", &[("ccd-revision", "1.2 beta")]);
        assert_eq!(d, "ccd-managed=true ccd-app=web ccd-revision=1.2_beta");
        assert!(owned_by(Some(&d), "web"));
        assert!(!owned_by(Some(&d), "we"));
        assert!(!owned_by(Some("ccd-app=web"), "web"));
        assert!(!owned_by(None, "web"));
        assert_eq!(word(Some(&d), "ccd-revision"), Some("1.2_beta"));
    }
}
