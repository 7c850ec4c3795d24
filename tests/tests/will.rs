//! Will messages: published when a connection ends without DISCONNECT, not after a normal
//! DISCONNECT, on request with v5 reason 0x04, and after the v5 Will Delay Interval unless
//! the session is resumed first (MQTT 3.1.1 §3.1.2.5, MQTT 5.0 §3.1.2.5, §3.1.3.2.2).

use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::time::Instant;

/// Long enough for a broker to have published a will right after a close, had it wanted to.
/// A will that must NOT appear can only be shown absent by waiting.
const NO_WILL_WAIT: Duration = Duration::from_millis(500);

fn connect_with_will_v4(client_id: &str) -> v4::Connect {
    let mut connect = raw::connect_v4(client_id);
    connect.last_will = Some(v4::LastWill::new("will/t", "gone", mqtt311::qos(1), false));
    connect
}

fn will_v5(delay: Option<u32>) -> v5::LastWill {
    let properties = delay.map(|delay| v5::LastWillProperties {
        delay_interval: Some(delay),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    });
    v5::LastWill::new("will/t", "gone", mqtt5::qos(1), false, properties)
}

async fn will_watcher_v5(broker: &TestBroker) -> Client5 {
    let mut watcher = Client5::connect(broker.addr(), "watcher").await;
    watcher.subscribe("will/#", mqtt5::qos(1)).await;
    watcher
}

#[tokio::test]
async fn will_published_on_abnormal_close_v311() {
    let broker = TestBroker::start().await;
    let mut watcher = Client311::connect(broker.addr(), "watcher").await;
    watcher.subscribe("will/#", mqtt311::qos(1)).await;
    let (client, _) = RawClient::connect_v4(broker.addr(), connect_with_will_v4("dies")).await;

    drop(client); // TCP closed without DISCONNECT

    let will = watcher.expect_publish(WAIT).await;
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("will/t", &b"gone"[..]));
    broker.stop().await;
}

#[tokio::test]
async fn will_not_published_on_disconnect_v311() {
    let broker = TestBroker::start().await;
    let mut watcher = Client311::connect(broker.addr(), "watcher").await;
    watcher.subscribe("will/#", mqtt311::qos(1)).await;
    let (mut client, _) = RawClient::connect_v4(broker.addr(), connect_with_will_v4("leaves")).await;

    client.send_v4(&v4::Packet::Disconnect).await;
    client.expect_close(WAIT).await;

    watcher.assert_no_publish(NO_WILL_WAIT).await;
    broker.stop().await;
}

#[tokio::test]
async fn will_published_on_abnormal_close_v5() {
    let broker = TestBroker::start().await;
    let mut watcher = will_watcher_v5(&broker).await;
    let (client, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("dies"), Some(will_v5(None))).await;

    drop(client);

    let will = watcher.expect_publish(WAIT).await;
    assert_eq!((raw::topic_v5(&will).as_str(), &will.payload[..]), ("will/t", &b"gone"[..]));
    broker.stop().await;
}

#[tokio::test]
async fn will_not_published_on_normal_disconnect_v5() {
    let broker = TestBroker::start().await;
    let mut watcher = will_watcher_v5(&broker).await;
    let (mut client, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("leaves"), Some(will_v5(None))).await;

    let normal = v5::Disconnect::new(v5::DisconnectReasonCode::NormalDisconnection);
    client.send_v5(&v5::Packet::Disconnect(normal)).await;
    client.expect_close(WAIT).await;

    watcher.assert_no_publish(NO_WILL_WAIT).await;
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_with_will_message_reason_publishes_will_v5() {
    let broker = TestBroker::start().await;
    let mut watcher = will_watcher_v5(&broker).await;
    let (mut client, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("asks"), Some(will_v5(None))).await;

    let with_will = v5::Disconnect::new(v5::DisconnectReasonCode::DisconnectWithWillMessage);
    client.send_v5(&v5::Packet::Disconnect(with_will)).await;

    let will = watcher.expect_publish(WAIT).await;
    assert_eq!(&will.payload[..], b"gone");
    broker.stop().await;
}

/// A client that comes back (clean start = 0) within the will delay suppresses its will.
#[tokio::test]
async fn will_delay_suppressed_by_reconnect_v5() {
    let broker = TestBroker::start().await;
    let mut watcher = will_watcher_v5(&broker).await;
    let connect = raw::connect_v5_persistent("blips", true, 10);
    let (client, _) = RawClient::connect_v5(broker.addr(), connect, Some(will_v5(Some(1)))).await;

    drop(client);
    let connect = raw::connect_v5_persistent("blips", false, 10);
    let (_back, ack) = RawClient::connect_v5(broker.addr(), connect, None).await;
    assert!(ack.session_present);

    // Past the 1 s delay with margin: the will must not have fired.
    watcher.assert_no_publish(Duration::from_millis(1500)).await;
    broker.stop().await;
}

/// Without a reconnect the will fires once the delay has passed, not before.
#[tokio::test]
async fn will_delay_fires_after_interval_v5() {
    let broker = TestBroker::start().await;
    let mut watcher = will_watcher_v5(&broker).await;
    let connect = raw::connect_v5_persistent("gone-for-good", true, 10);
    let (client, _) = RawClient::connect_v5(broker.addr(), connect, Some(will_v5(Some(1)))).await;

    drop(client);
    let closed_at = Instant::now();

    let will = watcher.expect_publish(WAIT).await;
    let after = closed_at.elapsed();
    assert_eq!(&will.payload[..], b"gone");
    assert!(after >= Duration::from_millis(900), "will sent {after:?} after close, before its 1 s delay");
    broker.stop().await;
}

/// The will is sent when the session ends, if that is before the will delay (MQTT 5.0
/// §3.1.3.2.2): session expiry 1 s, will delay 60 s.
#[tokio::test]
async fn will_sent_when_session_ends_before_delay_v5() {
    let broker = TestBroker::start().await;
    let mut watcher = will_watcher_v5(&broker).await;
    let connect = raw::connect_v5_persistent("short-session", true, 1);
    let (client, _) = RawClient::connect_v5(broker.addr(), connect, Some(will_v5(Some(60)))).await;

    drop(client);
    let closed_at = Instant::now();

    let will = watcher.expect_publish(WAIT).await;
    assert_eq!(&will.payload[..], b"gone");
    assert!(closed_at.elapsed() >= Duration::from_millis(900), "will sent before the session expired");
    broker.stop().await;
}
