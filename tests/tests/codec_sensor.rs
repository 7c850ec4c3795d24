//! The `tlv-sensor` example codec end to end (issue 9): binary frames over real UDP
//! sockets, an MQTT 5 client (rumqttc) on the other side; auth and ACL apply to the device.

use crate::codec_support;

use std::sync::Arc;

use codec_support::{AclFn, AuthFn, Events, Seen};
use roost::codec::codecs::tlv_sensor::{kind, tag};
use roost::codec::sim::SensorDevice;
use roost::core::ClientInfo;
use roost::core::auth::{Action, AuthDecision};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{QUIET, TestBroker, WAIT};
use serde_json::{Value, json};

const SENSORS: &str = r#"
[[codec]]
name = "sensors"
codec = "tlv-sensor"
transport = "udp"
bind = "127.0.0.1:0"
"#;

const ID: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1];
const HEX: &str = "deadbeef00000001";

#[tokio::test]
async fn reports_reach_mqtt_as_json_and_commands_reach_the_device() {
    let broker = TestBroker::start_with(SENSORS).await;
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("sensors/+/up", mqtt5::qos(1)).await;

    let mut dev = SensorDevice::connect(broker.codec_addr("sensors"), ID).await.expect("udp socket");
    let report = dev.report_frame(true, 2150, 42);
    dev.send_raw(&report).await.expect("send");
    let ack = dev.recv(WAIT).await.expect("ACK for a confirmed report");
    assert_eq!((ack.kind, ack.seq, &ack.body[..]), (kind::ACK, 1, &[0u8][..]));

    let got = app.expect_publish(WAIT).await;
    assert_eq!(String::from_utf8_lossy(&got.topic), format!("sensors/{HEX}/up"));
    assert_eq!(got.qos, mqtt5::qos(1));
    let body: Value = serde_json::from_slice(&got.payload).expect("JSON");
    assert_eq!(body, json!({"device": HEX, "seq": 1, "temperature_c": 21.5, "battery_mv": 3000, "counter": 42}));

    // An unconfirmed report: QoS 0, no ACK.
    let report = dev.report_frame(false, -500, 43);
    dev.send_raw(&report).await.expect("send");
    let got = app.expect_publish(WAIT).await;
    let body: Value = serde_json::from_slice(&got.payload).expect("JSON");
    assert_eq!(body["temperature_c"], json!(-5.0));

    // MQTT to device: a JSON command becomes a COMMAND frame with TLV settings.
    app.publish(&format!("sensors/{HEX}/down"), mqtt5::qos(1), false, r#"{"interval_s":60,"led":true}"#).await;
    let cmd = dev.recv(WAIT).await.expect("COMMAND");
    assert_eq!(cmd.kind, kind::COMMAND);
    assert_eq!(&cmd.body[..], &[tag::INTERVAL, 2, 0, 60, tag::LED, 1, 1]);
    assert_ne!(cmd.seq, 0, "QoS 1: the command carries its message id");
    dev.send_frame(kind::COMMAND_ACK, cmd.seq, &[]).await.expect("send");

    // Keep alive by PING.
    dev.send_frame(kind::PING, 77, &[]).await.expect("send");
    let pong = dev.recv(WAIT).await.expect("PONG");
    assert_eq!((pong.kind, pong.seq), (kind::PONG, 77));
    assert_eq!(broker.broker().connection_count(), 2, "app and the sensor");
    broker.stop().await;
}

#[tokio::test]
async fn commands_wait_for_a_sleeping_device_and_a_new_address_keeps_the_session() {
    let (events, mut log) = Events::new();
    let broker = TestBroker::start_custom(SENSORS, |b| b.hook(events)).await;
    let addr = broker.codec_addr("sensors");
    let mut dev = SensorDevice::connect(addr, ID).await.expect("udp socket");
    let report = dev.report_frame(true, 2000, 1);
    dev.send_raw(&report).await.expect("send");
    assert_eq!(dev.recv(WAIT).await.map(|f| f.kind), Some(kind::ACK));
    // Hooks (and so listings) name the codec as the protocol.
    assert_eq!(log.expect("connected", &format!("sensor-{HEX}")).await, "tlv-sensor");
    dev.send_frame(kind::BYE, 2, &[]).await.expect("send");
    assert_eq!(log.expect("disconnected", &format!("sensor-{HEX}")).await, "tlv-sensor");

    // Offline: the command waits in the device's persistent session.
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.publish(&format!("sensors/{HEX}/down"), mqtt5::qos(1), false, r#"{"led":false}"#).await;
    assert_eq!(broker.broker().queue_len(&roost::core::ClientId::new(format!("sensor-{HEX}"))), Some(1));

    // The device wakes up on another socket (another source port): same id, same session.
    let woke = SensorDevice::connect(addr, ID).await.expect("udp socket");
    woke.send_raw(
        &roost::codec::codecs::tlv_sensor::RawFrame { device: ID, seq: 9, kind: kind::PING, body: Default::default() }
            .to_bytes(),
    )
    .await
    .expect("send");
    let mut kinds = Vec::new();
    while let Some(f) = woke.recv(WAIT).await {
        kinds.push(f.kind);
        if f.kind == kind::COMMAND {
            assert_eq!(&f.body[..], &[tag::LED, 1, 0]);
        }
        if kinds.contains(&kind::COMMAND) && kinds.contains(&kind::PONG) {
            break;
        }
    }
    assert!(kinds.contains(&kind::COMMAND) && kinds.contains(&kind::PONG), "{kinds:x?}");
    broker.stop().await;
}

#[tokio::test]
async fn auth_and_acl_apply_to_sensor_devices() {
    const DENIED: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0xaa];
    const BANNED: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0xbb];
    let protocols = Arc::new(Seen::default());
    let seen = protocols.clone();
    let broker = TestBroker::start_custom(SENSORS, |b| {
        b.authenticator(Box::new(AuthFn(|client: &ClientInfo, _password: Option<&bytes::Bytes>| {
            if client.client_id.as_str() == "sensor-00000000000000bb" {
                AuthDecision::NotAuthorized
            } else {
                AuthDecision::Allow
            }
        })))
        .authorizer(Box::new(AclFn(move |client: &ClientInfo, action, topic: &str| {
            seen.0.lock().push((client.client_id.to_string(), client.protocol_name().to_string()));
            !(action == Action::Publish && topic.starts_with("sensors/00000000000000aa/"))
        })))
    })
    .await;
    let addr = broker.codec_addr("sensors");
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("sensors/#", mqtt5::qos(1)).await;

    let mut banned = SensorDevice::connect(addr, BANNED).await.expect("udp socket");
    let report = banned.report_frame(true, 100, 1);
    banned.send_raw(&report).await.expect("send");
    let rejected = banned.recv(WAIT).await.expect("REJECTED");
    assert_eq!((rejected.kind, &rejected.body[..]), (kind::REJECTED, &[1u8][..]));

    let mut denied = SensorDevice::connect(addr, DENIED).await.expect("udp socket");
    let report = denied.report_frame(true, 100, 1);
    denied.send_raw(&report).await.expect("send");
    let ack = denied.recv(WAIT).await.expect("ACK");
    assert_eq!((ack.kind, &ack.body[..]), (kind::ACK, &[1u8][..]), "ACK says not authorized");

    let mut ok = SensorDevice::connect(addr, ID).await.expect("udp socket");
    let report = ok.report_frame(true, 100, 1);
    ok.send_raw(&report).await.expect("send");
    let ack = ok.recv(WAIT).await.expect("ACK");
    assert_eq!((ack.kind, &ack.body[..]), (kind::ACK, &[0u8][..]));
    let got = app.expect_publish(WAIT).await;
    assert_eq!(String::from_utf8_lossy(&got.topic), format!("sensors/{HEX}/up"), "only the allowed report");
    app.assert_no_publish(QUIET).await;
    assert_eq!(protocols.protocol_of("sensor-00000000000000aa").as_deref(), Some("tlv-sensor"));
    assert_eq!(broker.broker().metrics().snapshot().auth_failures, 1);
    broker.stop().await;
}

#[tokio::test]
async fn simulated_sensors_report_and_acknowledge_commands() {
    let broker = TestBroker::start_with(SENSORS).await;
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("sensors/+/up", mqtt5::qos(0)).await;
    let target = broker.codec_addr("sensors");
    // 3 devices x 4 reports, every other one confirmed; the sim paces itself by `interval`.
    let sim = tokio::spawn(roost::codec::sim::run(target, 3, 4, std::time::Duration::from_millis(100)));
    let mut seen = Vec::new();
    while seen.len() < 12 {
        let p = app.expect_publish(WAIT).await;
        let body: Value = serde_json::from_slice(&p.payload).expect("JSON");
        seen.push(body["device"].as_str().map(str::to_string));
    }
    let report = tokio::time::timeout(WAIT, sim).await.expect("sim ends").expect("sim task").expect("sim runs");
    assert_eq!(report.reports_sent, 12);
    assert_eq!(report.acks_received, 6, "one ACK per confirmed report");
    for n in 1..=3u8 {
        let id = format!("{:016x}", n);
        assert_eq!(seen.iter().filter(|d| d.as_deref() == Some(id.as_str())).count(), 4, "{id}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn with_anonymous_refused_sensors_present_the_configured_username() {
    let refused = TestBroker::start_with(&format!("[auth]\nallow_anonymous = false\n{SENSORS}")).await;
    let mut dev = SensorDevice::connect(refused.codec_addr("sensors"), ID).await.expect("udp socket");
    let report = dev.report_frame(true, 1, 1);
    dev.send_raw(&report).await.expect("send");
    let f = dev.recv(WAIT).await.expect("REJECTED");
    assert_eq!((f.kind, &f.body[..]), (kind::REJECTED, &[1u8][..]));
    refused.stop().await;

    let config = format!("[auth]\nallow_anonymous = false\n{SENSORS}options = {{ username = \"field-sensors\" }}\n");
    let admitted = TestBroker::start_with(&config).await;
    let mut dev = SensorDevice::connect(admitted.codec_addr("sensors"), ID).await.expect("udp socket");
    let report = dev.report_frame(true, 1, 1);
    dev.send_raw(&report).await.expect("send");
    let f = dev.recv(WAIT).await.expect("ACK");
    assert_eq!((f.kind, &f.body[..]), (kind::ACK, &[0u8][..]));
    admitted.stop().await;
}
