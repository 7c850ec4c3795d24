//! The `line` example codec end to end (issue 9): a text device over real TCP, an MQTT 5
//! client (rumqttc) on the other side; auth and ACL apply to the device as to any client.

use crate::codec_support;

use std::sync::Arc;
use std::time::Duration;

use codec_support::{LineDevice, Passwords, Rules, Seen};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{QUIET, TestBroker, WAIT};

const LINE: &str = r#"
[[codec]]
name = "serial"
codec = "line"
bind = "127.0.0.1:0"
mountpoint = "line/${clientid}/"
"#;

#[tokio::test]
async fn device_to_mqtt_and_mqtt_to_device() {
    let broker = TestBroker::start_with(LINE).await;
    let mut sub = Client5::connect(broker.addr(), "app").await;
    sub.subscribe("line/#", mqtt5::qos(1)).await;

    let mut dev = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(dev.ask("CONNECT meter-1 user s3cret").await, "OK");
    assert_eq!(dev.ask("PUB power/w 1520").await, "OK");
    let got = sub.expect_publish(WAIT).await;
    assert_eq!(&got.topic[..], b"line/meter-1/power/w", "mountpoint with the client id");
    assert_eq!(&got.payload[..], b"1520");
    assert_eq!(dev.ask("PUB1 power/w 1490").await, "OK");
    let got = sub.expect_publish(WAIT).await;
    assert_eq!((&got.payload[..], got.qos), (&b"1490"[..], mqtt5::qos(1)));

    // MQTT to device, QoS 1: delivered with an id, acknowledged by the device.
    assert_eq!(dev.ask("SUB cmd/# 1").await, "OK 1");
    let mut app = Client5::connect(broker.addr(), "app-cmd").await;
    app.publish("line/meter-1/cmd/relay", mqtt5::qos(1), false, "off").await;
    assert_eq!(dev.expect_line(WAIT).await, "MSG 1 cmd/relay off");
    dev.send("ACK 1").await;
    app.publish("line/meter-1/cmd/relay", mqtt5::qos(0), false, "on").await;
    assert_eq!(dev.expect_line(WAIT).await, "MSG 0 cmd/relay on");
    // Another device's topics are out of this one's mountpoint.
    app.publish("line/meter-2/cmd/relay", mqtt5::qos(1), false, "x").await;
    assert_eq!(dev.ask("PING").await, "PONG", "nothing for meter-2 came before the PONG");

    assert_eq!(dev.ask("UNSUB cmd/#").await, "OK");
    app.publish("line/meter-1/cmd/relay", mqtt5::qos(1), false, "gone").await;
    assert_eq!(dev.try_line(QUIET).await, None, "no delivery after UNSUB");

    dev.send("QUIT").await;
    assert_eq!(dev.expect_closed(WAIT).await, Vec::<String>::new());
    broker.stop().await;
}

#[tokio::test]
async fn retained_messages_reach_codec_devices() {
    let broker = TestBroker::start_with(LINE).await;
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.publish("line/d1/config", mqtt5::qos(1), true, "interval=5").await;
    let mut dev = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(dev.ask("CONNECT d1 u s3cret").await, "OK");
    assert_eq!(dev.ask("SUB config").await, "OK 0");
    assert_eq!(dev.expect_line(WAIT).await, "MSG 0 config interval=5", "retained message on subscribe");
    broker.stop().await;
}

#[tokio::test]
async fn keep_alive_closes_a_silent_device() {
    let config = format!("{LINE}options = {{ keep_alive = 1 }}\n");
    let broker = TestBroker::start_with(&config).await;
    let mut dev = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(dev.ask("CONNECT quiet u s3cret").await, "OK");
    // 1.5 x 1 s without input.
    assert_eq!(dev.expect_closed(WAIT).await, ["BYE keep alive timeout"]);
    broker.stop().await;
}

#[tokio::test]
async fn takeover_by_the_same_client_id_closes_the_first() {
    let broker = TestBroker::start_with(LINE).await;
    let mut first = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(first.ask("CONNECT twin u s3cret").await, "OK");
    let mut second = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(second.ask("CONNECT twin u s3cret").await, "OK");
    assert_eq!(first.expect_closed(WAIT).await, ["BYE taken over"]);
    assert_eq!(second.ask("PING").await, "PONG");
    broker.stop().await;
}

#[tokio::test]
async fn auth_and_acl_apply_to_line_devices() {
    let seen = Arc::new(Seen::default());
    let broker = TestBroker::start_custom(LINE, |b| {
        b.authenticator(Box::new(Passwords(seen.clone()))).authorizer(Box::new(Rules(seen.clone())))
    })
    .await;
    let addr = broker.codec_addr("serial");

    let mut anonymous = LineDevice::connect(addr).await;
    anonymous.send("CONNECT anon").await;
    assert_eq!(anonymous.expect_closed(WAIT).await, ["ERR bad credentials"]);
    let mut wrong = LineDevice::connect(addr).await;
    wrong.send("CONNECT d2 alice guess").await;
    assert_eq!(wrong.expect_closed(WAIT).await, ["ERR bad credentials"]);
    let mut banned = LineDevice::connect(addr).await;
    banned.send("CONNECT banned-1 alice s3cret").await;
    assert_eq!(banned.expect_closed(WAIT).await, ["ERR not authorized"]);
    assert_eq!(broker.broker().metrics().snapshot().auth_failures, 3);

    let mut sub = Client5::connect_with({
        let mut o = Client5::options(broker.addr(), "app");
        o.set_credentials("app", "s3cret");
        o
    })
    .await;
    sub.subscribe("line/#", mqtt5::qos(1)).await;
    let mut dev = LineDevice::connect(addr).await;
    assert_eq!(dev.ask("CONNECT d3 alice s3cret").await, "OK");
    assert_eq!(dev.ask("PUB vault/secret/code 1234").await, "ERR not authorized");
    assert_eq!(dev.ask("SUB admin/#").await, "ERR not authorized");
    assert_eq!(dev.ask("PUB status up").await, "OK");
    let got = sub.expect_publish(WAIT).await;
    assert_eq!(&got.topic[..], b"line/d3/status", "only the allowed publish arrived");
    sub.assert_no_publish(QUIET).await;

    let mut read_only = LineDevice::connect(addr).await;
    assert_eq!(read_only.ask("CONNECT d4-ro alice s3cret").await, "OK");
    assert_eq!(read_only.ask("PUB status up").await, "ERR not authorized");

    // The ACL saw the device under its codec's name (acceptance 4's protocol name).
    assert_eq!(seen.protocol_of("d3").as_deref(), Some("line"));
    assert_eq!(seen.protocol_of("app").as_deref(), Some("mqtt"));
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_says_bye_to_codec_devices() {
    let broker = TestBroker::start_with(LINE).await;
    let mut dev = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(dev.ask("CONNECT d u s3cret").await, "OK");
    let stop = tokio::spawn(broker.stop());
    assert_eq!(dev.expect_closed(WAIT).await, ["BYE shutting down"]);
    match tokio::time::timeout(Duration::from_secs(6), stop).await {
        Ok(Ok(())) => {}
        other => panic!("stop did not finish: {other:?}"),
    }
}

/// The reference command-line clients against a codec device, as the how-to runs them.
#[tokio::test]
async fn mosquitto_clients_talk_to_a_line_device() {
    use roost_e2e::cli::{self, Version};
    let broker = TestBroker::start_with(LINE).await;
    let mut sub = cli::Sub::start(broker.port(), Version::V311, "line/#", 1, 1).await;
    let mut dev = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(dev.ask("CONNECT pump-3 u s3cret").await, "OK");
    assert_eq!(dev.ask("SUB set 1").await, "OK 1");
    assert_eq!(dev.ask("PUB1 flow 12.5").await, "OK");
    let got = sub.expect_message(WAIT).await;
    assert_eq!(got.line, "line/pump-3/flow 12.5");
    sub.expect_exit().await;
    cli::publish(broker.port(), Version::V5, "line/pump-3/set", "stop", 1).await;
    assert_eq!(dev.expect_line(WAIT).await, "MSG 1 set stop");
    broker.stop().await;
}

/// A trace (through the HTTP API) of a codec device shows its frames both ways, named by
/// the codec, and never its CONNECT credentials.
#[tokio::test]
async fn a_trace_follows_a_codec_device() {
    let broker = TestBroker::start_with(LINE).await;
    let api = broker.api();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("meter.log");
    let body = serde_json::json!({ "type": "client", "target": "meter-7", "file": file });
    assert_eq!(api.call("POST", "/api/v1/traces", Some(&body)).await.0, 201);
    let mut dev = LineDevice::connect(broker.codec_addr("serial")).await;
    assert_eq!(dev.ask("CONNECT meter-7 user s3cret").await, "OK");
    assert_eq!(dev.ask("PUB power/w 1520").await, "OK");
    assert_eq!(api.call("DELETE", "/api/v1/traces?type=client&target=meter-7", None).await.0, 204);
    let text = std::fs::read_to_string(&file).expect("trace file");
    for expected in [
        "line client=meter-7 peer=127.0.0.1:",
        " out packet ConnAck",
        " in packet Publish",
        " in message topic=line/meter-7/power/w",
        " out packet PubAck",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("s3cret"), "{text}");
    broker.stop().await;
}
