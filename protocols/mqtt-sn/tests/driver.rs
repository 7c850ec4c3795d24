//! The UDP driver on its own: IPv6 sockets and ADVERTISE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use roost_core::Broker;
use roost_core::settings::BrokerSettings;
use roost_mqttsn::codec::{self, Message, SnQos};
use roost_mqttsn::session::Context;
use roost_mqttsn::settings::MqttSnSettings;
use roost_mqttsn::sim::{SimConfig, run};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn start(settings: MqttSnSettings, bind: &str) -> (SocketAddr, CancellationToken, TaskTracker) {
    let ctx = Context::new(Broker::new(BrokerSettings::default()), settings);
    let socket = roost_mqttsn::driver::bind(&[bind.parse().unwrap()], 0).unwrap().remove(0);
    let addr = socket.local_addr().unwrap();
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(roost_mqttsn::driver::serve(socket, ctx, shutdown.clone(), tracker.clone()));
    (addr, shutdown, tracker)
}

#[tokio::test]
async fn ipv6_devices_connect_and_publish() {
    let (gateway, shutdown, _t) = start(MqttSnSettings::default(), "[::1]:0");
    let cfg = SimConfig {
        gateway,
        devices: 20,
        publishes: 2,
        qos: SnQos::AtLeastOnce,
        period: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let stats = run(cfg).await;
    assert_eq!(stats.acknowledged.load(Relaxed), 40);
    shutdown.cancel();
}

#[tokio::test]
async fn advertise_goes_to_the_configured_address() {
    let listener = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let settings = MqttSnSettings {
        gateway_id: 9,
        advertise_interval: Some(Duration::from_secs(900)),
        advertise_address: listener.local_addr().unwrap(),
        ..MqttSnSettings::default()
    };
    let (_addr, shutdown, _t) = start(settings, "127.0.0.1:0");
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), listener.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(
        codec::decode(&Bytes::copy_from_slice(&buf[..n])).unwrap(),
        Message::Advertise { gw_id: 9, duration: 900 }
    );
    shutdown.cancel();
}
