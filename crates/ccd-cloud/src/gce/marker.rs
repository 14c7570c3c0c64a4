//! How ccd marks what it owns. Resources with labels get `ccd-managed` and
//! `ccd-app`; the many Compute resources without labels (templates, groups,
//! health checks, backend services, URL maps, proxies, certificates,
//! firewalls) carry the same words in their description:
//! `ccd-managed=true ccd-app=web`.

use std::collections::{BTreeMap, HashMap};

use google_cloud_compute_v1::model as m;

use super::call::{Failure, Kind, Outcome};
use crate::model::{APP_LABEL, MANAGED_LABEL};

/// A Compute resource that carries ccd's marker in its description.
pub(crate) trait Described {
    fn description(&self) -> Option<&str>;
}

macro_rules! described {
    ($($t:ty),* $(,)?) => {
        $(impl Described for $t {
            fn description(&self) -> Option<&str> {
                self.description.as_deref()
            }
        })*
    };
}

described!(
    m::InstanceTemplate,
    m::InstanceGroupManager,
    m::HealthCheck,
    m::BackendService,
    m::UrlMap,
    m::SslCertificate,
    m::TargetHttpsProxy,
    m::TargetHttpProxy,
    m::Address,
    m::ForwardingRule,
    m::Firewall,
);

/// Refuses a resource found under one of `app`'s names that ccd did not
/// make for `app`: changing it would take over someone else's resource,
/// and deleting the spec later would destroy it.
pub(crate) fn check_owned(resource: &str, app: &str, found: &impl Described) -> Outcome<()> {
    let description = found.description();
    if owned_by(description, app) {
        return Ok(());
    }
    let whose = match (
        word(description, MANAGED_LABEL),
        word(description, APP_LABEL),
    ) {
        (Some("true"), Some(other)) => format!("belongs to ccd app {other}"),
        _ => "was not made by ccd".to_owned(),
    };
    Err(Failure::new(
        Kind::NotOwned,
        resource,
        format!(
            "exists but {whose}, so ccd leaves it alone: rename app {app} (metadata.name), \
             or rename or delete that resource if it is no longer used"
        ),
    ))
}

/// The word naming the region of a global resource made for one region's apps.
pub(crate) const REGION_WORD: &str = "ccd-region";

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
