//! URL maps that redirect (`defaultUrlRedirect`): their forwarding rules answer every request
//! with the redirect, as the port-80 half of Google's HTTP-to-HTTPS redirect does.

use std::net::IpAddr;
use std::time::Duration;

use ccd_lb::redirect::{RedirectCode, RedirectFrontend, UrlRedirect};
use ccd_lb::{CertificatePem, Frontend, LbError, UrlMap};
use serde_json::Value;

/// What a forwarding rule's listener runs: the proxy of a URL map's services, or a redirect.
#[derive(Debug)]
pub(super) enum Served {
    Proxy(Frontend),
    Redirect(RedirectFrontend),
}

impl Served {
    pub(super) fn local_addr(&self) -> std::net::SocketAddr {
        match self {
            Served::Proxy(f) => f.local_addr(),
            Served::Redirect(f) => f.local_addr(),
        }
    }

    pub(super) fn set_certificates(&self, certificates: &[CertificatePem]) -> Result<(), LbError> {
        match self {
            Served::Proxy(f) => f.set_certificates(certificates),
            Served::Redirect(f) => f.set_certificates(certificates),
        }
    }

    pub(super) async fn shutdown(self, deadline: Duration) {
        match self {
            Served::Proxy(f) => f.shutdown(deadline).await,
            Served::Redirect(f) => f.shutdown(deadline).await,
        }
    }
}

/// What a URL map asks of its listener.
#[derive(Debug)]
pub(super) enum Serve {
    Routes(UrlMap),
    Redirect(UrlRedirect),
}

/// The map's `defaultUrlRedirect`, if it has one. A redirect beside host rules would need
/// routing to pick between redirect and proxy per request, which the local cloud does not do.
pub(super) fn default_redirect(map: &Value) -> Result<Option<UrlRedirect>, String> {
    let Some(action) = map.get("defaultUrlRedirect") else {
        return Ok(None);
    };
    let has_rules = |f: &str| map[f].as_array().is_some_and(|a| !a.is_empty());
    if has_rules("hostRules") || has_rules("pathMatchers") {
        return Err(
            "the local cloud serves defaultUrlRedirect only in a URL map without hostRules or pathMatchers"
                .to_owned(),
        );
    }
    Ok(Some(url_redirect(action)))
}

/// Compute's `HttpRedirectAction` (checked on insert) as ccd-lb's.
fn url_redirect(action: &Value) -> UrlRedirect {
    let text = |f: &str| action[f].as_str().map(str::to_owned);
    UrlRedirect {
        https_redirect: action["httpsRedirect"].as_bool().unwrap_or(false),
        host_redirect: text("hostRedirect"),
        path_redirect: text("pathRedirect"),
        strip_query: action["stripQuery"].as_bool().unwrap_or(false),
        code: match action["redirectResponseCode"].as_str() {
            Some("FOUND") => RedirectCode::Found,
            Some("SEE_OTHER") => RedirectCode::SeeOther,
            Some("TEMPORARY_REDIRECT") => RedirectCode::TemporaryRedirect,
            Some("PERMANENT_REDIRECT") => RedirectCode::PermanentRedirect,
            _ => RedirectCode::MovedPermanently,
        },
        https_port: None,
    }
}

/// Where the HTTPS listener of address `ip` really listens, among `listeners` (requested
/// address, real address, TLS): the one asked for port 443 first, else the lowest port asked.
/// A redirect to `https://host/` must reach it although the local cloud may have moved it.
pub(super) fn https_port_of(
    ip: IpAddr,
    listeners: impl Iterator<Item = (std::net::SocketAddr, std::net::SocketAddr, bool)>,
) -> Option<u16> {
    listeners
        .filter(|&(requested, _, tls)| tls && requested.ip() == ip)
        .min_by_key(|(requested, _, _)| (requested.port() != 443, requested.port()))
        .map(|(_, listening, _)| listening.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compute_redirects_become_ccd_lb_redirects() {
        let map = json!({"defaultUrlRedirect": {"httpsRedirect": true,
            "redirectResponseCode": "PERMANENT_REDIRECT", "stripQuery": true}});
        let redirect = default_redirect(&map).unwrap().unwrap();
        assert!(redirect.https_redirect && redirect.strip_query);
        assert_eq!(redirect.code, RedirectCode::PermanentRedirect);
        let plain = default_redirect(&json!({"defaultUrlRedirect": {"httpsRedirect": true}}));
        assert_eq!(plain.unwrap().unwrap().code, RedirectCode::MovedPermanently);
        assert_eq!(default_redirect(&json!({"defaultService": "x"})), Ok(None));
        let mixed = json!({"defaultUrlRedirect": {"httpsRedirect": true},
            "hostRules": [{"hosts": ["a.com"], "pathMatcher": "m"}]});
        assert!(default_redirect(&mixed).is_err());
    }

    #[test]
    fn the_https_port_is_the_443_listener_of_the_same_address() {
        let a = |s: &str| s.parse().unwrap();
        let listeners = [
            (a("127.1.0.9:443"), a("127.1.0.9:8443"), true),
            (a("127.1.0.9:80"), a("127.1.0.9:8080"), false),
            (a("127.1.0.9:4443"), a("127.1.0.9:4443"), true),
            (a("127.1.0.8:443"), a("127.1.0.8:443"), true),
        ];
        let ip = "127.1.0.9".parse().unwrap();
        assert_eq!(https_port_of(ip, listeners.into_iter()), Some(8443));
        assert_eq!(
            https_port_of(ip, listeners[1..].iter().copied()),
            Some(4443)
        );
        let other = "127.1.0.7".parse().unwrap();
        assert_eq!(https_port_of(other, listeners.into_iter()), None);
    }
}
