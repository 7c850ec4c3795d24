//! The reference command-line clients against the broker: `mosquitto_sub -t 'a/#' -v` sees
//! what `mosquitto_pub -t a/b -m hi` sends, for both protocol versions and every QoS, and the
//! delivered QoS is the one both sides asked for.

use roost_e2e::cli::{self, Sub, Version};
use roost_e2e::{TestBroker, WAIT};

async fn pub_sub_roundtrip(version: Version, qos: u8) {
    let broker = TestBroker::start().await;
    let mut sub = Sub::start(broker.port(), version, "a/#", qos, 1).await;

    cli::publish(broker.port(), version, "a/b", "hi", qos).await;

    let received = sub.expect_message(WAIT).await;
    assert_eq!(received.line, "a/b hi");
    assert_eq!(received.qos(), qos, "delivered QoS ({})", received.debug);
    sub.expect_exit().await;
    broker.stop().await;
}

#[tokio::test]
async fn cli_v311_qos0() {
    pub_sub_roundtrip(Version::V311, 0).await;
}

#[tokio::test]
async fn cli_v311_qos1() {
    pub_sub_roundtrip(Version::V311, 1).await;
}

#[tokio::test]
async fn cli_v311_qos2() {
    pub_sub_roundtrip(Version::V311, 2).await;
}

#[tokio::test]
async fn cli_v5_qos0() {
    pub_sub_roundtrip(Version::V5, 0).await;
}

#[tokio::test]
async fn cli_v5_qos1() {
    pub_sub_roundtrip(Version::V5, 1).await;
}

#[tokio::test]
async fn cli_v5_qos2() {
    pub_sub_roundtrip(Version::V5, 2).await;
}
