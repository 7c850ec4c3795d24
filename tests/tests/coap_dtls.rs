//! CoAP over DTLS 1.2 end to end with libcoap's `coap-client-openssl` and
//! `coap-client-gnutls` (Debian libcoap3-bin, installed by scripts/test): PSK and
//! certificates, a wrong key refused, plain CoAP and DTLS on the wrong ports, a stalled
//! handshake beside a working one, a reconnect from the same port, a ClientHello flood
//! answered statelessly, a 10 kB body by Block1 and Block2 over DTLS.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use roost_e2e::mqtt311::{Client311, qos};
use roost_e2e::{QUIET, TestBroker, WAIT};
use tokio::net::UdpSocket;
use tokio::process::Command;
use tokio::time::{Instant, timeout};

const PSK: &str = "[coap]\ndtls_bind = [\"127.0.0.1:0\"]\n[[coap.psk]]\nidentity = \"dev1\"\nkey = \"secret-key-1\"\nusername = \"user1\"\n";

/// Runs a libcoap client (bounded); returns (success, stdout, stderr).
async fn client(bin: &str, args: &[&str]) -> (bool, String, String) {
    let out = timeout(Duration::from_secs(30), Command::new(bin).args(args).kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{bin} finished within 30 s"))
        .unwrap_or_else(|e| panic!("{bin} runs (scripts/test installs libcoap3-bin): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "not within 15 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A minimal DTLS 1.2 ClientHello offering TLS_PSK_WITH_AES_128_CCM_8 (message_seq 0
/// without a cookie, 1 with one).
fn client_hello_with(seed: u8, cookie: &[u8]) -> Vec<u8> {
    let mut body = vec![0xFE, 0xFD];
    body.extend_from_slice(&[seed; 32]);
    body.push(0); // session id
    body.push(cookie.len() as u8);
    body.extend_from_slice(cookie);
    body.extend_from_slice(&[0, 2, 0xC0, 0xA8]);
    body.extend_from_slice(&[1, 0]); // compression: null
    body.extend_from_slice(&[0, 0]); // no extensions
    let n = body.len() as u8;
    let seq = u8::from(!cookie.is_empty());
    let mut hs = vec![1, 0, 0, n, 0, seq, 0, 0, 0, 0, 0, n];
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 0xFE, 0xFF, 0, 0, 0, 0, 0, 0, 0, seq, 0, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

fn client_hello(seed: u8) -> Vec<u8> {
    client_hello_with(seed, &[])
}

/// The cookie of a HelloVerifyRequest datagram.
fn hvr_cookie(d: &[u8]) -> Vec<u8> {
    assert_eq!((d[0], d[13]), (22, 3), "a HelloVerifyRequest");
    let n = usize::from(d[27]);
    d[28..28 + n].to_vec()
}

/// Sends a ClientHello, takes the cookie, sends it back, and goes silent: a real (not
/// spoofed) client that stalls in its handshake.
async fn stall_after_cookie(socket: &UdpSocket, to: std::net::SocketAddr, seed: u8) {
    socket.send_to(&client_hello(seed), to).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = timeout(WAIT, socket.recv_from(&mut buf)).await.expect("HelloVerifyRequest").unwrap();
    socket.send_to(&client_hello_with(seed, &hvr_cookie(&buf[..n])), to).await.unwrap();
}

#[tokio::test]
async fn coaps_psk_with_openssl_and_gnutls_and_a_wrong_key_refused() {
    let broker = TestBroker::start_with(PSK).await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("sec/#", qos(0)).await;
    let url = |p: &str| format!("coaps://{}/{p}", broker.coaps_addr());
    for bin in ["coap-client-openssl", "coap-client-gnutls"] {
        let (ok, _, err) =
            client(bin, &["-m", "put", "-e", bin, "-u", "dev1", "-k", "secret-key-1", &url("ps/sec/psk")]).await;
        assert!(ok, "{bin}: {err}");
        let p = mqtt.expect_publish(WAIT).await;
        assert_eq!((p.topic.as_str(), &p.payload[..]), ("sec/psk", bin.as_bytes()));
    }
    let (_, out, err) = client(
        "coap-client-gnutls",
        &["-m", "put", "-e", "kept", "-u", "dev1", "-k", "secret-key-1", &url("ps/sec/r?retain=true")],
    )
    .await;
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"kept", "{out} {err}");
    let (_, out, _) =
        client("coap-client-openssl", &["-m", "get", "-u", "dev1", "-k", "secret-key-1", &url("ps/sec/r")]).await;
    assert_eq!(out.trim(), "kept");
    // A wrong key: the handshake fails, is logged and counted, nothing is published.
    let failed = broker.dtls_counters().handshakes_failed.load(Relaxed);
    client("coap-client-openssl", &["-m", "put", "-e", "bad", "-u", "dev1", "-k", "wrong", &url("ps/sec/psk")]).await;
    eventually("wrong PSK counted", || broker.dtls_counters().handshakes_failed.load(Relaxed) > failed).await;
    mqtt.assert_no_publish(QUIET).await;
}

#[tokio::test]
async fn coaps_certificates_with_openssl_and_gnutls() {
    let dir = tempfile::tempdir().unwrap();
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let device = rcgen::generate_simple_self_signed(vec!["device-1".to_string()]).unwrap();
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(path("srv.crt"), server.cert.pem()).unwrap();
    std::fs::write(path("srv.key"), server.signing_key.serialize_pem()).unwrap();
    std::fs::write(path("dev.crt"), device.cert.pem()).unwrap();
    std::fs::write(path("dev.key"), device.signing_key.serialize_pem()).unwrap();
    let config = format!(
        "[coap]\ndtls_bind = [\"127.0.0.1:0\"]\ndtls_cert_file = {:?}\ndtls_key_file = {:?}\n",
        path("srv.crt"),
        path("srv.key")
    );
    let broker = TestBroker::start_with(&config).await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("sec/#", qos(0)).await;
    let url = format!("coaps://{}/ps/sec/cert", broker.coaps_addr());
    for bin in ["coap-client-openssl", "coap-client-gnutls"] {
        let (ok, _, err) =
            client(bin, &["-m", "put", "-e", bin, "-c", &path("dev.crt"), "-j", &path("dev.key"), &url]).await;
        assert!(ok, "{bin}: {err}");
        let p = mqtt.expect_publish(WAIT).await;
        assert_eq!(&p.payload[..], bin.as_bytes());
    }
    assert_eq!(broker.dtls_counters().handshakes_ok.load(Relaxed), 2);

    // With a CA file, client certificates are required and verified, and the subject CN
    // is the username that auth and ACL see (%u).
    let named = |cn: &str| {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(path(&format!("{cn}.crt")), cert.pem()).unwrap();
        std::fs::write(path(&format!("{cn}.key")), key.serialize_pem()).unwrap();
    };
    named("meter-7");
    named("stranger");
    let config = format!(
        "{config}dtls_ca_file = {:?}\n[acl]\nno_match = \"deny\"\n\
         [[acl.rule]]\npermission = \"allow\"\naction = \"publish\"\ntopics = [\"sec/%u/#\"]\n\
         [[acl.rule]]\npermission = \"allow\"\naction = \"subscribe\"\ntopics = [\"#\"]\n",
        path("meter-7.crt")
    );
    let broker = TestBroker::start_with(&config).await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("sec/#", qos(0)).await;
    let url = |t: &str| format!("coaps://{}/ps/{t}", broker.coaps_addr());
    let cert = ["-c", &path("meter-7.crt"), "-j", &path("meter-7.key")].map(String::from);
    let with = |args: &[&str]| [args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), cert.to_vec()].concat();
    for bin in ["coap-client-openssl", "coap-client-gnutls"] {
        let (ok, _, err) = client(
            bin,
            &with(&["-m", "put", "-e", bin, &url("sec/meter-7/v")]).iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
        assert!(ok, "{bin}: {err}");
        assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], bin.as_bytes());
        let (_, out, err) = client(
            bin,
            &with(&["-m", "put", "-e", "x", &url("sec/other/v")]).iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
        assert!(format!("{out}{err}").contains("4.03"), "{bin}: another user's topic refused: {out} {err}");
    }
    mqtt.assert_no_publish(QUIET).await;
    // A certificate the CA did not sign is refused.
    let failed = broker.dtls_counters().handshakes_failed.load(Relaxed);
    client(
        "coap-client-openssl",
        &["-m", "put", "-e", "x", "-c", &path("stranger.crt"), "-j", &path("stranger.key"), &url("sec/stranger/v")],
    )
    .await;
    eventually("untrusted certificate counted", || broker.dtls_counters().handshakes_failed.load(Relaxed) > failed)
        .await;
    mqtt.assert_no_publish(QUIET).await;
}

#[tokio::test]
async fn coaps_wrong_ports_fail_cleanly() {
    let broker = TestBroker::start_with(PSK).await;
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Plain CoAP to the DTLS port: no answer, dropped and counted.
    raw.send_to(&[0x40, 0x01, 0x12, 0x34, 0xB2, b'p', b's'], broker.coaps_addr()).await.unwrap();
    eventually("plain CoAP on the DTLS port dropped", || broker.dtls_counters().dropped.load(Relaxed) == 1).await;
    // DTLS to the plain port: not CoAP, dropped and counted as malformed.
    raw.send_to(&client_hello(1), broker.coap_addr()).await.unwrap();
    eventually("DTLS on the CoAP port dropped", || broker.coap_counters().malformed.load(Relaxed) == 1).await;
    let mut buf = [0u8; 512];
    assert!(timeout(QUIET, raw.recv_from(&mut buf)).await.is_err(), "no answer to either");
}

#[tokio::test]
async fn coaps_a_stalled_handshake_does_not_delay_another_and_a_reconnect_gets_a_new_session() {
    let config = PSK.replace("[[coap.psk]]", "dtls_handshake_timeout = \"60s\"\n[[coap.psk]]");
    let broker = TestBroker::start_with(&config).await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("sec/#", qos(0)).await;
    // A client that returns its cookie and then goes silent: a handshake in progress.
    let staller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stall_after_cookie(&staller, broker.coaps_addr(), 7).await;
    eventually("the stalled handshake is a peer", || broker.dtls_counters().peers.load(Relaxed) == 1).await;
    // Meanwhile another device completes its handshake at once.
    let url = format!("coaps://{}/ps/sec/x", broker.coaps_addr());
    let start = Instant::now();
    let (ok, _, err) =
        client("coap-client-openssl", &["-m", "put", "-e", "1", "-u", "dev1", "-k", "secret-key-1", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"1", "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "not delayed by the stalled handshake");
    assert_eq!(broker.dtls_counters().handshakes_ok.load(Relaxed), 1);
    // A device that closes and comes back from the same address and port gets a new
    // session (twice from one local port).
    let port = 20_000 + u16::from(rand::random::<u8>()) * 100 + u16::from(rand::random::<u8>() % 100);
    for i in 0..2 {
        let (ok, _, err) = client(
            "coap-client-gnutls",
            &["-p", &port.to_string(), "-m", "put", "-e", "again", "-u", "dev1", "-k", "secret-key-1", &url],
        )
        .await;
        assert!(ok, "attempt {i} from port {port}: {err}");
        assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"again", "attempt {i}: {err}");
    }
    assert_eq!(broker.dtls_counters().handshakes_ok.load(Relaxed), 3);
}

#[tokio::test]
async fn coaps_client_hello_flood_is_answered_statelessly_and_stalled_handshakes_are_bounded() {
    let config = PSK.replace("[[coap.psk]]", "dtls_max_handshakes = 16\ndtls_handshake_timeout = \"2s\"\n[[coap.psk]]");
    let broker = TestBroker::start_with(&config).await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("sec/#", qos(0)).await;
    let c = broker.dtls_counters();
    // 2,000 spoofed-looking ClientHellos (200 source ports, 10 randoms each, 10 in flight
    // per port so loopback's buffers drop none): each gets a HelloVerifyRequest and leaves
    // no peer behind.
    let mut sockets = Vec::new();
    let mut buf = [0u8; 1500];
    for i in 0..200u16 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for k in 0..10u8 {
            s.send_to(&client_hello(i as u8 ^ k), broker.coaps_addr()).await.unwrap();
        }
        for _ in 0..10 {
            let (n, _) = timeout(WAIT, s.recv_from(&mut buf)).await.expect("a HelloVerifyRequest").unwrap();
            hvr_cookie(&buf[..n]);
        }
        sockets.push(s);
    }
    assert_eq!(c.hello_verify_sent.load(Relaxed), 2_000);
    assert_eq!(c.peers.load(Relaxed), 0, "no state for ClientHellos without a cookie");
    // Forged cookies are dropped and counted; still no state.
    for (i, s) in sockets.iter().take(50).enumerate() {
        s.send_to(&client_hello_with(i as u8, &[7; 20]), broker.coaps_addr()).await.unwrap();
    }
    eventually("forged cookies counted", || c.bad_cookies.load(Relaxed) == 50).await;
    assert_eq!(c.peers.load(Relaxed), 0);
    // 20 real clients that return their cookie and stall: max_handshakes (16) of them hold a
    // handshake, the rest are refused.
    for (i, s) in sockets.iter().take(20).enumerate() {
        stall_after_cookie(s, broker.coaps_addr(), 100 + i as u8).await;
    }
    eventually("stalled handshakes bounded", || c.peers.load(Relaxed) + c.refused.load(Relaxed) == 20).await;
    assert_eq!((c.peers.load(Relaxed), c.refused.load(Relaxed)), (16, 4));
    // The stalled handshakes time out and are forgotten; then a real device gets in.
    eventually("stalled peers forgotten", || c.peers.load(Relaxed) == 0).await;
    assert_eq!(c.handshakes_timed_out.load(Relaxed), 16);
    let url = format!("coaps://{}/ps/sec/after", broker.coaps_addr());
    let (ok, _, err) =
        client("coap-client-openssl", &["-m", "put", "-e", "1", "-u", "dev1", "-k", "secret-key-1", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(&mqtt.expect_publish(WAIT).await.payload[..], b"1", "{err}");
}

#[tokio::test]
async fn coaps_10k_body_goes_in_by_block1_and_out_by_block2() {
    let broker = TestBroker::start_with(PSK).await;
    let mut mqtt = Client311::connect(broker.addr(), "watcher").await;
    mqtt.subscribe("big/#", qos(0)).await;
    let body: String = (0..10_240).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap();
    for bin in ["coap-client-openssl", "coap-client-gnutls"] {
        let topic = format!("big/{bin}");
        let url = format!("coaps://{}/ps/{topic}?retain=true", broker.coaps_addr());
        let psk = ["-u", "dev1", "-k", "secret-key-1"];
        let (ok, _, err) = client(bin, &[&["-m", "put", "-b", "1024", "-f", file, &url][..], &psk].concat()).await;
        assert!(ok, "{bin}: {err}");
        let p = mqtt.expect_publish(WAIT).await;
        assert_eq!((p.topic.as_str(), p.payload.len()), (topic.as_str(), 10_240));
        assert_eq!(&p.payload[..], body.as_bytes());
        mqtt.assert_no_publish(QUIET).await; // Block1: one publish, not ten
        let url = format!("coaps://{}/ps/{topic}", broker.coaps_addr());
        let (ok, out, err) = client(bin, &[&["-m", "get", "-b", "1024", &url][..], &psk].concat()).await;
        assert!(ok, "{bin}: {err}");
        let out = out.strip_suffix('\n').unwrap_or(&out);
        assert!(out == body, "{bin}: Block2 body differs: {} bytes back, stderr: {err}", out.len());
    }
}
