//! TLS for HTTPS frontends: certificates chosen by SNI, replaceable while serving.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::LbError;

/// A certificate chain and its private key, PEM-encoded (GCE's `sslCertificates`).
#[derive(Clone, PartialEq, Eq)]
pub struct CertificatePem {
    /// The leaf certificate first, then intermediates.
    pub cert_chain_pem: String,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: String,
}

impl fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificatePem")
            .field("cert_chain_pem", &self.cert_chain_pem)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

/// A self-signed certificate valid for `domains` (the local cloud's "managed certificates").
pub fn self_signed_certificate(domains: &[String]) -> Result<CertificatePem, LbError> {
    let certified = rcgen::generate_simple_self_signed(domains.to_vec())?;
    Ok(CertificatePem {
        cert_chain_pem: certified.cert.pem(),
        private_key_pem: certified.signing_key.serialize_pem(),
    })
}

/// The crypto provider of every TLS frontend: *ring*, chosen explicitly so that the build
/// never depends on which provider features other crates enable.
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server configuration for a frontend: ALPN `h2` then `http/1.1`, certificates from `store`.
pub(crate) fn server_config(
    store: Arc<CertificateStore>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of one frontend; resolves each handshake by SNI.
#[derive(Debug)]
pub(crate) struct CertificateStore {
    current: ArcSwap<Vec<ServedCertificate>>,
}

#[derive(Debug)]
struct ServedCertificate {
    /// Lowercase DNS names from the leaf's subject alternative names; may start with `*.`.
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

impl CertificateStore {
    pub(crate) fn new(certificates: &[CertificatePem]) -> Result<Self, LbError> {
        Ok(Self {
            current: ArcSwap::from_pointee(parse_all(certificates)?),
        })
    }

    /// Serves `certificates` to handshakes from now on; established connections keep theirs.
    pub(crate) fn replace(&self, certificates: &[CertificatePem]) -> Result<(), LbError> {
        self.current.store(Arc::new(parse_all(certificates)?));
        Ok(())
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.current.load();
        let by_name = client_hello.server_name().and_then(|server_name| {
            certificates
                .iter()
                .find(|served| served.names.iter().any(|name| matches(name, server_name)))
        });
        // Like GCE: with no SNI match, the first certificate is served.
        by_name
            .or_else(|| certificates.first())
            .map(|served| Arc::clone(&served.key))
    }
}

/// Whether certificate name `name` (lowercase, maybe `*.suffix`) covers `server_name`.
fn matches(name: &str, server_name: &str) -> bool {
    match name.strip_prefix("*.") {
        // A wildcard covers exactly one leftmost label.
        Some(suffix) => server_name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => name.eq_ignore_ascii_case(server_name),
    }
}

/// Checks that a certificate chain and key load together, and returns the
/// DNS names the leaf certificate covers.
pub fn certificate_names(pem: &CertificatePem) -> Result<Vec<String>, LbError> {
    parse(pem, &crypto_provider())
        .map(|served| served.names)
        .map_err(|reason| LbError::InvalidCertificate { index: 0, reason })
}

fn parse_all(certificates: &[CertificatePem]) -> Result<Vec<ServedCertificate>, LbError> {
    if certificates.is_empty() {
        return Err(LbError::InvalidCertificate {
            index: 0,
            reason: "an HTTPS frontend needs at least one certificate".to_owned(),
        });
    }
    let provider = crypto_provider();
    certificates
        .iter()
        .enumerate()
        .map(|(index, pem)| {
            parse(pem, &provider).map_err(|reason| LbError::InvalidCertificate { index, reason })
        })
        .collect()
}

fn parse(pem: &CertificatePem, provider: &CryptoProvider) -> Result<ServedCertificate, String> {
    let chain = CertificateDer::pem_slice_iter(pem.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("certificate chain: {error}"))?;
    let Some(leaf) = chain.first() else {
        return Err("no certificate in the chain PEM".to_owned());
    };
    let names = webpki::EndEntityCert::try_from(leaf)
        .map_err(|error| format!("leaf certificate: {error}"))?
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(pem.private_key_pem.as_bytes())
        .map_err(|error| format!("private key: {error}"))?;
    let key = CertifiedKey::from_der(chain, key, provider)
        .map_err(|error| format!("certificate and key: {error}"))?;
    Ok(ServedCertificate {
        names,
        key: Arc::new(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_names_cover_one_label() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "A.EXAMPLE.com"));
        assert!(!matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("app.example.com", "APP.example.com"));
        assert!(!matches("app.example.com", "api.example.com"));
    }

    #[test]
    fn parses_self_signed_certificates_and_their_names() {
        let pem =
            self_signed_certificate(&["a.example.com".into(), "*.b.example.com".into()]).unwrap();
        let store = CertificateStore::new(&[pem]).unwrap();
        let current = store.current.load();
        assert_eq!(current[0].names, ["a.example.com", "*.b.example.com"]);
    }

    #[test]
    fn rejects_mismatched_key_and_garbage() {
        let a = self_signed_certificate(&["a.example.com".into()]).unwrap();
        let b = self_signed_certificate(&["b.example.com".into()]).unwrap();
        let mismatched = CertificatePem {
            cert_chain_pem: a.cert_chain_pem.clone(),
            private_key_pem: b.private_key_pem,
        };
        assert!(CertificateStore::new(&[a.clone(), mismatched]).is_err());
        let garbage = CertificatePem {
            cert_chain_pem: "not a pem".into(),
            private_key_pem: a.private_key_pem,
        };
        assert!(CertificateStore::new(&[garbage]).is_err());
        assert!(CertificateStore::new(&[]).is_err());
    }
}
