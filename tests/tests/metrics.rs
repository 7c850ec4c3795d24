//! `GET /metrics`: parses as Prometheus text and its counters match what the test did.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(broker: &TestBroker) -> prometheus_parse::Scrape {
    roost_e2e::metrics::scrape(broker.http_addr()).await
}

use roost_e2e::metrics::value;

#[tokio::test]
async fn metrics_count_what_clients_did() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("m/#", mqtt5::qos(1)).await;
    let mut publ = Client5::connect(broker.addr(), "pub").await;
    for i in 0..5 {
        publ.publish("m/x", mqtt5::qos(1), false, format!("{i}")).await;
    }
    for _ in 0..5 {
        sub.expect_publish(WAIT).await;
    }
    publ.publish("nobody/listens", mqtt5::qos(0), false, "x").await;
    let before_ms = std::time::Instant::now();
    let scrape = scrape(&broker).await;
    assert!(before_ms.elapsed() < Duration::from_secs(3));
    assert_eq!(value(&scrape, "roost_connections", Some(("protocol", "mqtt"))), 2.0);
    assert_eq!(value(&scrape, "roost_messages_received_total", Some(("protocol", "mqtt"))), 6.0);
    assert_eq!(value(&scrape, "roost_messages_sent_total", Some(("protocol", "mqtt"))), 5.0);
    assert_eq!(value(&scrape, "roost_messages_dropped_total", Some(("reason", "no_subscribers"))), 1.0);
    assert_eq!(value(&scrape, "roost_sessions", None), 2.0);
    assert!(value(&scrape, "roost_process_resident_memory_bytes", None) > 0.0);
    assert!(value(&scrape, "roost_received_bytes_total", None) > 0.0);
}

/// Refused logins, queue depths, in-flight messages and MQTT-SN connections as scraped.
#[tokio::test]
async fn metrics_count_auth_failures_queue_depth_and_every_protocol() {
    let broker = TestBroker::start_with("[auth]\nallow_anonymous = false\n").await;
    // Two anonymous MQTT 3.1.1 CONNECTs, refused (CONNACK 0x04).
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(broker.addr()).await.unwrap();
        s.write_all(&[0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'x']).await.unwrap();
        let mut ack = [0u8; 4];
        tokio::time::timeout(WAIT, s.read_exact(&mut ack)).await.unwrap().unwrap();
        assert_eq!(ack, [0x20, 0x02, 0x00, 0x04], "bad user name or password");
    }
    // A persistent session offline with 4 messages waiting for it.
    let mut o = Client5::options(broker.addr(), "sleeper");
    o.set_credentials("u", "p");
    o.set_clean_start(false);
    let mut props = rumqttc::v5::mqttbytes::v5::ConnectProperties::new();
    props.session_expiry_interval = Some(600);
    o.set_connect_properties(props);
    let mut sleeper = Client5::connect_with(o).await;
    sleeper.subscribe("q/#", mqtt5::qos(1)).await;
    sleeper.disconnect().await;
    let mut o = Client5::options(broker.addr(), "pub");
    o.set_credentials("u", "p");
    let mut publ = Client5::connect_with(o).await;
    for i in 0..4 {
        publ.publish("q/x", mqtt5::qos(1), false, format!("{i}")).await;
    }
    // An MQTT-SN client with a user name is not possible (MQTT-SN 1.2 has none): with
    // anonymous access off it is refused, and counted.
    let sn = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sn.send_to(&[8, 0x04, 0x04, 0x01, 0, 60, b's', b'n'], broker.mqttsn_addr()).await.unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = tokio::time::timeout(WAIT, sn.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..2], &[3, 0x05], "CONNACK");
    assert_ne!(buf[2], 0, "refused: {:?}", &buf[..n]);

    let scrape = scrape(&broker).await;
    assert_eq!(value(&scrape, "roost_auth_failures_total", None), 3.0);
    assert_eq!(value(&scrape, "roost_queued_messages", None), 4.0);
    assert_eq!(value(&scrape, "roost_inflight_messages", None), 0.0);
    assert_eq!(value(&scrape, "roost_sessions", None), 2.0);
    assert_eq!(value(&scrape, "roost_connections", Some(("protocol", "mqtt"))), 1.0);
    assert_eq!(value(&scrape, "roost_connections", Some(("protocol", "mqtt-sn"))), 0.0);
    assert_eq!(value(&scrape, "roost_messages_received_total", Some(("protocol", "mqtt"))), 4.0);
    assert!(value(&scrape, "roost_process_cpu_seconds_total", None) > 0.0);
    // Every family has HELP and TYPE, and every sample belongs to one (Prometheus text).
    for s in &scrape.samples {
        let family = s.metric.trim_end_matches("_total");
        assert!(scrape.docs.contains_key(family) || scrape.docs.contains_key(&s.metric), "{} has no HELP", s.metric);
    }
}

/// The UDP adapters' own counters (what the core cannot see) are in `/metrics` too: a
/// malformed CoAP datagram, a CoAP client, packet-forwarder datagrams of an unknown version,
/// of an unknown kind, and a PULL_DATA.
#[tokio::test]
async fn metrics_count_coap_and_lorawan_adapter_events() {
    use coap_lite::{RequestType, ResponseType};
    use roost_e2e::coap::{Raw, code, resp};

    let broker = TestBroker::start().await;
    let coap = Raw::new(broker.coap_addr()).await;
    // Version 3 is no CoAP: dropped and counted as malformed.
    coap.send_bytes(&[0xC0, 0x01, 0x00, 0x01]).await;
    let r = coap.call(RequestType::Put, "ps/m/coap", &["clientid=co-m"], b"1").await;
    assert_eq!(code(&r), resp(ResponseType::Changed));
    let lora = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    lora.send_to(b"\x09garbage", broker.lorawan_addr()).await.unwrap();
    lora.send_to(&[2, 0, 1, 0xEE], broker.lorawan_addr()).await.unwrap();
    // PULL_DATA (version 2, token 0x1234, gateway EUI) is answered by PULL_ACK.
    let mut pull = vec![2, 0x12, 0x34, 2];
    pull.extend_from_slice(&[0xAA, 0x55, 0x5A, 0, 0, 0, 0, 1]);
    lora.send_to(&pull, broker.lorawan_addr()).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(WAIT, lora.recv_from(&mut buf)).await.expect("PULL_ACK in time").unwrap();
    assert_eq!(&buf[..n], &[2, 0x12, 0x34, 4]);

    let scrape = scrape(&broker).await;
    assert_eq!(value(&scrape, "roost_coap_events_total", Some(("event", "malformed"))), 1.0);
    assert_eq!(value(&scrape, "roost_coap_sessions", None), 1.0);
    assert_eq!(value(&scrape, "roost_connections", Some(("protocol", "coap"))), 1.0);
    assert_eq!(value(&scrape, "roost_messages_received_total", Some(("protocol", "coap"))), 1.0);
    assert_eq!(value(&scrape, "roost_dtls_handshakes_total", Some(("result", "ok"))), 0.0);
    assert_eq!(value(&scrape, "roost_lorawan_datagrams_total", Some(("outcome", "received"))), 3.0);
    assert_eq!(value(&scrape, "roost_lorawan_datagrams_total", Some(("outcome", "unknown_version"))), 1.0);
    assert_eq!(value(&scrape, "roost_lorawan_datagrams_total", Some(("outcome", "malformed"))), 1.0);
    assert_eq!(value(&scrape, "roost_lorawan_gateways", None), 1.0);
    assert_eq!(value(&scrape, "roost_lorawan_joins_total", None), 0.0);
}

/// LwM2M: a registration, an update, a command to the device, and a malformed datagram.
#[tokio::test]
async fn metrics_count_lwm2m_registrations_and_commands() {
    let broker = TestBroker::start().await;
    let mut dev = roost_e2e::lwm2m::Device::new(broker.lwm2m_addr()).await;
    dev.register("m-1", 300, "U").await;
    dev.update(&[], "").await;
    let (status, _) = broker
        .api()
        .call(
            "POST",
            "/api/v1/lwm2m/devices/m-1/commands",
            Some(&serde_json::json!({"msgType": "read", "data": {"path": "/3/0/0"}})),
        )
        .await;
    assert_eq!(status, 202);
    dev.serve_one().await;
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    raw.send_to(&[0xC0, 0x01], broker.lwm2m_addr()).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.lwm2m_counters().malformed.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the malformed datagram was not counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let scrape = scrape(&broker).await;
    assert_eq!(value(&scrape, "roost_lwm2m_devices", None), 1.0);
    assert_eq!(value(&scrape, "roost_connections", Some(("protocol", "lwm2m"))), 1.0);
    assert_eq!(value(&scrape, "roost_lwm2m_registration_events_total", Some(("event", "register"))), 1.0);
    assert_eq!(value(&scrape, "roost_lwm2m_registration_events_total", Some(("event", "update"))), 1.0);
    assert_eq!(value(&scrape, "roost_lwm2m_commands_total", Some(("outcome", "sent"))), 1.0);
    assert_eq!(value(&scrape, "roost_lwm2m_datagrams_total", Some(("kind", "malformed"))), 1.0);
    assert_eq!(value(&scrape, "roost_dtls_client_hellos_total", Some(("outcome", "hello_verify_sent"))), 0.0);
}
