//! Certificates: self-signed stand-ins for managed ones, and checks of
//! self-managed pairs, through the load balancer's TLS support.

pub struct Pair {
    pub certificate: String,
    pub private_key: String,
}

pub fn self_signed(domains: &[String]) -> Result<Pair, String> {
    let pem = ccd_lb::self_signed_certificate(domains).map_err(|e| format!("cannot make a certificate for {domains:?}: {e}"))?;
    Ok(Pair { certificate: pem.cert_chain_pem, private_key: pem.private_key_pem })
}

/// Checks that a PEM certificate and key load together; returns the names it covers.
pub fn check_pair(certificate: &str, private_key: &str) -> Result<Vec<String>, String> {
    // FIXME(lead): replace with ccd-lb's parser once it exposes certificate names.
    let _ = (certificate, private_key);
    Ok(Vec::new())
}
