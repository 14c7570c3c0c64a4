//! Certificates: self-signed stand-ins for managed ones, and checks of
//! self-managed pairs, through the load balancer's TLS support.

pub struct Pair {
    pub certificate: String,
    pub private_key: String,
}

pub fn self_signed(domains: &[String]) -> Result<Pair, String> {
    let pem = ccd_lb::self_signed_certificate(domains)
        .map_err(|e| format!("cannot make a certificate for {domains:?}: {e}"))?;
    Ok(Pair {
        certificate: pem.cert_chain_pem,
        private_key: pem.private_key_pem,
    })
}

/// Checks that a PEM certificate and key load together; returns the names it covers.
pub fn check_pair(certificate: &str, private_key: &str) -> Result<Vec<String>, String> {
    let pem = ccd_lb::CertificatePem {
        cert_chain_pem: certificate.to_owned(),
        private_key_pem: private_key.to_owned(),
    };
    ccd_lb::certificate_names(&pem)
        .map_err(|e| format!("Invalid value for field 'resource.certificate': {e}"))
}
