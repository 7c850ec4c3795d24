//! LwM2M end to end with roost-sim's simulated device (`roost_sim::lwm2m_client`, what
//! `roost-sim lwm2m` runs): a firmware package larger than the device's buffer is written
//! from MQTT in Block1 blocks and read back; reports with the 1.1 Send operation reach the
//! notify topic.

use std::time::Duration;

use coap_lite::{MessageClass, ResponseType};
use roost_e2e::lwm2m::Device;
use roost_e2e::mqtt5::Client5;
use roost_e2e::{QUIET, TestBroker, WAIT};
use roost_sim::lwm2m_client::{DeviceConfig, DeviceHandle, Event, spawn_device};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::json;

use super::{command, next};

/// An application subscribed to every device's events, taking packets up to 1 MiB (an
/// 8 KiB package read back is 16 KiB of hex).
async fn app(broker: &TestBroker) -> Client5 {
    let mut options = Client5::options(broker.addr(), "app");
    options.set_max_packet_size(Some(1 << 20));
    let mut c = Client5::connect_with(options).await;
    c.subscribe("lwm2m/+/up/#", QoS::AtLeastOnce).await;
    c
}

/// Waits (bounded) for the device's first event that is `want`; returns the events before it.
async fn until(h: &mut DeviceHandle, want: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut before = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, h.events.recv()).await {
            Ok(Some(e)) if want(&e) => return before,
            Ok(Some(e)) => before.push(e),
            other => panic!("not the event wanted within {WAIT:?} ({other:?}); before it: {before:?}"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[tokio::test]
async fn a_firmware_package_goes_in_blocks_and_reads_back() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker).await;
    // The device's buffer is 512 bytes: it takes the gateway's first 1024-byte block and
    // asks for 512-byte blocks after (RFC 7959 §2.3).
    let cfg = DeviceConfig { block_size: 512, ..DeviceConfig::new("fw-1") };
    let mut dev = spawn_device(broker.lwm2m_addr(), cfg).await.unwrap();
    until(&mut dev, |e| matches!(e, Event::Registered(_))).await;
    let (_, reg) = next(&mut app).await;
    assert_eq!(
        (reg["msgType"].clone(), reg["data"]["objectList"].clone()),
        (json!("register"), json!(["/1/0", "/3/0", "/5/0", "/3303/0"]))
    );

    let package: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 256) as u8).collect();
    let write = json!({"reqID": 1, "msgType": "write", "encoding": "hex", "data": {"path": "/5/0/0", "type": "Opaque", "value": hex(&package)}});
    command(&mut app, "fw-1", write).await;
    let (topic, r) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/fw-1/up/resp");
    assert_eq!(
        r,
        json!({"reqID": 1, "msgType": "write", "data": {"reqPath": "/5/0/0", "code": "2.04", "codeMsg": "changed"}})
    );
    // One 1024-byte block, then 14 of 512: 14 answered 2.31 Continue before the 2.04.
    let before = until(&mut dev, |e| *e == Event::Answered("2.04".into())).await;
    assert_eq!(before.iter().filter(|e| **e == Event::Answered("2.31".into())).count(), 14, "{before:?}");

    // Read back: the device answers in Block2 blocks, the gateway reassembles them.
    command(&mut app, "fw-1", json!({"reqID": 2, "msgType": "read", "data": {"path": "/5/0/0"}})).await;
    let (_, r) = next(&mut app).await;
    assert_eq!((r["reqID"].clone(), r["data"]["code"].clone()), (json!(2), json!("2.05")));
    assert_eq!(r["data"]["content"], json!([{"path": "/5/0/0", "value": hex(&package)}]));
    command(&mut app, "fw-1", json!({"reqID": 3, "msgType": "read", "data": {"path": "/5/0/3"}})).await;
    assert_eq!(next(&mut app).await.1["data"]["content"][0]["value"], json!(2), "firmware state: downloaded");
    dev.stop.cancel();
}

#[tokio::test]
async fn send_reports_reach_the_notify_topic_and_malformed_ones_do_not() {
    let broker = TestBroker::start().await;
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("lwm2m/+/up/notify", QoS::AtLeastOnce).await;
    let cfg = DeviceConfig { send: true, report_period: Duration::from_millis(200), ..DeviceConfig::new("send-1") };
    let mut dev = spawn_device(broker.lwm2m_addr(), cfg).await.unwrap();
    until(&mut dev, |e| matches!(e, Event::Registered(_))).await;
    until(&mut dev, |e| *e == Event::Sent).await;
    let (topic, n) = next(&mut app).await;
    assert_eq!(topic, "lwm2m/send-1/up/notify");
    assert_eq!((n["msgType"].clone(), n["data"]["reqPath"].clone()), (json!("send"), json!("/dp")));
    let content = n["data"]["content"].as_array().unwrap();
    assert_eq!((content.len(), content[0]["path"].clone()), (1, json!("/3303/0/5700")));
    assert!(content[0]["value"].is_f64(), "a typed reading: {n}");
    dev.stop.cancel();
    tokio::time::timeout(WAIT, dev.task).await.unwrap().unwrap().unwrap();
    while app.recv_publish(QUIET).await.is_some() {}

    // A malformed report: 4.00, nothing published; another format: 4.15.
    let mut raw = Device::new(broker.lwm2m_addr()).await;
    assert_eq!(raw.register("raw-1", 300, "U").await.header.code, MessageClass::Response(ResponseType::Created));
    let r = raw.send_report(110, br#"[{"bn":"/3303/0/","n":"5700","v":"#).await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::BadRequest));
    let r = raw.send_report(11542, &[0xC8, 0x00, 0x01, 0x01]).await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::UnsupportedContentFormat));
    app.assert_no_publish(QUIET).await;
    // A good one from the same device is published.
    let r = raw.send_report(110, br#"[{"bn":"/3303/0/","n":"5700","v":22.5}]"#).await;
    assert_eq!(r.header.code, MessageClass::Response(ResponseType::Changed));
    let (topic, n) = next(&mut app).await;
    assert_eq!(
        (topic.as_str(), n),
        (
            "lwm2m/raw-1/up/notify",
            json!({"msgType": "send", "data": {"reqPath": "/dp", "content": [{"path": "/3303/0/5700", "value": 22.5}]}})
        )
    );
    assert_eq!(broker.lwm2m_counters().bad_sends.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// A device with a 16-byte buffer (`roost-sim lwm2m --block-size 16`) registers in Block1
/// blocks and gets the whole object list registered; a 40-byte write goes
/// whole, is refused 4.13 with a 16-byte Block1 hint, and goes again in 16-byte blocks
/// (RFC 7959 §2.9.3); reading it back comes in 16-byte Block2 blocks, reassembled exactly.
#[tokio::test]
async fn a_16_byte_device_gets_writes_in_its_block_size_after_a_4_13() {
    let broker = TestBroker::start().await;
    let mut app = app(&broker).await;
    let cfg = DeviceConfig { block_size: 16, ..DeviceConfig::new("tiny-1") };
    let mut dev = spawn_device(broker.lwm2m_addr(), cfg).await.unwrap();
    // Its link list is longer than 16 bytes: the Register goes in Block1 blocks, and the
    // gateway registers the whole list (not the first block's fragment).
    until(&mut dev, |e| matches!(e, Event::Registered(_))).await;
    let (_, reg) = next(&mut app).await;
    assert_eq!(
        (reg["msgType"].clone(), reg["data"]["objectList"].clone()),
        (json!("register"), json!(["/1/0", "/3/0", "/5/0", "/3303/0"]))
    );
    let tz = "Europe/Berlin, and forty bytes in total.";
    let write = json!({"reqID": 1, "msgType": "write", "data": {"path": "/3/0/14", "type": "String", "value": tz}});
    command(&mut app, "tiny-1", write).await;
    assert_eq!(next(&mut app).await.1["data"]["code"], "2.04");
    let before = until(&mut dev, |e| *e == Event::Answered("2.04".into())).await;
    assert_eq!(before.iter().filter(|e| **e == Event::Answered("4.13".into())).count(), 1, "{before:?}");
    assert_eq!(before.iter().filter(|e| **e == Event::Answered("2.31".into())).count(), 2, "{before:?}");
    command(&mut app, "tiny-1", json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/14"}})).await;
    assert_eq!(next(&mut app).await.1["data"]["content"], json!([{"path": "/3/0/14", "value": tz}]));
    dev.stop.cancel();
}
