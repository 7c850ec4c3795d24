//! A real OpenLDAP server for a test: Debian's `slapd`, a `slapd.conf` and an LDIF loaded
//! with `slapadd` into an MDB database in a temporary directory, served on free loopback
//! ports as `ldap://` and `ldaps://` (a test CA's certificate for 127.0.0.1).
//!
//! The directory: `dc=roost,dc=test` with `ou=users`, the search account
//! `cn=reader,dc=roost,dc=test` (password `reader`), and the entries the test passes in.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub const BASE: &str = "dc=roost,dc=test";

pub struct Slapd {
    pub port: u16,
    pub tls_port: u16,
    /// The CA that signed the server certificate (PEM), for `ca_file`.
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn certs(dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "roost test LDAP CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server cert");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
    dir.join("ca.pem")
}

impl Slapd {
    /// `users`: LDIF entries under `ou=users` (each ends with a blank line).
    pub async fn start(users: &str) -> Slapd {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ca_file = certs(d);
        std::fs::create_dir(d.join("db")).expect("db dir");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             pidfile {d}/slapd.pid\nTLSCertificateFile {d}/cert.pem\nTLSCertificateKeyFile {d}/key.pem\n\
             database mdb\nsuffix \"{BASE}\"\nrootdn \"cn=admin,{BASE}\"\nrootpw admin\ndirectory {d}/db\n\
             maxsize 10485760\naccess to attrs=userPassword by anonymous auth by * none\naccess to * by * read\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("write slapd.conf");
        let ldif = format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: roost\no: roost\n\n\
             dn: ou=users,{BASE}\nobjectClass: organizationalUnit\nou: users\n\n\
             dn: cn=reader,{BASE}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: reader\n\n{users}"
        );
        std::fs::write(d.join("data.ldif"), ldif).expect("write ldif");
        let out = Command::new(crate::mariadb::find_bin("slapadd", "slapd"))
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .await
            .expect("run slapadd");
        assert!(out.status.success(), "slapadd failed: {}", String::from_utf8_lossy(&out.stderr));
        let (port, tls_port) = (crate::postgres::free_port(), crate::postgres::free_port());
        let mut s = Slapd { port, tls_port, ca_file, dir, child: None };
        s.up().await;
        s
    }

    pub async fn up(&mut self) {
        let d = self.dir.path();
        let urls = format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.port, self.tls_port);
        let child = Command::new(crate::mariadb::find_bin("slapd", "slapd"))
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.tls_port)).await.is_err()
            || tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err()
        {
            assert!(tokio::time::Instant::now() < deadline, "slapd did not listen within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Slapd {
    /// Stops the server (SIGKILL) and waits for it.
    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}
