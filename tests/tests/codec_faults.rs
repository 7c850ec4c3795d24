//! Acceptance 3 of issue 9: a codec that returns an error, or panics, on some input takes
//! down only that connection (the panic is caught and logged, the will is published as for
//! any lost connection) and its listener keeps serving the others — over TCP and UDP.
//!
//! The codec here is written in this test crate and registered the way a user's `main`
//! registers one, so it also shows that no Roost crate needs to change for a new codec.

use crate::codec_support;

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use codec_support::{Events, LineDevice};
use roost::codec::{
    Codec, CodecError, CodecFactory, ConnectFrame, DeviceKey, Downlink, QoS, Registry, Uplink, WillFrame,
};
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};
use tokio::net::UdpSocket;

/// `hello ID` connects (will on `f/will/ID`), `pub TOPIC PAYLOAD` publishes, `bad` is a
/// decoding error, `boom` panics. Answers `ok` to connect and publish.
#[derive(Default)]
struct Faulty;

impl Codec for Faulty {
    fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<Uplink>) -> Result<(), CodecError> {
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(end + 1);
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("hello"), Some(id), None) => {
                    let mut c = ConnectFrame::new(id, 0);
                    c.will = Some(WillFrame {
                        topic: format!("f/will/{id}"),
                        payload: Bytes::from_static(b"gone"),
                        qos: QoS::AtMostOnce,
                        retain: false,
                    });
                    out.push(Uplink::Connect(c));
                }
                (Some("pub"), Some(topic), Some(payload)) => out.push(Uplink::Publish {
                    id: 0,
                    topic: topic.into(),
                    payload: Bytes::copy_from_slice(payload.as_bytes()),
                    qos: QoS::AtMostOnce,
                    retain: false,
                }),
                (Some("boom"), None, None) => panic!("faulty codec: boom"),
                _ => return Err(CodecError::new(format!("faulty codec: cannot read {line:?}"))),
            }
        }
        Ok(())
    }

    fn encode(&mut self, frame: Downlink, out: &mut BytesMut) -> Result<(), CodecError> {
        if let Downlink::ConnAck { result: Ok(()), .. } | Downlink::PubAck { result: Ok(()), .. } = frame {
            out.extend_from_slice(b"ok\n");
        }
        Ok(())
    }
}

/// By sender address, except that a datagram starting with `key-boom` makes the device
/// lookup itself panic.
struct FaultyFactory;

impl CodecFactory for FaultyFactory {
    fn new_codec(&self) -> Box<dyn Codec> {
        Box::new(Faulty)
    }

    fn device_key(&self, datagram: &[u8]) -> Option<DeviceKey> {
        assert!(!datagram.starts_with(b"key-boom"), "faulty factory: key boom");
        None
    }
}

fn registry() -> Registry {
    let mut codecs = Registry::default();
    codecs.register("faulty", |_options| Ok(FaultyFactory));
    codecs
}

const CONFIG: &str = r#"
[[codec]]
name = "tcp"
codec = "faulty"
bind = "127.0.0.1:0"
[[codec]]
name = "udp"
codec = "faulty"
transport = "udp"
bind = "127.0.0.1:0"
"#;

#[tokio::test]
async fn tcp_error_or_panic_closes_only_that_connection() {
    let (events, mut log) = Events::new();
    let broker = TestBroker::start_custom(CONFIG, |b| b.codecs(registry()).hook(events)).await;
    let addr = broker.codec_addr("tcp");
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("f/#", mqtt5::qos(0)).await;

    let mut a = LineDevice::connect(addr).await;
    assert_eq!(a.ask("hello a").await, "ok");
    let mut b = LineDevice::connect(addr).await;
    assert_eq!(b.ask("hello b").await, "ok");

    b.send("boom").await;
    assert_eq!(b.expect_closed(WAIT).await, Vec::<String>::new());
    assert_eq!(log.expect("disconnected", "b").await, "faulty");
    let will = app.expect_publish(WAIT).await;
    assert_eq!(&will.topic[..], b"f/will/b", "a panic is a lost connection: the will goes out");

    assert_eq!(a.ask("pub f/a still-here").await, "ok");
    assert_eq!(&app.expect_publish(WAIT).await.payload[..], b"still-here");

    let mut c = LineDevice::connect(addr).await;
    assert_eq!(c.ask("hello c").await, "ok", "the listener still accepts");
    c.send("bad").await;
    assert_eq!(c.expect_closed(WAIT).await, Vec::<String>::new());
    assert_eq!(&app.expect_publish(WAIT).await.topic[..], b"f/will/c");

    assert_eq!(a.ask("pub f/a after-error").await, "ok");
    assert_eq!(&app.expect_publish(WAIT).await.payload[..], b"after-error");
    broker.stop().await;
}

struct UdpDevice(UdpSocket);

impl UdpDevice {
    async fn new(target: SocketAddr) -> UdpDevice {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.connect(target).await.expect("connect");
        UdpDevice(socket)
    }

    async fn send(&self, text: &str) {
        self.0.send(text.as_bytes()).await.expect("send");
    }

    async fn ask(&self, text: &str) -> String {
        self.send(text).await;
        let mut buf = [0u8; 512];
        match tokio::time::timeout(WAIT, self.0.recv(&mut buf)).await {
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            other => panic!("no answer to {text:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn udp_error_or_panic_closes_only_that_device() {
    let (events, mut log) = Events::new();
    let broker = TestBroker::start_custom(CONFIG, |b| b.codecs(registry()).hook(events)).await;
    let addr = broker.codec_addr("udp");
    let mut app = Client5::connect(broker.addr(), "app").await;
    app.subscribe("f/#", mqtt5::qos(0)).await;

    let a = UdpDevice::new(addr).await;
    assert_eq!(a.ask("hello ua\n").await, "ok\n");
    let b = UdpDevice::new(addr).await;
    assert_eq!(b.ask("hello ub\n").await, "ok\n");

    b.send("boom\n").await;
    assert_eq!(log.expect("disconnected", "ub").await, "faulty");
    assert_eq!(&app.expect_publish(WAIT).await.topic[..], b"f/will/ub");
    // The same address starts afresh: a new codec, a new connection.
    assert_eq!(b.ask("hello ub2\n").await, "ok\n");

    // A panic in the factory's device lookup drops that datagram only.
    let k = UdpDevice::new(addr).await;
    k.send("key-boom\n").await;
    assert_eq!(a.ask("pub f/ua alive\n").await, "ok\n");
    assert_eq!(&app.expect_publish(WAIT).await.payload[..], b"alive");

    let c = UdpDevice::new(addr).await;
    assert_eq!(c.ask("hello uc\n").await, "ok\n");
    c.send("bad\n").await;
    assert_eq!(log.expect("disconnected", "uc").await, "faulty");
    assert_eq!(&app.expect_publish(WAIT).await.topic[..], b"f/will/uc");
    assert_eq!(a.ask("pub f/ua still\n").await, "ok\n");
    assert_eq!(&app.expect_publish(WAIT).await.payload[..], b"still");
    broker.stop().await;
}
