//! `$SYS/brokers/{node}/...`: statistics and client events, as a subscriber sees them.

use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::{TestBroker, WAIT};

#[tokio::test]
async fn sys_topics_show_stats_and_client_events() {
    let broker = TestBroker::start_with("[node]\nname = \"edge-1\"\nsys_interval = \"1s\"\n").await;
    let mut admin = Client5::connect(broker.addr(), "admin").await;
    admin.subscribe("$SYS/brokers/edge-1/#", mqtt5::qos(0)).await;

    // A device comes and goes: both events, naming its protocol.
    let device = Client5::connect(broker.addr(), "dev-7").await;
    device.disconnect().await;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut version = None;
    let mut connections = None;
    while tokio::time::Instant::now() < deadline && (seen.len() < 2 || version.is_none() || connections.is_none()) {
        let Some(p) = admin.recv_publish(WAIT).await else { break };
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let body = String::from_utf8_lossy(&p.payload).into_owned();
        match topic.as_str() {
            "$SYS/brokers/edge-1/clients/dev-7/connected" | "$SYS/brokers/edge-1/clients/dev-7/disconnected" => {
                assert!(
                    body.contains("\"clientid\":\"dev-7\"") && body.contains("\"protocol\":\"mqtt\""),
                    "{topic}: {body}"
                );
                seen.push(topic);
            }
            "$SYS/brokers/edge-1/version" => version = Some(body),
            // The retained value may predate the admin; a later tick counts it.
            "$SYS/brokers/edge-1/stats/connections/count" if body.parse::<u64>().is_ok_and(|n| n >= 1) => {
                connections = Some(body)
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["$SYS/brokers/edge-1/clients/dev-7/connected", "$SYS/brokers/edge-1/clients/dev-7/disconnected"]);
    assert!(version.expect("version published").starts_with("roost "));
    let n: u64 = connections.expect("connection count published").parse().expect("a number");
    assert!(n >= 1, "the admin itself is connected");
}
