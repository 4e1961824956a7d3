//! The trust of the node's own HTTPS clients (the operator CLI, a mirror following its
//! primary) when the server's certificate is not one the public roots vouch for. It imports
//! nothing of the node, so any client may use it.

/// TLS settings that trust only the certificates in `pem` (a private CA's, or a node's own
/// self-signed one) instead of the public roots: how an operator reaches a node whose
/// certificate no public CA signed.
pub fn trusting(pem: &[u8]) -> Result<ureq::tls::TlsConfig, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| e.to_string())? {
            certs.push(cert.to_owned());
        }
    }
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    let roots = ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs));
    Ok(ureq::tls::TlsConfig::builder().root_certs(roots).build())
}
