//! The device simulator against the real UDP driver and an in-process broker: every publish
//! of a bounded fleet reaches an MQTT-side subscriber, at each QoS and with sleepy devices.
//! (The 20,000-device run is `roost-sim mqtt-sn --mqtt ... --roost-pid ...`, see docs/benchmarks.md.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use roost_core::settings::BrokerSettings;
use roost_core::{Broker, ClientId, ConnectRequest, Delivery, Protocol, QoS, SubOptions};
use roost_mqttsn::codec::SnQos;
use roost_mqttsn::session::Context;
use roost_mqttsn::settings::MqttSnSettings;
use roost_mqttsn::sim::{SimConfig, run};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

async fn fleet(devices: usize, publishes: u64, qos: SnQos, sleep: Option<Duration>) {
    let broker = Broker::new(BrokerSettings { max_queued_messages: 100_000, ..BrokerSettings::default() });
    let settings = MqttSnSettings { predefined: vec![(1, "sim/predefined".into())], ..MqttSnSettings::default() };
    let ctx = Context::new(broker.clone(), settings);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let gateway = socket.local_addr().unwrap();
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(roost_mqttsn::driver::serve(socket, ctx.clone(), shutdown.clone(), tracker.clone()));

    let sub = broker
        .connect(ConnectRequest {
            client_id: ClientId::new("collector"),
            protocol: Protocol::Mqtt,
            peer: None,
            username: None,
            password: None,
            clean_start: true,
            keep_alive: 0,
            will: None,
            session_expiry: Some(Duration::ZERO),
            receive_maximum: 1000,
        })
        .await
        .unwrap();
    sub.subscribe("sim/#", SubOptions { qos: QoS::AtMostOnce, ..Default::default() }).await.unwrap();
    let expected = devices as u64 * publishes;
    let collector = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while (seen.len() as u64) < expected {
            match tokio::time::timeout(Duration::from_secs(20), sub.next_delivery()).await {
                Ok(Delivery::Publish { pending, .. }) => {
                    seen.insert(pending.message.payload.clone());
                }
                _ => break,
            }
        }
        seen.len() as u64
    });

    let cfg = SimConfig {
        gateway,
        devices,
        publishes,
        qos,
        sleep,
        period: Duration::from_millis(500),
        connect_rate: 1000,
        ..SimConfig::default()
    };
    let stats = run(cfg).await;
    let received = collector.await.unwrap();
    assert_eq!(stats.published.load(Relaxed), expected);
    assert_eq!(stats.finished.load(Relaxed), devices as u64);
    assert_eq!(stats.timed_out.load(Relaxed) + stats.rejected.load(Relaxed), 0);
    if matches!(qos, SnQos::AtLeastOnce | SnQos::ExactlyOnce) {
        assert_eq!(stats.acknowledged.load(Relaxed), expected);
    }
    assert_eq!(received, expected, "every publish reached the MQTT subscriber once");
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    assert_eq!(ctx.counters.malformed.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_fleet_qos1() {
    fleet(300, 3, SnQos::AtLeastOnce, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_fleet_qos2_qos0_and_minus_one() {
    fleet(100, 2, SnQos::ExactlyOnce, None).await;
    fleet(100, 2, SnQos::AtMostOnce, None).await;
    fleet(100, 2, SnQos::MinusOne, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_fleet_sleepy_devices() {
    fleet(100, 3, SnQos::AtLeastOnce, Some(Duration::from_secs(2))).await;
}
