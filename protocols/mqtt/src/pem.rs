//! TLS files (RFC 7468 PEM) for every rustls endpoint of the MQTT side: the listeners'
//! acceptor ([`crate::transport`]) and the bridge's upstream connector (`roost-bridge`, which
//! depends on this crate). Errors name the file; a key's own error is never printed with its
//! contents.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM file, in order; a file with none is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?.collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    // The key's own error would not name the file; never print the key.
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A root store holding the CA certificates of a PEM file.
pub fn root_store(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certificates(path)? {
        roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(certificates(&missing).unwrap_err().starts_with(&format!("{}: ", missing.display())));
        assert!(private_key(&missing).unwrap_err().starts_with(&format!("{}: ", missing.display())));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        assert_eq!(certificates(&empty).unwrap_err(), format!("{}: no PEM certificate in it", empty.display()));
        assert!(root_store(&empty).is_err());
    }
}
