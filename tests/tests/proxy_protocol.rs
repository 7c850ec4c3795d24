//! PROXY protocol behind a real HAProxy (Debian `haproxy`, `send-proxy-v2`): the client's own
//! address reaches `$SYS` connect events, the API's client record and an ACL `ip` rule; a
//! PROXY header from an address that is not a trusted balancer is refused.
//!
//! Loopback has a whole /8: clients bind 127.0.0.2 and 127.0.0.3, HAProxy connects to the
//! gateway from 127.0.0.9 (its `source`), the only trusted balancer.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CONFIG: &str = r#"
[node]
name = "edge-1"
[mqtt]
ws_bind = ["127.0.0.1:0"]
proxy_protocol = true
proxy_trusted = ["127.0.0.9"]
[acl]
no_match = "allow"
[[acl.rule]]
permission = "allow"
ip = "127.0.0.2"
action = "subscribe"
topics = ["room/#"]
[[acl.rule]]
permission = "deny"
action = "subscribe"
topics = ["room/#"]
"#;

struct Haproxy {
    child: tokio::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// HAProxy in TCP mode on a free loopback port, in front of `backend`.
async fn haproxy(backend: SocketAddr) -> Haproxy {
    let dir = tempfile::tempdir().expect("temp dir");
    // HAProxy cannot report a port it picked: take a free one from the OS and hand it over.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
         frontend mqtt\n  bind {addr}\n  default_backend roost\n\
         backend roost\n  server roost {backend} send-proxy-v2 source 127.0.0.9\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = tokio::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy runs (scripts/test installs Debian's haproxy)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Ready when its frontend accepts (a probe connection it forwards is closed at once).
    while TcpStream::connect(addr).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "haproxy did not listen on {addr} within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Haproxy { child, addr, _dir: dir }
}

/// A TCP connection from local address `from` to `to`.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// MQTT 3.1.1 CONNECT (clean session, keep alive 60) for `id`.
fn connect_packet(id: &str) -> Vec<u8> {
    let mut v = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
    v.extend_from_slice(&(id.len() as u16).to_be_bytes());
    v.extend_from_slice(id.as_bytes());
    let mut p = vec![0x10, v.len() as u8];
    p.extend(v);
    p
}

/// Reads exactly `n` bytes (bounded); `None` if the gateway closed the connection.
async fn read_n(s: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0; n];
    match tokio::time::timeout(WAIT, s.read_exact(&mut b)).await.expect("an answer or a close within WAIT") {
        Ok(_) => Some(b),
        Err(_) => None,
    }
}

/// CONNECTs `id` over `s`; the CONNACK's return code.
async fn mqtt_connect(s: &mut TcpStream, id: &str) -> Option<u8> {
    s.write_all(&connect_packet(id)).await.ok()?;
    read_n(s, 4).await.map(|b| b[3])
}

/// SUBSCRIBEs to `topic` (QoS 0); the SUBACK's return code (0x80: refused).
async fn subscribe(s: &mut TcpStream, topic: &str) -> u8 {
    let mut v = vec![0, 1];
    v.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    v.extend_from_slice(topic.as_bytes());
    v.push(0);
    let mut p = vec![0x82, v.len() as u8];
    p.extend(v);
    s.write_all(&p).await.unwrap();
    read_n(s, 5).await.expect("a SUBACK")[4]
}

#[tokio::test]
async fn behind_haproxy_the_client_address_is_the_clients_own_and_forged_headers_are_refused() {
    let broker = TestBroker::start_with(CONFIG).await;
    let mut admin = Client5::connect(broker.addr(), "admin").await;
    admin.subscribe("$SYS/brokers/edge-1/clients/+/connected", mqtt5::qos(0)).await;
    let lb = haproxy(broker.addr()).await;

    // A client from 127.0.0.2 through HAProxy: its own address everywhere.
    let mut real = connect_from([127, 0, 0, 2], lb.addr).await;
    let local = real.local_addr().unwrap();
    assert_eq!(mqtt_connect(&mut real, "real-1").await, Some(0), "CONNACK accepted");
    let ev = loop {
        let p = admin.expect_publish(WAIT).await;
        if p.topic.ends_with(b"/real-1/connected") {
            break serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap();
        }
    };
    assert_eq!(ev["peer"], local.to_string(), "$SYS connected event: {ev}");
    let (status, client) = broker.api().get("/api/v1/clients/real-1").await;
    assert_eq!((status, client["peer"].as_str()), (200, Some(local.to_string().as_str())), "{client}");
    assert_eq!(subscribe(&mut real, "room/1").await, 0x00, "the ip rule for 127.0.0.2 allows it");

    // Another client through the same balancer, from 127.0.0.3: the ip rule does not match.
    let mut other = connect_from([127, 0, 0, 3], lb.addr).await;
    assert_eq!(mqtt_connect(&mut other, "other-1").await, Some(0));
    assert_eq!(subscribe(&mut other, "room/1").await, 0x80, "not 127.0.0.2: denied");

    // A client straight to the gateway, claiming 127.0.0.2 in a PROXY header: refused.
    for header in [
        b"PROXY TCP4 127.0.0.2 127.0.0.1 5555 1883\r\n".to_vec(),
        [&b"\r\n\r\n\0\r\nQUIT\n"[..], &[0x21, 0x11, 0, 12, 127, 0, 0, 2, 127, 0, 0, 1, 0x15, 0xb3, 0x07, 0x5b]]
            .concat(),
    ] {
        let mut forged = connect_from([127, 0, 0, 3], broker.addr()).await;
        forged.write_all(&header).await.unwrap();
        assert_eq!(mqtt_connect(&mut forged, "forged-1").await, None, "closed without a CONNACK");
    }
    // Without a header, the same address connects directly as usual.
    let mut direct = connect_from([127, 0, 0, 3], broker.addr()).await;
    assert_eq!(mqtt_connect(&mut direct, "direct-1").await, Some(0));
    let (_, client) = broker.api().get("/api/v1/clients/direct-1").await;
    assert_eq!(client["peer"], direct.local_addr().unwrap().to_string());
    let (status, _) = broker.api().get("/api/v1/clients/forged-1").await;
    assert_eq!(status, 404);

    // The WebSocket listener behind its own HAProxy: paho-mqtt from 127.0.0.2, its address seen.
    let ws_lb = haproxy(broker.mqtt_addr_of(roost_mqtt::transport::Kind::Ws)).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/ws_client.py");
    let port = ws_lb.addr.port().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("python3")
            .args([script, "127.0.0.1", &port, "/mqtt", "", "", "ws/echo", "hi"])
            .env("WS_BIND_ADDRESS", "127.0.0.2")
            .output(),
    )
    .await
    .expect("the WebSocket peer finished within 20 s")
    .expect("python3 runs (scripts/test installs paho-mqtt)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "received ws/echo hi", "{}", String::from_utf8_lossy(&out.stderr));
    let ev = loop {
        let p = admin.expect_publish(WAIT).await;
        if p.topic.ends_with(b"/ws-peer/connected") {
            break serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap();
        }
    };
    let peer: SocketAddr = ev["peer"].as_str().unwrap().parse().unwrap();
    assert_eq!((peer.ip().to_string(), ev["protocol"].as_str()), ("127.0.0.2".to_string(), Some("mqtt")), "{ev}");
}
