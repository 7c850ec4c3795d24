//! Time and size limits: keep alive, connect timeout, the per-session queue bound, and a slow
//! subscriber that must not hold up anyone else (MQTT 3.1.1 §3.1.2.10, MQTT 5.0 §3.1.2.10;
//! Roost `[mqtt]` and `[limits]` settings).

use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::time::Instant;

/// A keep alive of 1 s allows 1.5 s of silence; Mosquitto and Roost check on a timer, so
/// allow up to 4 s for the close, and require at least 1 s.
const KEEP_ALIVE_CLOSE_MIN: Duration = Duration::from_secs(1);
const KEEP_ALIVE_CLOSE_MAX: Duration = Duration::from_secs(4);

#[tokio::test]
async fn keep_alive_expiry_closes_silent_client_v311() {
    let broker = TestBroker::start().await;
    let mut connect = raw::connect_v4("silent");
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect_v4(broker.addr(), connect).await;
    let connected = Instant::now();

    let sent = client.expect_close(KEEP_ALIVE_CLOSE_MAX).await;
    let after = connected.elapsed();
    assert!(sent.is_empty(), "3.1.1 closes without a word: {sent:02x?}");
    assert!(after >= KEEP_ALIVE_CLOSE_MIN, "closed after {after:?}, before the keep alive ran out");
    broker.stop().await;
}

#[tokio::test]
async fn keep_alive_expiry_closes_silent_client_v5() {
    let broker = TestBroker::start().await;
    let mut connect = raw::connect_v5("silent");
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect_v5(broker.addr(), connect, None).await;
    let connected = Instant::now();

    let reason = client.expect_close_reason_v5(KEEP_ALIVE_CLOSE_MAX).await;
    let after = connected.elapsed();
    assert!(after >= KEEP_ALIVE_CLOSE_MIN, "closed after {after:?}, before the keep alive ran out");
    if let Some(reason) = reason {
        assert_eq!(reason, v5::DisconnectReasonCode::KeepAliveTimeout);
    }
    broker.stop().await;
}

/// A client that pings within its keep alive stays connected past 1.5 x keep alive.
#[tokio::test]
async fn pings_keep_connection_alive_v311() {
    let broker = TestBroker::start().await;
    let mut connect = raw::connect_v4("pinger");
    connect.keep_alive = 1;
    let (mut client, _) = RawClient::connect_v4(broker.addr(), connect).await;
    for _ in 0..5 {
        client.send_v4(&v4::Packet::PingReq).await;
        assert_eq!(client.recv_v4(WAIT).await, v4::Packet::PingResp);
        // Pacing the pings is the test: half the keep alive, five times (2.5 s in all).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    client.send_v4(&v4::Packet::PingReq).await;
    assert_eq!(client.recv_v4(WAIT).await, v4::Packet::PingResp);
    broker.stop().await;
}

/// A TCP connection that never sends CONNECT is closed after `[mqtt] connect_timeout`.
#[tokio::test]
async fn connection_without_connect_closed_after_connect_timeout() {
    let broker = TestBroker::start_with("[mqtt]\nconnect_timeout = \"1s\"\n").await;
    let mut client = RawClient::connect(broker.addr()).await;
    let opened = Instant::now();

    let sent = client.expect_close(Duration::from_secs(4)).await;
    let after = opened.elapsed();
    assert!(sent.is_empty(), "no CONNACK without CONNECT: {sent:02x?}");
    assert!(after >= Duration::from_millis(900), "closed after {after:?}, before the 1 s connect timeout");
    broker.stop().await;
}

const QUEUE_LIMIT: usize = 10;
const PUBLISHED_WHILE_AWAY: usize = 50;

/// Checks what a session with a queue limit of 10 got of 50 messages sent while it was away:
/// at most 10, in publish order, none twice, and the broker's drop count makes up the rest.
fn assert_queue_bounded(broker: &TestBroker, indices: &[usize]) {
    assert!(
        (1..=QUEUE_LIMIT).contains(&indices.len()),
        "{} delivered of {PUBLISHED_WHILE_AWAY} with a queue limit of {QUEUE_LIMIT}: {indices:?}",
        indices.len()
    );
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "in publish order, none twice: {indices:?}");
    assert_eq!(broker.queue_drops() as usize, PUBLISHED_WHILE_AWAY - indices.len(), "queue drops counted");
}

fn index(payload: &[u8]) -> usize {
    String::from_utf8_lossy(payload).parse().expect("payload is an index")
}

#[tokio::test]
async fn offline_queue_bounded_by_max_queued_messages_v311() {
    let broker = TestBroker::start_with("[limits]\nmax_queued_messages = 10\n").await;
    let mut sub = Client311::connect_persistent(broker.addr(), "away").await;
    sub.subscribe("q/t", mqtt311::qos(1)).await;
    sub.disconnect().await;

    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    for i in 0..PUBLISHED_WHILE_AWAY {
        publisher.publish("q/t", mqtt311::qos(1), false, i.to_string()).await;
    }

    let mut sub = Client311::connect_persistent(broker.addr(), "away").await;
    let got: Vec<usize> = sub.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_queue_bounded(&broker, &got);
    broker.stop().await;
}

#[tokio::test]
async fn offline_queue_bounded_by_max_queued_messages_v5() {
    let broker = TestBroker::start_with("[limits]\nmax_queued_messages = 10\n").await;
    let mut sub = Client5::connect_persistent(broker.addr(), "away", true, 60).await;
    sub.subscribe("q/t", mqtt5::qos(1)).await;
    sub.disconnect().await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for i in 0..PUBLISHED_WHILE_AWAY {
        publisher.publish("q/t", mqtt5::qos(1), false, i.to_string()).await;
    }

    let mut sub = Client5::connect_persistent(broker.addr(), "away", false, 60).await;
    let got: Vec<usize> = sub.collect_publishes(QUIET, WAIT).await.iter().map(|p| index(&p.payload)).collect();
    assert_queue_bounded(&broker, &got);
    broker.stop().await;
}

const FLOOD: usize = 20_000;
const FLOOD_PAYLOAD: usize = 512;
const FLOOD_DEADLINE: Duration = Duration::from_secs(20);
/// The publisher sends this many, then waits for the normal subscriber to have them all.
/// Kept well under the default queue limit (1000) so a lagging-but-healthy subscriber is
/// never legitimately dropped QoS 0 messages, while the stuck one overflows many times over.
const FLOOD_BATCH: usize = 500;

/// A subscriber that never reads its socket (a 4 KiB receive buffer, so it is stuck after a
/// few messages) must not slow the publisher or a normal subscriber on the same topic: the
/// normal one gets all 20,000 messages (10 MB) in time, in order, none lost.
#[tokio::test]
async fn slow_subscriber_does_not_hold_up_others() {
    let broker = TestBroker::start().await;
    let mut stuck = RawClient::connect_with_recv_buffer(broker.addr(), 4096).await;
    stuck.send_v4(&v4::Packet::Connect(raw::connect_v4("stuck"))).await;
    assert!(matches!(stuck.recv_v4(WAIT).await, v4::Packet::ConnAck(_)));
    stuck.send_v4(&raw::subscribe_v4(1, "flood/t", mqtt311::qos(0))).await;
    assert!(matches!(stuck.recv_v4(WAIT).await, v4::Packet::SubAck(_)));
    // From here on `stuck` never reads again.

    let mut fast = Client311::connect(broker.addr(), "fast").await;
    fast.subscribe("flood/t", mqtt311::qos(0)).await;
    let mut publisher = Client311::connect(broker.addr(), "pub").await;

    let deadline = Instant::now() + FLOOD_DEADLINE;
    let mut payload = vec![b'x'; FLOOD_PAYLOAD];
    for batch in (0..FLOOD).step_by(FLOOD_BATCH) {
        for i in batch..batch + FLOOD_BATCH {
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            publisher.publish("flood/t", mqtt311::qos(0), false, payload.clone()).await;
        }
        for i in batch..batch + FLOOD_BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(p) = fast.recv_publish(left).await else {
                panic!("fast subscriber got only {i} of {FLOOD} messages in {FLOOD_DEADLINE:?}");
            };
            let n = u64::from_be_bytes(p.payload[..8].try_into().expect("8-byte index"));
            assert_eq!(n, i as u64, "in order, none lost");
        }
    }
    // The stuck subscriber costs bounded memory: its queue never exceeds the limit, and what
    // did not fit was dropped and counted (10 MB were published; socket buffers hold far less).
    let limit = broker.broker().settings().max_queued_messages;
    let queued = broker.broker().queue_len(&"stuck".into()).expect("stuck session exists");
    assert!(queued <= limit, "stuck session holds {queued} queued messages, limit {limit}");
    assert!(broker.queue_drops() > 0, "overflow of the stuck session was counted");
    drop(stuck);
    broker.stop().await;
}
