//! Live reload (issue 24, acceptance 1) of a `roost` process under traffic from TLS clients
//! and DTLS devices: the server certificate and a PSK are replaced, an ACL rule and a bridge
//! (to Debian's mosquitto) added, then SIGHUP. New handshakes get the new certificate and
//! PSK, the clients connected before stay connected (counted before and after, and each
//! answers a PINGREQ after the reload), the ACL rule applies to the next publish, the bridge
//! connects. A broken certificate on the next SIGHUP is refused with its error, and nothing
//! changes; `roost ctl reload` refuses a broken file the same way and exits 1.
//!
//! The fleet is 40 TLS clients and 20 DTLS devices; `ROOST_RELOAD_FULL=1` runs the issue's
//! 1,000 and 500.
#![allow(clippy::unwrap_used)]

mod pki;
mod process;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use process::{Roost, TlsClient};
use roost_e2e::mosquitto::Mosquitto;
use roost_e2e::mqtt5::Client5;
use roost_e2e::{QUIET, WAIT};
use rumqttc::v5::mqttbytes::QoS;

fn fleet() -> (usize, usize) {
    if std::env::var_os("ROOST_RELOAD_FULL").is_some() { (1000, 500) } else { (40, 20) }
}

/// The config: TLS with `server.pem`, DTLS with one PSK per fleet device plus `rotated`,
/// anonymous MQTT; `extra` is appended (the reload adds an ACL rule and a bridge).
fn config(dir: &std::path::Path, dtls_devices: usize, rotated_key: &str, extra: &str) -> String {
    let mut psks = String::new();
    for n in 0..dtls_devices {
        psks.push_str(&format!("[[coap.psk]]\nidentity = \"dev-{n}\"\nkey = \"fleet-key\"\n"));
    }
    format!(
        r#"
[node]
sys_interval = "0s"
[storage]
backend = "memory"
data_dir = "{data}"
[http]
bind = ["127.0.0.1:0"]
api_keys = ["reload-test-key-0001"]
[limits]
max_connections = 100000
[mqtt]
bind = ["127.0.0.1:0"]
tls_bind = ["127.0.0.1:0"]
[mqtt.tls]
cert_file = "{dir}/server.pem"
key_file = "{dir}/server.key"
[mqttsn]
bind = []
[lwm2m]
bind = []
[lorawan]
bind = []
[coap]
bind = []
dtls_bind = ["127.0.0.1:0"]
dtls_max_peers = 10000
dtls_max_handshakes = 10000
{psks}[[coap.psk]]
identity = "rotated"
key = "{rotated_key}"
{extra}"#,
        data = dir.join("data").display(),
        dir = dir.display(),
    )
}

const ACL: &str = "\n[acl]\nno_match = \"allow\"\n[[acl.rule]]\npermission = \"deny\"\naction = \"publish\"\ntopics = [\"secret/#\"]\n";

fn bridge(upstream: SocketAddr) -> String {
    format!(
        "\n[[bridge]]\nname = \"up\"\naddress = \"{upstream}\"\nreconnect_min = \"100ms\"\nreconnect_max = \"500ms\"\n\
         [[bridge.topic]]\npattern = \"telemetry/#\"\ndirection = \"out\"\nqos = 1\nremote_prefix = \"edge/\"\n"
    )
}

/// A DTLS fleet from roost-coap's simulator: `devices` sessions with `identity`, each PUT
/// every 200 ms for `duration`.
fn dtls_fleet(
    target: SocketAddr,
    devices: usize,
    identity: &str,
    key: &str,
    duration: Duration,
) -> (Arc<roost_coap::sim::SimStats>, tokio::task::JoinHandle<()>) {
    let cfg = roost_coap::sim::SimConfig {
        gateway: target,
        devices,
        prefix: format!("dtls-{}", identity.replace("{n}", "n")),
        period: Duration::from_millis(200),
        duration,
        connect_rate: 200,
        observe: false,
        payload_size: 16,
        source_ip: None,
        dtls_psk: Some(roost_coap::sim::SimPsk { identity: identity.into(), key: key.as_bytes().to_vec() }),
    };
    let stats = Arc::new(roost_coap::sim::SimStats::default());
    let task = tokio::spawn(roost_coap::sim::run_with(cfg, stats.clone()));
    (stats, task)
}

/// Waits (bounded) until `ok`.
async fn until(what: &str, limit: Duration, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until the gateway counts `n` MQTT connections (closed ones are counted
/// out asynchronously).
async fn until_connected(roost: &Roost, n: f64) {
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while roost.connected_mqtt().await != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "MQTT connections: {} (want {n})",
            roost.connected_mqtt().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_certificate_psk_acl_and_bridge_under_traffic_and_refuses_a_broken_file() {
    let (tls_n, dtls_n) = fleet();
    let pki = pki::Pki::new();
    let dir = pki.dir();
    pki.server("server", &pki.ca_a);
    let cfg_path = dir.join("roost.toml");
    std::fs::write(&cfg_path, config(dir, dtls_n, "old-key", "")).unwrap();
    let roost = Roost::spawn(&cfg_path).await;
    let upstream = Mosquitto::start().await;

    // The fleet: TLS clients publishing, DTLS devices PUTting, both until told to stop.
    let old_cert = pki.der("server");
    let mut clients = Vec::new();
    for i in 0..tls_n {
        let c = TlsClient::connect(roost.tls, &pki.roots(), &format!("tls-{i}")).await;
        assert_eq!(c.server_cert, old_cert, "the first handshakes get the first certificate");
        clients.push(c);
    }
    let fleet_time = Duration::from_secs(if tls_n > 100 { 90 } else { 25 });
    let (dtls, dtls_task) = dtls_fleet(roost.dtls, dtls_n, "dev-{n}", "fleet-key", fleet_time);
    until("the DTLS fleet's handshakes", Duration::from_secs(60), || {
        dtls.handshakes_ok.load(Relaxed) + dtls.handshakes_failed.load(Relaxed) == dtls_n as u64
    })
    .await;
    assert_eq!(dtls.handshakes_failed.load(Relaxed), 0);
    let traffic: Vec<_> = clients.into_iter().map(TlsClient::publish_until_stopped).collect();
    let before = roost.connected_mqtt().await;
    assert_eq!(before, tls_n as f64, "TLS clients connected before the reload");
    let handshakes_before = roost.dtls_handshakes_ok().await;
    let mut sub = Client5::connect(roost.mqtt, "watcher").await;
    sub.subscribe("secret/#", QoS::AtLeastOnce).await;
    sub.subscribe("public/#", QoS::AtLeastOnce).await;
    let mut publisher = Client5::connect(roost.mqtt, "acl-probe").await;
    publisher.publish("secret/a", QoS::AtLeastOnce, false, "before").await;
    assert_eq!(sub.expect_publish(WAIT).await.topic, "secret/a");

    // Rotate: a new certificate from another CA, a new key for `rotated`, an ACL rule, a
    // bridge; then SIGHUP.
    pki.server("server", &pki.ca_b);
    let new_cert = pki.der("server");
    let extra = format!("{ACL}{}", bridge(upstream.addr()));
    std::fs::write(&cfg_path, config(dir, dtls_n, "new-key", &extra)).unwrap();
    let mark = roost.log_len();
    roost.sighup().await;
    let line = roost.wait_log(mark, "configuration reload").await;
    assert!(line.contains("configuration reloaded"), "{line}");
    for part in ["mqtt.tls", "coap.dtls", "acl", "bridge"] {
        assert!(line.contains(part), "reload report names {part}: {line}");
    }

    // New handshakes: the new certificate, the new PSK; the old PSK is refused.
    let fresh = TlsClient::connect(roost.tls, &pki.roots(), "after-reload").await;
    assert_eq!(fresh.server_cert, new_cert, "a handshake after the reload gets the new certificate");
    let (rot, rot_task) = dtls_fleet(roost.dtls, 1, "rotated", "new-key", Duration::from_millis(400));
    rot_task.await.unwrap();
    assert_eq!((rot.handshakes_ok.load(Relaxed), rot.acknowledged.load(Relaxed) > 0), (1, true));
    let (old, old_task) = dtls_fleet(roost.dtls, 1, "rotated", "old-key", Duration::from_millis(100));
    old_task.await.unwrap();
    assert_eq!(old.handshakes_ok.load(Relaxed), 0, "the replaced PSK is refused");

    // The ACL rule applies to the next publish: it is dropped, the one after it arrives.
    // QoS 0: an MQTT 5 client's denied QoS 1 publish would get PUBACK 0x87 instead.
    publisher.publish("secret/a", QoS::AtMostOnce, false, "after").await;
    publisher.publish("public/a", QoS::AtLeastOnce, false, "after").await;
    assert_eq!(sub.expect_publish(WAIT).await.topic, "public/a", "secret/a is denied after the reload");

    // The bridge connects: a local message reaches the upstream broker.
    let mut remote = Client5::connect(upstream.addr(), "remote-watcher").await;
    remote.subscribe("edge/#", QoS::AtLeastOnce).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        publisher.publish("telemetry/x", QoS::AtLeastOnce, false, "via bridge").await;
        if let Some(p) = remote.recv_publish(Duration::from_millis(500)).await {
            assert_eq!(p.topic, "edge/telemetry/x");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the added bridge did not connect");
    }

    // The connections from before are all still there, and each answers a PINGREQ (then
    // closes).
    let after = roost.connected_mqtt().await;
    assert_eq!(after, before + 4.0, "before + the probe, the watcher, the fresh client, the bridge's local end");
    let mut alive = 0;
    for t in traffic {
        alive += usize::from(t.stop_and_ping().await);
    }
    assert_eq!(alive, tls_n, "TLS clients alive after the reload");
    dtls_task.await.unwrap();
    assert_eq!(dtls.handshakes_ok.load(Relaxed), dtls_n as u64, "no DTLS device had to handshake again");
    let (sent, acked) = (dtls.published.load(Relaxed), dtls.acknowledged.load(Relaxed));
    assert!(sent > 0 && acked == sent, "DTLS PUTs across the reload: {acked} of {sent} acknowledged");
    assert_eq!(roost.dtls_handshakes_ok().await, handshakes_before + 1.0, "only the rotated device's handshake");

    // A broken certificate on the next SIGHUP: refused with its error, nothing changes.
    std::fs::write(dir.join("server.pem"), "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let mark = roost.log_len();
    roost.sighup().await;
    let line = roost.wait_log(mark, "configuration reload").await;
    assert!(line.contains("refused") && line.contains("mqtt.tls"), "{line}");
    let again = TlsClient::connect(roost.tls, &pki.roots(), "after-refusal").await;
    assert_eq!(again.server_cert, new_cert, "the running certificate stays");
    publisher.publish("secret/a", QoS::AtMostOnce, false, "still denied").await;
    publisher.publish("public/b", QoS::AtLeastOnce, false, "x").await;
    assert_eq!(sub.expect_publish(WAIT).await.topic, "public/b");
    sub.assert_no_publish(QUIET).await;

    // `roost ctl reload` with a file that does not parse: the error, exit status 1.
    std::fs::write(&cfg_path, "[mqtt\nbind = 1").unwrap();
    let (ok, out) = roost.ctl_reload().await;
    assert!(!ok && out.contains("BAD_CONFIG") && out.contains("roost.toml"), "{out}");
    // The fleet closed after its pings: the probe, the watcher, two fresh clients, the bridge.
    until_connected(&roost, 5.0).await;
}
