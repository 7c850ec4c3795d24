//! MQTT bridge against a real upstream broker (Debian's mosquitto): topic mapping both ways
//! at every QoS, store-and-forward across an outage and a Roost restart, and the queue bound.

use std::time::Duration;

use roost_e2e::mosquitto::Mosquitto;
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};

const UP: Duration = Duration::from_secs(10);

fn config(upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"{extra}
[[bridge]]
name = "up"
address = "{upstream}"
version = "5"
reconnect_min = "100ms"
reconnect_max = "500ms"
keep_alive = "5s"

[[bridge.topic]]
pattern = "sensors/#"
direction = "out"
qos = 2
remote_prefix = "edge1/"

[[bridge.topic]]
pattern = "cmd/#"
direction = "in"
qos = 2
local_prefix = "local/"
remote_prefix = "edge1/"
"#
    )
}

/// Waits (bounded) until the bridge's status satisfies `ok`.
async fn wait_status(roost: &TestBroker, ok: impl Fn(&roost_bridge::BridgeStatus) -> bool) {
    let deadline = tokio::time::Instant::now() + UP;
    loop {
        let s = roost.bridge_status("up");
        if ok(&s) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "bridge status never got there: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A persistent upstream subscriber, so nothing the bridge sends is missed across restarts.
async fn upstream_subscriber(m: &Mosquitto) -> Client5 {
    let mut c = Client5::connect_persistent(m.addr(), "cloud-app", false, 3600).await;
    c.subscribe("edge1/sensors/#", mqtt5::qos(2)).await;
    c
}

#[tokio::test]
async fn bridge_carries_messages_out_and_in_at_qos_0_1_2() {
    let upstream = Mosquitto::start().await;
    let roost =
        TestBroker::start_with(&config(upstream.addr(), "[node]\nname = \"edge\"\nsys_interval = \"1s\"\n")).await;
    roost.wait_bridge_up("up", UP).await;
    let mut cloud = upstream_subscriber(&upstream).await;
    let mut local_sub = Client5::connect(roost.addr(), "local-sub").await;
    local_sub.subscribe("local/cmd/#", mqtt5::qos(2)).await;
    let mut local_pub = Client5::connect(roost.addr(), "local-pub").await;
    let mut cloud_pub = Client5::connect(upstream.addr(), "cloud-pub").await;

    for q in 0..=2u8 {
        local_pub.publish(&format!("sensors/t{q}"), mqtt5::qos(q), false, format!("out{q}")).await;
        let p = cloud.expect_publish(WAIT).await;
        assert_eq!(
            (&p.topic[..], &p.payload[..], p.qos as u8),
            (format!("edge1/sensors/t{q}").as_bytes(), format!("out{q}").as_bytes(), q)
        );

        cloud_pub.publish(&format!("edge1/cmd/c{q}"), mqtt5::qos(q), false, format!("in{q}")).await;
        let p = local_sub.expect_publish(WAIT).await;
        assert_eq!(
            (&p.topic[..], &p.payload[..], p.qos as u8),
            (format!("local/cmd/c{q}").as_bytes(), format!("in{q}").as_bytes(), q)
        );
    }
    // Not covered by a rule: stays local.
    local_pub.publish("other/x", mqtt5::qos(1), false, "no").await;
    cloud.assert_no_publish(roost_e2e::QUIET).await;
    // Counters move when the upstream's acknowledgements arrive, which may follow delivery.
    wait_status(&roost, |s| s.forwarded_out >= 3 && s.forwarded_in >= 3).await;
    // The bridge's state is in $SYS too (retained, refreshed every sys_interval).
    let mut admin = Client5::connect(roost.addr(), "admin").await;
    admin.subscribe("$SYS/brokers/edge/bridges/up/connected", mqtt5::qos(0)).await;
    // The retained value may predate the link coming up; the next refresh says true.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let p = admin.expect_publish(Duration::from_secs(3)).await;
        if &p.payload[..] == b"true" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bridge never reported connected in $SYS");
    }
}

#[tokio::test]
async fn outage_and_roost_restart_lose_nothing_in_order() {
    let mut upstream = Mosquitto::start().await;
    let data = tempfile::tempdir().expect("temp dir");
    let storage = format!("[storage]\ndata_dir = {:?}\nsync = \"batch\"\n", data.path().display().to_string());
    let cfg = config(upstream.addr(), &storage);
    let roost = TestBroker::start_with(&cfg).await;
    roost.wait_bridge_up("up", UP).await;
    let cloud = upstream_subscriber(&upstream).await;
    cloud.disconnect().await;

    upstream.stop().await;
    wait_status(&roost, |s| !s.connected).await;
    let mut local_pub = Client5::connect(roost.addr(), "local-pub").await;
    const N: usize = 40;
    for i in 0..N {
        let q = 1 + (i % 2) as u8;
        local_pub.publish(&format!("sensors/q{q}"), mqtt5::qos(q), false, i.to_string()).await;
    }
    local_pub.disconnect().await;
    // Roost itself restarts during the outage: the queue is in the store.
    roost.stop().await;
    let roost = TestBroker::start_with(&cfg).await;

    upstream.restart().await;
    roost.wait_bridge_up("up", UP).await;
    let mut cloud = Client5::connect_persistent(upstream.addr(), "cloud-app", false, 3600).await;
    let got = cloud.collect_publishes(Duration::from_secs(1), Duration::from_secs(20)).await;
    let mut q1 = Vec::new();
    let mut q2 = Vec::new();
    for p in &got {
        let n: usize = String::from_utf8_lossy(&p.payload).parse().expect("index");
        if p.topic == "edge1/sensors/q1" { q1.push(n) } else { q2.push(n) }
    }
    let want1: Vec<usize> = (0..N).filter(|i| i % 2 == 0).collect();
    let want2: Vec<usize> = (0..N).filter(|i| i % 2 == 1).collect();
    q1.dedup(); // QoS 1 may repeat a message the link lost the PUBACK of; order must hold
    assert_eq!(q1, want1, "QoS 1 all there, in order");
    assert_eq!(q2, want2, "QoS 2 all there, in order, none twice");
    roost.stop().await;
}

#[tokio::test]
async fn queue_beyond_its_limit_drops_the_oldest_and_counts() {
    let mut upstream = Mosquitto::start().await;
    let roost = TestBroker::start_with(
        &config(upstream.addr(), "").replace("keep_alive = \"5s\"", "keep_alive = \"5s\"\nmax_queued = 10"),
    )
    .await;
    roost.wait_bridge_up("up", UP).await;
    upstream_subscriber(&upstream).await.disconnect().await;
    upstream.stop().await;
    wait_status(&roost, |s| !s.connected).await;

    let mut local_pub = Client5::connect(roost.addr(), "local-pub").await;
    for i in 0..30 {
        local_pub.publish("sensors/x", mqtt5::qos(1), false, i.to_string()).await;
    }
    let queued = roost.broker().queue_len(&"$bridge/up".into()).expect("bridge session");
    assert!(queued <= 10, "bridge queue holds {queued}, limit 10");
    assert_eq!(roost.queue_drops(), 20, "the 20 oldest were dropped and counted");

    upstream.restart().await;
    roost.wait_bridge_up("up", UP).await;
    let mut cloud = Client5::connect_persistent(upstream.addr(), "cloud-app", false, 3600).await;
    let got: Vec<usize> = cloud
        .collect_publishes(Duration::from_secs(1), Duration::from_secs(10))
        .await
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).parse().expect("index"))
        .collect();
    assert!(cloud.session_present());
    assert_eq!(got, (20..30).collect::<Vec<_>>(), "the newest 10 arrive, in order");
}

/// A CA and a server certificate for 127.0.0.1, written as PEM files into `dir`.
fn make_certs(dir: &std::path::Path, tag: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("roost test CA {tag}"));
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server cert");
    let (ca_path, cert_path, key_path) = (
        dir.join(format!("ca-{tag}.pem")),
        dir.join(format!("server-{tag}.pem")),
        dir.join(format!("server-{tag}.key")),
    );
    std::fs::write(&ca_path, ca.pem()).expect("write CA");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (ca_path, cert_path, key_path)
}

fn tls_config(upstream: std::net::SocketAddr, ca: &std::path::Path) -> String {
    config(upstream, "").replacen(
        "[[bridge.topic]]",
        &format!("[bridge.tls]\nca_file = {:?}\n\n[[bridge.topic]]", ca.display().to_string()),
        1,
    )
}

#[tokio::test]
async fn bridge_over_tls_verifies_the_upstream_against_the_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = make_certs(dir.path(), "right");
    let (wrong_ca, _, _) = make_certs(dir.path(), "wrong");
    let upstream = Mosquitto::start_with(&format!(
        "cafile {}\ncertfile {}\nkeyfile {}\n",
        ca.display(),
        cert.display(),
        key.display()
    ))
    .await;

    // The right CA: messages flow over TLS.
    let roost = TestBroker::start_with(&tls_config(upstream.addr(), &ca)).await;
    roost.wait_bridge_up("up", UP).await;
    let mut local_pub = Client5::connect(roost.addr(), "local-pub").await;
    local_pub.publish("sensors/tls", mqtt5::qos(1), false, "secure").await;
    wait_status(&roost, |s| s.forwarded_out == 1).await;
    roost.stop().await;

    // A CA the upstream's certificate does not chain to: a clear error, and retries.
    let roost = TestBroker::start_with(&tls_config(upstream.addr(), &wrong_ca)).await;
    let deadline = tokio::time::Instant::now() + UP;
    loop {
        let s = roost.bridge_status("up");
        if let Some(e) = &s.last_error
            && s.attempts >= 3
        {
            assert!(!s.connected && s.connects == 0, "{s:?}");
            assert!(e.contains("TLS handshake") && e.to_lowercase().contains("certificate"), "the error says why: {e}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no TLS error reported and retried: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    roost.stop().await;
}
