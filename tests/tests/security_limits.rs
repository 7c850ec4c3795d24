//! Flood control (issue 10): a connection flood is held to `max_conn_rate` while an existing
//! client keeps working; a client over its bytes rate is throttled, not disconnected (or
//! disconnected with 0x97 when configured); MQTT-SN per-peer and new-peer datagram rates.
//! Every limit shows in the metrics.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use roost_core::metrics::Limited;
use roost_e2e::mqtt311::{Client311, qos};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One flood connection: CONNECT, and true if a CONNACK came back within a second.
async fn flood_one(addr: std::net::SocketAddr, i: usize) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await else {
        return false;
    };
    let bytes = raw::encode_v4(&v4::Packet::Connect(raw::connect_v4(&format!("flood-{i}"))));
    if s.write_all(&bytes).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await, Ok(Ok(_)) if buf[0] == 0x20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_connect_flood_is_held_to_max_conn_rate_while_a_client_works() {
    const RATE: usize = 100;
    let broker =
        TestBroker::start_with(&format!("[mqtt]\nmax_conn_rate = {RATE}\n[node]\nsys_interval = \"0s\"\n")).await;
    let addr = broker.addr();
    let mut steady = Client311::connect(addr, "steady").await;
    steady.subscribe("steady/#", qos(1)).await;

    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let flood = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            // 3,000 connects, 300 at a time, as fast as this machine makes them.
            let sem = Arc::new(tokio::sync::Semaphore::new(300));
            let mut tasks = Vec::new();
            for i in 0..3000 {
                let permit = sem.clone().acquire_owned().await.unwrap();
                let accepted = accepted.clone();
                tasks.push(tokio::spawn(async move {
                    if flood_one(addr, i).await {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    // The existing client keeps its round trips while the flood runs.
    let mut round_trips = 0;
    while !flood.is_finished() {
        steady.publish("steady/ping", qos(1), false, "p").await;
        let p = steady.expect_publish(WAIT).await;
        assert_eq!(p.topic, "steady/ping");
        round_trips += 1;
    }
    flood.await.unwrap();
    let elapsed = started.elapsed();
    let accepted = accepted.load(Ordering::Relaxed);
    let limited = broker.broker().metrics().snapshot().limited(Limited::ConnRate);
    // The bucket holds one second's worth and refills at RATE per second.
    let allowed = RATE + (elapsed.as_secs_f64() * RATE as f64).ceil() as usize;
    println!(
        "flood: 3000 connects in {elapsed:?} ({:.0}/s), {accepted} accepted (bound {allowed}), {limited} closed at accept, {round_trips} round trips meanwhile",
        3000.0 / elapsed.as_secs_f64()
    );
    assert!(accepted <= allowed, "{accepted} connects accepted in {elapsed:?}, bound {allowed}");
    assert!(accepted >= RATE / 2, "the rate admits some: {accepted}");
    assert!(limited as usize >= 3000 - allowed, "closed at accept: {limited}");
    assert!(round_trips >= 1);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_bytes_rate_throttles_without_disconnecting() {
    let broker = TestBroker::start_with("[mqtt]\nrate_limit = \"20KB/s\"\n").await;
    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("bulk/#", qos(0)).await;
    let mut publisher = Client311::connect(broker.addr(), "bulk").await;
    let started = Instant::now();
    // 60 KB against 20 KB/s with a 20 KB burst: at least ~2 s of reading.
    for i in 0..60 {
        publisher.publish(&format!("bulk/{i}"), qos(0), false, vec![b'x'; 1000]).await;
    }
    let mut got = 0;
    while got < 60 {
        sub.expect_publish(Duration::from_secs(10)).await;
        got += 1;
    }
    let elapsed = started.elapsed();
    println!("60 KB through a 20KB/s limit in {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(1500), "not throttled: {elapsed:?}");
    assert!(broker.broker().metrics().snapshot().limited(Limited::BytesRate) > 0);
    // Still connected: a QoS 1 round trip works.
    publisher.publish("bulk/last", qos(1), false, "x").await;
    broker.stop().await;

    // rate_limit_action = "disconnect": the client is told 0x97 and closed.
    let broker = TestBroker::start_with("[mqtt]\nrate_limit = \"2KB/s\"\nrate_limit_action = \"disconnect\"\n").await;
    let (mut c, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5("greedy"), None).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);
    let p = v5::Publish::new("t", rumqttc::v5::mqttbytes::QoS::AtMostOnce, vec![b'x'; 5000], None);
    c.send_v5(&v5::Packet::Publish(p)).await;
    let d = c.expect_close_v5(WAIT).await.expect("DISCONNECT before close");
    assert_eq!(d.reason_code, v5::DisconnectReasonCode::QuotaExceeded);
    broker.stop().await;
}

#[tokio::test]
async fn security_mqttsn_peer_packet_rate_and_new_peer_cap() {
    let broker = TestBroker::start_with("[mqttsn]\npeer_packet_rate = 10\nnew_peers_rate = 5\n").await;
    let gw = broker.mqttsn_addr();
    let searchgw = [0x03u8, 0x01, 0x00];
    // One peer sends 100 SEARCHGW at once: about 10 are answered (GWINFO), the rest dropped.
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..100 {
        peer.send_to(&searchgw, gw).await.unwrap();
    }
    let mut answers = 0;
    let mut buf = [0u8; 64];
    while let Ok(Ok((n, _))) = tokio::time::timeout(roost_e2e::QUIET, peer.recv_from(&mut buf)).await {
        if n >= 2 && buf[1] == 0x02 {
            answers += 1;
        }
    }
    let m = broker.broker().metrics().snapshot();
    println!("one peer: {answers} of 100 answered; limited {:?}", m.limited);
    assert!((1..=20).contains(&answers), "{answers} answered");
    // The new-peer cap (5/s) took its share before the per-peer rate saw them.
    assert!(m.limited(Limited::PeerPacketRate) + m.limited(Limited::NewPeerRate) >= 80);

    // 40 new peers at once: about 5 (one second's worth) are taken on.
    let mut sockets = Vec::new();
    for _ in 0..40 {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&searchgw, gw).await.unwrap();
        sockets.push(s);
    }
    let mut answered = 0;
    for s in &sockets {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), s.recv_from(&mut buf)).await {
            answered += 1;
        }
    }
    println!("40 new peers: {answered} answered");
    assert!(answered <= 10, "{answered} new peers answered");
    assert!(broker.broker().metrics().snapshot().limited(Limited::NewPeerRate) >= 30);
    broker.stop().await;
}

#[tokio::test]
async fn security_listener_max_connections_and_messages_rate() {
    let broker = TestBroker::start_with("[mqtt]\nmax_connections = 2\nmessages_rate = \"10/s\"\n").await;
    let addr = broker.addr();
    let (mut a, _) = RawClient::connect_v4(addr, raw::connect_v4("a")).await;
    let (_b, _) = RawClient::connect_v4(addr, raw::connect_v4("b")).await;
    // The third is closed at accept: no CONNACK.
    let mut c = RawClient::connect(addr).await;
    c.send_bytes(&raw::encode_v4(&v4::Packet::Connect(raw::connect_v4("c")))).await.ok();
    c.expect_close(WAIT).await;
    assert_eq!(broker.broker().metrics().snapshot().limited(Limited::MaxConnections), 1);
    // 30 QoS 1 publishes against 10/s (a 10-message burst): throttled, all acknowledged.
    let started = Instant::now();
    for i in 1..=30u16 {
        let mut p = v4::Publish::new("m", rumqttc::QoS::AtLeastOnce, "x");
        p.pkid = i;
        a.send_v4(&v4::Packet::Publish(p)).await;
    }
    let mut acks = 0;
    while acks < 30 {
        if let v4::Packet::PubAck(_) = a.recv_v4(Duration::from_secs(5)).await {
            acks += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1500), "30 messages at 10/s took {elapsed:?}");
    assert!(broker.broker().metrics().snapshot().limited(Limited::MessageRate) > 0);
    broker.stop().await;
}
