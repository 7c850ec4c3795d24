//! MQTT over TLS, mutual TLS, WebSocket and secure WebSocket (issue 10) with real clients:
//! mosquitto_pub / mosquitto_sub (`--cafile`, `--cert`/`--key`, TLS 1.2 and 1.3) and the
//! PyPI client paho-mqtt over WebSocket (Debian's mosquitto 2.0 clients have no `ws://`).
//! Certificates are made by each test (rcgen) in a temporary directory.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use roost_e2e::TestBroker;
use roost_mqtt::transport::Kind;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::timeout;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

fn write_cert(dir: &Path, name: &str, cert: &rcgen::Certificate, key: &rcgen::KeyPair) {
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn ca(cn: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

fn leaf(
    cn: &str,
    sans: Vec<String>,
    usage: rcgen::ExtendedKeyUsagePurpose,
    expired: bool,
) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(sans).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    (params, rcgen::KeyPair::generate().unwrap())
}

/// A CA; the server's certificate (localhost, 127.0.0.1); client certificates for
/// `device-7` (good), `device-8` (expired) and `rogue` (signed by another CA).
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca_cert, issuer) = ca("roost test CA");
    std::fs::write(d.join("ca.pem"), ca_cert.pem()).unwrap();
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let (p, k) = leaf("localhost", vec!["localhost".into(), "127.0.0.1".into()], ServerAuth, false);
    write_cert(d, "server", &p.signed_by(&k, &issuer).unwrap(), &k);
    let (p, k) = leaf("device-7", vec![], ClientAuth, false);
    write_cert(d, "client", &p.signed_by(&k, &issuer).unwrap(), &k);
    let (p, k) = leaf("device-8", vec![], ClientAuth, true);
    write_cert(d, "expired", &p.signed_by(&k, &issuer).unwrap(), &k);
    let (_, rogue_issuer) = ca("rogue CA");
    let (p, k) = leaf("rogue", vec![], ClientAuth, false);
    write_cert(d, "rogue", &p.signed_by(&k, &rogue_issuer).unwrap(), &k);
    Pki { dir }
}

fn config(pki: &Pki, users: &Path, verify_peer: bool) -> String {
    format!(
        r##"
[auth]
allow_anonymous = false
chain = ["certificate", "password_file"]
password_file = {users:?}
[mqtt]
tls_bind = ["127.0.0.1:0"]
ws_bind = ["127.0.0.1:0"]
wss_bind = ["127.0.0.1:0"]
[mqtt.tls]
cert_file = {:?}
key_file = {:?}
ca_file = {:?}
verify_peer = {verify_peer}
cn_as_username = true
[acl]
[[acl.rule]]
permission = "allow"
user = "device-7"
action = "subscribe"
topics = ["private/#"]
[[acl.rule]]
permission = "deny"
action = "subscribe"
topics = ["private/#"]
"##,
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    )
}

fn users(dir: &Path) -> PathBuf {
    let f = dir.join("users");
    roost_core::auth::users::set_user(&f, "alice", b"alice-pw", None).unwrap();
    f
}

/// A running `mosquitto_sub -d -v -C 1`, subscribed (SUBACK seen) when this returns.
async fn sub(port: u16, topic: &str, tls: &[String]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "localhost",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-q",
            "1",
            "-v",
            "-d",
            "-C",
            "1",
            "-W",
            "10",
        ])
        .args(tls)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub runs (scripts/test installs mosquitto-clients)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let subscribed = timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("SUBACK") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(subscribed, Ok(true), "mosquitto_sub {tls:?} did not subscribe; exit {:?}", child.try_wait());
    (child, lines)
}

async fn publish(port: u16, topic: &str, msg: &str, tls: &[String]) -> std::process::Output {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string(), "-t", topic, "-m", msg, "-q", "1"])
        .args(tls)
        .stdin(Stdio::null())
        .output();
    timeout(Duration::from_secs(15), out).await.expect("mosquitto_pub ends").expect("mosquitto_pub runs")
}

/// The next `-v` line (`topic payload`) of a subscriber, within 10 s.
async fn next_message(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    timeout(Duration::from_secs(10), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if !l.starts_with("Client ") && !l.starts_with("Subscribed") {
                return l;
            }
        }
        panic!("subscriber ended without a message");
    })
    .await
    .expect("a message within 10 s")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn security_tls_mtls_and_refused_certificates_with_mosquitto_clients() {
    let pki = pki();
    let users = users(pki.dir.path());
    let broker = TestBroker::start_with(&config(&pki, &users, false)).await;
    let port = broker.mqtt_addr_of(Kind::Tls).port();
    let ca = pki.path("ca.pem");
    let client = args(&["--cafile", &ca, "--cert", &pki.path("client.pem"), "--key", &pki.path("client.key")]);

    // mTLS: the certificate's CN (device-7) is the username, which the ACL lets subscribe
    // to private/#; the "certificate" source lets it in without a password.
    let (mut s, mut lines) = sub(port, "private/#", &client).await;
    // TLS with --cafile only and a password, over TLS 1.2 and then 1.3.
    for (version, msg) in [("tlsv1.2", "over-1.2"), ("tlsv1.3", "over-1.3")] {
        let tls = args(&["--cafile", &ca, "--tls-version", version, "-u", "alice", "-P", "alice-pw"]);
        let out = publish(port, "private/x", msg, &tls).await;
        assert!(out.status.success(), "{version}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(next_message(&mut lines).await, format!("private/x {msg}"));
        if version == "tlsv1.2" {
            let _ = s.wait().await;
            (s, lines) = sub(port, "private/#", &client).await;
        }
    }
    drop(s);

    // The same subscription without the certificate: alice is not device-7.
    let alice = args(&["--cafile", &ca, "-u", "alice", "-P", "alice-pw"]);
    let out = Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &port.to_string(), "-t", "private/#", "-C", "1", "-W", "5"])
        .args(&alice)
        .output();
    let out = timeout(Duration::from_secs(10), out).await.unwrap().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("denied"), "alice must not subscribe to private/#: {said}");

    // Neither a certificate nor credentials: refused at CONNECT.
    let out = publish(port, "t", "m", &args(&["--cafile", &ca])).await;
    assert!(!out.status.success());
    // An expired certificate and one from another CA: refused in the TLS handshake.
    for bad in ["expired", "rogue"] {
        let tls = args(&[
            "--cafile",
            &ca,
            "--cert",
            &pki.path(&format!("{bad}.pem")),
            "--key",
            &pki.path(&format!("{bad}.key")),
        ]);
        let out = publish(port, "t", "m", &tls).await;
        assert!(!out.status.success(), "{bad} certificate accepted");
    }
    // A client that does not trust the server's CA gives up too.
    let out =
        publish(port, "t", "m", &args(&["--cafile", &pki.path("rogue.pem"), "-u", "alice", "-P", "alice-pw"])).await;
    assert!(!out.status.success());
    broker.stop().await;

    // verify_peer: a certificate is required.
    let broker = TestBroker::start_with(&config(&pki, &users, true)).await;
    let port = broker.mqtt_addr_of(Kind::Tls).port();
    let out = publish(port, "t", "m", &alice).await;
    assert!(!out.status.success(), "mTLS listener accepted a client without a certificate");
    let out = publish(port, "t", "m", &client).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    broker.stop().await;
}

async fn ws_peer(port: u16, user: &str, pass: &str, payload: &str, cafile: Option<&str>) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/ws_client.py");
    let mut cmd = Command::new("python3");
    cmd.args([script, "localhost", &port.to_string(), "/mqtt", user, pass, "ws/echo", payload]);
    if let Some(ca) = cafile {
        cmd.arg(ca);
    }
    let out = timeout(Duration::from_secs(20), cmd.output())
        .await
        .unwrap()
        .expect("python3 runs (scripts/test installs paho-mqtt)");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!stdout.is_empty(), "ws peer printed nothing: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test]
async fn security_websocket_and_secure_websocket_with_paho() {
    let pki = pki();
    let users = users(pki.dir.path());
    let broker = TestBroker::start_with(&config(&pki, &users, false)).await;
    let ws = broker.mqtt_addr_of(Kind::Ws).port();
    let wss = broker.mqtt_addr_of(Kind::Wss).port();
    assert_eq!(ws_peer(ws, "alice", "alice-pw", "over-ws", None).await, "received ws/echo over-ws");
    assert_eq!(
        ws_peer(wss, "alice", "alice-pw", "over-wss", Some(&pki.path("ca.pem"))).await,
        "received ws/echo over-wss"
    );
    // Auth applies on WebSocket as everywhere: a wrong password is refused (CONNACK 5,
    // which paho reports as its reason code 134, bad user name or password).
    assert_eq!(ws_peer(ws, "alice", "wrong", "x", None).await, "connect refused 134");
    // A TCP client sees what the WebSocket client publishes.
    let (_s, mut lines) = sub(broker.port(), "ws/#", &args(&["-u", "alice", "-P", "alice-pw"])).await;
    assert_eq!(ws_peer(ws, "alice", "alice-pw", "to-tcp", None).await, "received ws/echo to-tcp");
    assert_eq!(next_message(&mut lines).await, "ws/echo to-tcp");
    broker.stop().await;
}
