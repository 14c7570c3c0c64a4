//! Truthful HTTPS: an externally exposed app is Ready only once its
//! Google-managed certificate is ACTIVE. Until then (Google issues it only
//! after each domain's DNS names the load balancer's address) the status
//! says which DNS records to create.

use std::net::IpAddr;

use ccd_cloud::model::{CertificateState, LbKind};

use super::{Decision, Event, Input};
use crate::report::condition;
use crate::status::{CertificateStatus, Phase};

const REASON: &str = "CertificateProvisioning";

/// Adds the certificate this pass saw (`fresh`, with the balancer's
/// address) to the status, or keeps the one recorded when the pass did not
/// look; holds back Ready while it is not ACTIVE.
pub fn gate_https(
    input: &Input<'_>,
    decision: &mut Decision,
    fresh: Option<(CertificateState, Option<IpAddr>)>,
) {
    let external = input
        .plan
        .load_balancer
        .as_ref()
        .is_some_and(|lb| matches!(lb.kind, LbKind::External { .. }));
    let s = &mut decision.status;
    if !external {
        s.certificate = None;
        return;
    }
    let address = fresh.as_ref().and_then(|(_, a)| *a);
    if let Some((cert, _)) = fresh {
        s.certificate = Some(CertificateStatus {
            name: cert.name,
            status: cert.status,
            domains: cert.domains,
        });
    }
    let Some(cert) = s.certificate.clone() else {
        return;
    };
    if cert.status == "ACTIVE" || s.phase != Phase::Ready {
        return;
    }
    let waiting: Vec<String> = cert
        .domains
        .iter()
        .filter(|(_, status)| status.as_str() != "ACTIVE")
        .map(|(domain, status)| format!("{domain} ({status})"))
        .collect();
    let at = address.map_or_else(
        || "the load balancer's address".to_owned(),
        |a| a.to_string(),
    );
    let message = format!(
        "HTTPS waits for certificate {} ({}): create a DNS A record naming {at} for {}; \
         Google issues the certificate once DNS points there, usually within an hour",
        cert.name,
        cert.status,
        if waiting.is_empty() {
            "each domain".to_owned()
        } else {
            waiting.join(", ")
        }
    );
    s.phase = Phase::Progressing;
    for c in &mut s.conditions {
        match c.kind.as_str() {
            "Ready" | "Progressing" => {
                *c = condition(&c.kind, c.kind == "Progressing", REASON, message.clone());
            }
            _ => {}
        }
    }
    decision.events.retain(|e| e.reason != "Ready");
    // Not at rest: the next pass looks at the certificate again.
    decision.settled = false;
    let said = input
        .recorded
        .conditions
        .iter()
        .any(|c| c.reason == REASON && c.message == message);
    if !said {
        decision.events.push(Event {
            warning: false,
            reason: REASON,
            message,
        });
    }
}
