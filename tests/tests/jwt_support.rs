//! What the JWT tests need: keys made by the `openssl` CLI in a temp dir, tokens built by
//! hand in the RFC 7515/7519 structure and signed by `openssl dgst` (an implementation
//! other than the gateway's `ring`), JWK Sets written from those keys, and a `roost`
//! process whose log is kept so a test can read what it says of a refused token.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use roost_e2e::WAIT;
use roost_e2e::roost_bin::roost_bin;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Runs `openssl ARGS` with `input` on stdin; its stdout. Panics (naming the peer) when
/// `openssl` is missing: the test cannot run without it.
pub async fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = tokio::process::Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the openssl CLI is needed (apt-get install openssl): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(WAIT * 5, child.wait_with_output()).await.expect("openssl in time").unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// How a token is signed.
#[derive(Clone)]
pub enum Signer {
    /// RS256 or ES256 with a PEM private key file.
    Rsa(PathBuf),
    Ec(PathBuf),
    /// HS256 with these key bytes.
    Hmac(Vec<u8>),
    /// No signature at all (`alg: none`).
    Unsigned,
}

/// `header.payload.signature` with `header` and `claims` as given (JSON text).
pub async fn token(header: &str, claims: &str, signer: &Signer) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let sig = match signer {
        Signer::Rsa(key) => openssl(&["dgst", "-sha256", "-binary", "-sign", path(key)], input.as_bytes()).await,
        Signer::Ec(key) => {
            let der = openssl(&["dgst", "-sha256", "-binary", "-sign", path(key)], input.as_bytes()).await;
            ecdsa_fixed(&der)
        }
        Signer::Hmac(k) => {
            let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
            let macopt = format!("hexkey:{hex}");
            openssl(&["dgst", "-sha256", "-binary", "-mac", "HMAC", "-macopt", &macopt], input.as_bytes()).await
        }
        Signer::Unsigned => Vec::new(),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An ECDSA signature as OpenSSL writes it (DER `SEQUENCE { INTEGER r, INTEGER s }`) in the
/// JWS form: r and s as 32 bytes each (RFC 7518 §3.4).
fn ecdsa_fixed(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "DER ECDSA signature");
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02);
        let len = usize::from(der[at + 1]);
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0u8, 32 - int.len()));
        out.extend_from_slice(int);
        at += 2 + len;
    }
    out
}

/// The keys of one test, in a temp dir.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub rsa: PathBuf,
    pub rsa_pub: PathBuf,
    pub rsa2: PathBuf,
    pub ec: PathBuf,
    pub ec_pub: PathBuf,
    pub secret: Vec<u8>,
}

impl Keys {
    pub async fn generate() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        let (rsa, rsa2, ec) = (p("rsa.key"), p("rsa2.key"), p("ec.key"));
        for key in [&rsa, &rsa2] {
            openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path(key)], b"")
                .await;
        }
        openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path(&ec)], b"").await;
        let (rsa_pub, ec_pub) = (p("rsa.pub"), p("ec.pub"));
        for (key, public) in [(&rsa, &rsa_pub), (&ec, &ec_pub)] {
            openssl(&["pkey", "-in", path(key), "-pubout", "-out", path(public)], b"").await;
        }
        let secret = openssl(&["rand", "32"], b"").await;
        Keys { dir, rsa, rsa_pub, rsa2, ec, ec_pub, secret }
    }

    /// A JWK of the RSA key `private` (RFC 7518 §6.3.1: n and e).
    pub async fn rsa_jwk(&self, private: &Path, kid: &str) -> String {
        let out = openssl(&["rsa", "-in", path(private), "-noout", "-modulus"], b"").await;
        let hex = String::from_utf8(out).unwrap();
        let hex = hex.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        format!(
            r#"{{"kty":"RSA","kid":"{kid}","use":"sig","alg":"RS256","n":"{}","e":"AQAB"}}"#,
            URL_SAFE_NO_PAD.encode(n)
        )
    }

    /// The JWK of the EC key (RFC 7518 §6.2.1: the point's x and y, from the DER SPKI tail).
    pub async fn ec_jwk(&self, kid: &str) -> String {
        let der = openssl(&["pkey", "-in", path(&self.ec), "-pubout", "-outform", "DER"], b"").await;
        let point = &der[der.len() - 65..];
        assert_eq!(point[0], 4, "uncompressed point");
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..]));
        format!(r#"{{"kty":"EC","kid":"{kid}","crv":"P-256","x":"{x}","y":"{y}"}}"#)
    }

    pub fn hmac_jwk(&self, kid: &str) -> String {
        format!(r#"{{"kty":"oct","kid":"{kid}","k":"{}"}}"#, URL_SAFE_NO_PAD.encode(&self.secret))
    }
}

/// Writes a JWK Set of `jwks` to `file`: written aside and renamed, so the gateway never
/// reads half a file.
pub fn write_jwks(file: &Path, jwks: &[String]) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!(r#"{{"keys":[{}]}}"#, jwks.join(","))).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A `roost` process with its log kept.
pub struct Roost {
    _child: tokio::process::Child,
    config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
}

pub const API_KEY: &str = "jwt-test-key-0001";

fn addr_in(line: &str, key: &str) -> Option<SocketAddr> {
    let rest = line.split(key).nth(1)?;
    let end = rest.find([' ', ',', ']']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Roost {
    pub async fn spawn(config: &Path) -> Roost {
        let mut child = tokio::process::Command::new(roost_bin())
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn roost");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().push(line);
            }
        });
        let any = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut roost = Roost { _child: child, config: config.into(), log, mqtt: any, http: any };
        let started = roost.wait_log(0, "roost started").await;
        roost.mqtt = addr_in(&started, "mqtt=[").expect("mqtt address");
        roost.http = addr_in(&started, "http=[").expect("http address");
        roost
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().clone()
    }

    /// The first log line from `from` on containing `needle` (bounded wait).
    pub async fn wait_log(&self, from: usize, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT * 10;
        loop {
            if let Some(l) = self.log.lock().iter().skip(from).find(|l| l.contains(needle)) {
                return l.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no log line with {needle:?}:\n{}", self.log.lock().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_len(&self) -> usize {
        self.log.lock().len()
    }

    /// `roost ctl reload`: (exit status 0, its output).
    pub async fn ctl_reload(&self) -> (bool, String) {
        let url = format!("http://{}", self.http);
        let out = tokio::process::Command::new(roost_bin())
            .arg("--config")
            .arg(&self.config)
            .args(["ctl", "--url", &url, "--key", API_KEY, "reload"])
            .output();
        let out = tokio::time::timeout(WAIT * 5, out).await.expect("roost ctl in time").unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}
