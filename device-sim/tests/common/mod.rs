//! Shared by the roost-sim tests: Roost in-process on 127.0.0.1:0, and bounded waits.
#![allow(clippy::expect_used, clippy::panic)] // test support: a failed expectation is the test failing
#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use roost::gateway::Gateway;

pub async fn start_roost(config: &str) -> Gateway {
    let mut settings = roost::config::parse(config).expect("test config");
    settings.mqtt.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
    // Tests run side by side in one directory: keep state in memory, not in ./data.
    settings.storage.disk = false;
    settings.mqttsn.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
    settings.lorawan.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
    settings.lwm2m.bind = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
    settings.coap.bind = Vec::new();
    settings.http_bind = Vec::new();
    roost::gateway::start(settings).await.expect("gateway starts")
}

/// Awaits `f`, failing the test with `what` if it takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs}s waiting for {what}"),
    }
}
