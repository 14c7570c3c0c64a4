//! One pass over every piece of a shape, in dependency order: the app's
//! service account, template,
//! health check, firewall rules, groups, load balancer, then the groups it
//! no longer sends requests to. Through the cloud itself it creates and
//! corrects; through a [read-only](Cloud::read_only) view the same pass
//! changes nothing and lists what it would have changed: the drift.

use std::collections::BTreeSet;

use ccd_cloud::model::GroupId;
use ccd_cloud::{Cloud, CloudError};

use crate::deploy::Endpoints;
use crate::shape::Shape;

/// What a pass did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The load balancer's URLs once it is complete and has them;
    /// `Some(vec![])` for an app that is not exposed; `None` while pieces
    /// are missing or it has no URL yet.
    pub endpoints: Option<Vec<String>>,
    /// A load balancer of the kind the spec no longer asks for was deleted.
    pub removed_load_balancer: bool,
    /// What differs from the shape (a read-only pass only): one line each.
    pub drift: Vec<String>,
    /// The load balancer's certificate and address, when it has one.
    pub certificate: Option<(ccd_cloud::model::CertificateState, Option<std::net::IpAddr>)>,
    /// The groups this pass created.
    pub created: Vec<GroupId>,
}

/// Runs the pass. A refused change ([`CloudError::WouldChange`], from a
/// read-only view) is recorded and the pass goes on; so is, when only
/// `looking`, a piece missing under another (a load balancer whose group was
/// deleted); any other error ends it.
pub(crate) async fn apply<C: Cloud>(
    cloud: &C,
    shape: &Shape,
    endpoints: &Endpoints,
    looking: bool,
) -> Result<Applied, CloudError> {
    let mut drift = Drift {
        lines: Vec::new(),
        looking,
    };
    let app = shape.template.app.as_str();
    // The template runs as the app's account: it exists, with its grants, first.
    if let Some(identity) = &shape.identity {
        note(cloud.apply_identity(identity).await, &mut drift)?;
    }
    note(cloud.ensure_template(&shape.template).await, &mut drift)?;
    if let Some(hc) = &shape.health_check {
        note(cloud.apply_health_check(hc).await, &mut drift)?;
    }
    // Listed first: the adapter then reads the rules it found, and inserts
    // the others straight away.
    let listed = cloud.list_firewalls(app).await?;
    for rule in &shape.firewalls {
        note(cloud.apply_firewall(rule).await, &mut drift)?;
    }
    let wanted: BTreeSet<&str> = shape.firewalls.iter().map(|f| f.name.as_str()).collect();
    for rule in listed {
        if !wanted.contains(rule.name.as_str()) {
            note(
                cloud.delete_firewall(&rule.app, &rule.name).await,
                &mut drift,
            )?;
        }
    }
    let mut created = Vec::new();
    for group in &shape.groups {
        if note(cloud.apply_group(group).await, &mut drift)? == Some(true) {
            created.push(group.id());
        }
    }
    let mut removed_load_balancer = false;
    let wanted_lb = shape.load_balancer.as_ref().map(|lb| lb.id());
    for id in cloud.load_balancers(app, app).await? {
        if wanted_lb.as_ref() != Some(&id) {
            removed_load_balancer |=
                note(cloud.delete_load_balancer(&id).await, &mut drift)?.is_some();
        }
    }
    let mut certificate = None;
    let endpoints = match &shape.load_balancer {
        None => Some(Vec::new()),
        Some(spec) => {
            let state = note(cloud.apply_load_balancer(spec).await, &mut drift)?;
            certificate = state
                .as_ref()
                .and_then(|s| Some((s.certificate.clone()?, s.address)));
            // Complete, and reachable at a URL: a frontend that listens a
            // moment after its forwarding rule exists has none yet.
            state
                .filter(|state| state.complete())
                .map(|state| endpoints(spec, &state))
                .filter(|urls| !urls.is_empty())
        }
    };
    for id in &shape.retire {
        match cloud.delete_group(id).await {
            // Still named by the load balancer (a read-only look): next time.
            Err(CloudError::InUse { .. } | CloudError::WouldChange { .. }) if looking => {}
            other => {
                note(other, &mut drift)?;
            }
        }
    }
    Ok(Applied {
        endpoints,
        removed_load_balancer,
        drift: drift.lines,
        certificate,
        created,
    })
}

struct Drift {
    lines: Vec<String>,
    looking: bool,
}

/// A refused change becomes a line of drift (and `None`); other errors stay errors.
fn note<T>(result: Result<T, CloudError>, drift: &mut Drift) -> Result<Option<T>, CloudError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e @ CloudError::WouldChange { .. }) => {
            drift.lines.push(e.to_string());
            Ok(None)
        }
        Err(e @ CloudError::NotFound { .. }) if drift.looking => {
            drift.lines.push(e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
