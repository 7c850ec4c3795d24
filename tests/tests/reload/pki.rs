//! Two CAs and a server certificate (localhost, 127.0.0.1) signed by either, written where
//! the gateway's config points; clients trust both CAs and tell the two apart by the
//! certificate the server presents.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

pub struct Pki {
    dir: tempfile::TempDir,
    pub ca_a: Ca,
    pub ca_b: Ca,
}

fn ca(cn: &str) -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, issuer: rcgen::Issuer::new(params, key) }
}

impl Pki {
    pub fn new() -> Pki {
        Pki { dir: tempfile::tempdir().unwrap(), ca_a: ca("reload CA A"), ca_b: ca("reload CA B") }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `{name}.pem` and `{name}.key`: a server certificate signed by `ca`. The key
    /// goes first so the gateway never pairs a new certificate with the old key.
    pub fn server(&self, name: &str, ca: &Ca) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        std::fs::write(self.dir().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        std::fs::write(self.dir().join(format!("{name}.pem")), cert.pem()).unwrap();
    }

    /// The DER bytes of `{name}.pem`.
    pub fn der(&self, name: &str) -> Vec<u8> {
        let pem = std::fs::read(self.dir().join(format!("{name}.pem"))).unwrap();
        CertificateDer::from_pem_slice(&pem).unwrap().to_vec()
    }

    /// A client root store trusting both CAs.
    pub fn roots(&self) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in [&self.ca_a, &self.ca_b] {
            roots.add(ca.cert.der().clone()).unwrap();
        }
        Arc::new(roots)
    }
}
