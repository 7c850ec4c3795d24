//! Malformed and out-of-order input over raw TCP: the broker closes the offending connection
//! promptly (a v5 one with a DISCONNECT saying why, once the version is known) and every other
//! client carries on. Each test connects a healthy client first and checks it afterwards
//! (MQTT 3.1.1 §4.8, MQTT 5.0 §4.13).

use std::net::SocketAddr;
use std::time::Duration;

use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

/// How soon "promptly" is: a broker must not wait for data a bad header promises.
const PROMPTLY: Duration = Duration::from_secs(2);

/// A client subscribed to everything, connected before the bad one.
async fn healthy(broker: &TestBroker) -> Client311 {
    let mut client = Client311::connect(broker.addr(), "healthy").await;
    client.subscribe("#", mqtt311::qos(1)).await;
    client
}

/// The healthy client still publishes and receives, and got nothing from the bad client
/// before that.
async fn assert_still_works(client: &mut Client311) {
    client.publish("ok/t", mqtt311::qos(1), false, "still here").await;
    let p = client.expect_publish(WAIT).await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("ok/t", &b"still here"[..]));
    client.assert_no_publish(QUIET).await;
}

/// Sends `bytes` on a fresh TCP connection and expects it closed with nothing sent back.
async fn closed_silently_before_connect(addr: SocketAddr, bytes: &[u8]) {
    let mut bad = RawClient::connect(addr).await;
    let _ = bad.send_bytes(bytes).await;
    let sent = bad.expect_close(PROMPTLY).await;
    assert!(sent.is_empty(), "nothing is said before a valid CONNECT: {sent:02x?}");
}

/// Connects (3.1.1), sends `bytes`, expects the connection closed with nothing sent back.
async fn closed_after_connect_v4(addr: SocketAddr, bytes: &[u8]) {
    let (mut bad, _) = RawClient::connect_v4(addr, raw::connect_v4("bad")).await;
    let _ = bad.send_bytes(bytes).await;
    let sent = bad.expect_close(PROMPTLY).await;
    assert!(sent.is_empty(), "3.1.1 closes without a word: {sent:02x?}");
}

/// Connects (5.0), sends `bytes`, expects the connection closed; returns the DISCONNECT reason.
async fn closed_after_connect_v5(addr: SocketAddr, bytes: &[u8]) -> Option<v5::DisconnectReasonCode> {
    let (mut bad, _) = RawClient::connect_v5(addr, raw::connect_v5("bad"), None).await;
    let _ = bad.send_bytes(bytes).await;
    bad.expect_close_reason_v5(PROMPTLY).await
}

#[tokio::test]
async fn reserved_packet_type_as_first_byte_closes() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    closed_silently_before_connect(broker.addr(), &[0x00, 0x00]).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn http_request_instead_of_mqtt_closes() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    closed_silently_before_connect(broker.addr(), b"GET / HTTP/1.1\r\nHost: roost\r\n\r\n").await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

/// Half a CONNECT and then the client goes away: the broker closes its side too.
#[tokio::test]
async fn truncated_connect_then_close() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let mut bad = RawClient::connect(broker.addr()).await;
    let connect = raw::encode_v4(&v4::Packet::Connect(raw::connect_v4("half")));
    let _ = bad.send_bytes(&connect[..connect.len() / 2]).await;
    bad.shutdown_write().await;
    assert!(bad.expect_close(PROMPTLY).await.is_empty());
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

/// A PUBLISH cut short by the client closing: nothing of it is delivered.
#[tokio::test]
async fn truncated_publish_then_close_delivers_nothing() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let (mut bad, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("half")).await;
    // Declares 20 bytes (topic "ok/t", payload of 14), sends 10.
    let _ = bad.send_bytes(&[0x30, 20, 0x00, 0x04, b'o', b'k', b'/', b't', b'a', b'b']).await;
    bad.shutdown_write().await;
    bad.expect_close(PROMPTLY).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

/// A PUBLISH whose remaining length runs to a fifth byte (four continuation bits set); the
/// encoding allows four at most.
const FIVE_BYTE_LENGTH: &[u8] = &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];

#[tokio::test]
async fn remaining_length_over_four_bytes_closes_v311() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    closed_after_connect_v4(broker.addr(), FIVE_BYTE_LENGTH).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn remaining_length_over_four_bytes_closes_v5() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let reason = closed_after_connect_v5(broker.addr(), FIVE_BYTE_LENGTH).await;
    if let Some(reason) = reason {
        assert_eq!(reason, v5::DisconnectReasonCode::MalformedPacket);
    }
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

/// A PUBLISH header declaring 256 MiB (the most a remaining length can say), with no body.
const HUGE_PUBLISH_HEADER: &[u8] = &[0x30, 0xFF, 0xFF, 0xFF, 0x7F];

#[tokio::test]
async fn huge_declared_length_closes_promptly_v311() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    closed_after_connect_v4(broker.addr(), HUGE_PUBLISH_HEADER).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn huge_declared_length_disconnects_0x95_v5() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let reason = closed_after_connect_v5(broker.addr(), HUGE_PUBLISH_HEADER).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::PacketTooLarge));
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn huge_declared_connect_closes_promptly() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    closed_silently_before_connect(broker.addr(), &[0x10, 0xFF, 0xFF, 0xFF, 0x7F]).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

/// A well-formed SUBSCRIBE before CONNECT: no SUBACK, closed.
#[tokio::test]
async fn first_packet_not_connect_closes() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let subscribe = raw::encode_v4(&raw::subscribe_v4(1, "x", mqtt311::qos(0)));
    closed_silently_before_connect(broker.addr(), &subscribe).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_closes_v311() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let connect = raw::encode_v4(&v4::Packet::Connect(raw::connect_v4("bad")));
    closed_after_connect_v4(broker.addr(), &connect).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_disconnects_0x82_v5() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let connect = raw::encode_v5(&v5::Packet::Connect(raw::connect_v5("bad"), None, None));
    let reason = closed_after_connect_v5(broker.addr(), &connect).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::ProtocolError));
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

/// Topic `a\xFF` (not UTF-8), QoS 0, payload `x`.
const BAD_UTF8_PUBLISH_V4: &[u8] = &[0x30, 0x05, 0x00, 0x02, b'a', 0xFF, b'x'];
/// The same for 5.0, with an empty property length.
const BAD_UTF8_PUBLISH_V5: &[u8] = &[0x30, 0x06, 0x00, 0x02, b'a', 0xFF, 0x00, b'x'];

#[tokio::test]
async fn invalid_utf8_topic_closes_v311() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    closed_after_connect_v4(broker.addr(), BAD_UTF8_PUBLISH_V4).await;
    assert_still_works(&mut ok).await;
    broker.stop().await;
}

#[tokio::test]
async fn invalid_utf8_topic_disconnects_0x81_v5() {
    let broker = TestBroker::start().await;
    let mut ok = healthy(&broker).await;
    let reason = closed_after_connect_v5(broker.addr(), BAD_UTF8_PUBLISH_V5).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::MalformedPacket));
    assert_still_works(&mut ok).await;
    broker.stop().await;
}
