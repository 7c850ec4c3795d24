//! TLS files (RFC 7468 PEM) for every rustls endpoint of Roost: the MQTT listeners'
//! acceptor, the bridge's upstream connector, the rules' HTTPS action and the LDAP auth
//! source. One loader, so every endpoint names the file in its errors the same way; a key's
//! own error is never printed with its contents. A leaf module: it imports nothing of the crate.

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
    add_roots(&mut roots, path)?;
    Ok(roots)
}

/// Adds the CA certificates of a PEM file to `roots` (e.g. on top of the web's roots).
pub fn add_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    for c in certificates(path)? {
        roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
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
