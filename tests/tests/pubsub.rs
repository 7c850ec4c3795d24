//! Publish/subscribe routing: delivery, `+` and `#` matching, `$` topics, unsubscribe, and
//! delivery across protocol versions (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7).

use std::net::SocketAddr;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::{QUIET, TestBroker, WAIT};

/// Subscribes (3.1.1) to `filter`, publishes each topic at QoS 1 (acked, so the broker has
/// routed it) and returns the topics the subscriber received, in order. Absence of the rest
/// is checked by waiting [`QUIET`] after the last message.
async fn topics_received_v311(addr: SocketAddr, filter: &str, publish: &[&str]) -> Vec<String> {
    let mut sub = Client311::connect(addr, &format!("sub {filter}")).await;
    sub.subscribe(filter, mqtt311::qos(1)).await;
    let mut publisher = Client311::connect(addr, &format!("pub {filter}")).await;
    for topic in publish {
        publisher.publish(topic, mqtt311::qos(1), false, topic.as_bytes()).await;
    }
    let got = sub.collect_publishes(QUIET, WAIT).await;
    got.into_iter().map(|p| p.topic).collect()
}

/// [`topics_received_v311`] for MQTT 5.0.
async fn topics_received_v5(addr: SocketAddr, filter: &str, publish: &[&str]) -> Vec<String> {
    let mut sub = Client5::connect(addr, &format!("sub {filter}")).await;
    sub.subscribe(filter, mqtt5::qos(1)).await;
    let mut publisher = Client5::connect(addr, &format!("pub {filter}")).await;
    for topic in publish {
        publisher.publish(topic, mqtt5::qos(1), false, topic.as_bytes()).await;
    }
    let got = sub.collect_publishes(QUIET, WAIT).await;
    got.into_iter().map(|p| String::from_utf8_lossy(&p.topic).into_owned()).collect()
}

#[tokio::test]
async fn publish_reaches_subscriber_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("t/1", mqtt311::qos(0)).await;
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("t/1", mqtt311::qos(0), false, "hello").await;

    let got = sub.expect_publish(WAIT).await;
    assert_eq!(got.topic, "t/1");
    assert_eq!(&got.payload[..], b"hello");
    assert!(!got.retain);
    broker.stop().await;
}

#[tokio::test]
async fn publish_reaches_subscriber_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("t/1", mqtt5::qos(0)).await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("t/1", mqtt5::qos(0), false, "hello").await;

    let got = sub.expect_publish(WAIT).await;
    assert_eq!(&got.topic[..], b"t/1");
    assert_eq!(&got.payload[..], b"hello");
    assert!(!got.retain);
    broker.stop().await;
}

#[tokio::test]
async fn delivery_across_protocol_versions() {
    let broker = TestBroker::start().await;
    let mut sub311 = Client311::connect(broker.addr(), "sub311").await;
    sub311.subscribe("x/#", mqtt311::qos(1)).await;
    let mut sub5 = Client5::connect(broker.addr(), "sub5").await;
    sub5.subscribe("x/#", mqtt5::qos(1)).await;

    let mut pub311 = Client311::connect(broker.addr(), "pub311").await;
    pub311.publish("x/from311", mqtt311::qos(1), false, "a").await;
    let mut pub5 = Client5::connect(broker.addr(), "pub5").await;
    pub5.publish("x/from5", mqtt5::qos(1), false, "b").await;

    for expected in ["x/from311", "x/from5"] {
        assert_eq!(sub311.expect_publish(WAIT).await.topic, expected);
        assert_eq!(&sub5.expect_publish(WAIT).await.topic[..], expected.as_bytes());
    }
    broker.stop().await;
}

const PLUS_TOPICS: &[&str] = &["a/b/c", "a/b/c/d", "a/c", "a//c", "x/b/c", "a/b"];
const PLUS_MATCHES: &[&str] = &["a/b/c", "a//c"];

#[tokio::test]
async fn plus_matches_exactly_one_level_v311() {
    let broker = TestBroker::start().await;
    assert_eq!(topics_received_v311(broker.addr(), "a/+/c", PLUS_TOPICS).await, PLUS_MATCHES);
    broker.stop().await;
}

#[tokio::test]
async fn plus_matches_exactly_one_level_v5() {
    let broker = TestBroker::start().await;
    assert_eq!(topics_received_v5(broker.addr(), "a/+/c", PLUS_TOPICS).await, PLUS_MATCHES);
    broker.stop().await;
}

// `a/#` also matches the parent `a` (MQTT 3.1.1 §4.7.1.2).
const HASH_TOPICS: &[&str] = &["a", "a/b", "a/b/c", "ab", "b/a", "/a"];
const HASH_MATCHES: &[&str] = &["a", "a/b", "a/b/c"];

#[tokio::test]
async fn hash_matches_parent_and_all_descendants_v311() {
    let broker = TestBroker::start().await;
    assert_eq!(topics_received_v311(broker.addr(), "a/#", HASH_TOPICS).await, HASH_MATCHES);
    broker.stop().await;
}

#[tokio::test]
async fn hash_matches_parent_and_all_descendants_v5() {
    let broker = TestBroker::start().await;
    assert_eq!(topics_received_v5(broker.addr(), "a/#", HASH_TOPICS).await, HASH_MATCHES);
    broker.stop().await;
}

/// Topics starting with `$` are not matched by a filter starting with a wildcard, but are by
/// one naming the `$` level (MQTT 3.1.1 §4.7.2, MQTT 5.0 §4.7.2).
const DOLLAR_TOPICS: &[&str] = &["$foo/x", "foo/x"];

#[tokio::test]
async fn dollar_topics_skip_leading_wildcards_v311() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    assert_eq!(topics_received_v311(addr, "#", DOLLAR_TOPICS).await, ["foo/x"]);
    assert_eq!(topics_received_v311(addr, "+/x", DOLLAR_TOPICS).await, ["foo/x"]);
    assert_eq!(topics_received_v311(addr, "$foo/#", DOLLAR_TOPICS).await, ["$foo/x"]);
    assert_eq!(topics_received_v311(addr, "$foo/+", DOLLAR_TOPICS).await, ["$foo/x"]);
    broker.stop().await;
}

#[tokio::test]
async fn dollar_topics_skip_leading_wildcards_v5() {
    let broker = TestBroker::start().await;
    let addr = broker.addr();
    assert_eq!(topics_received_v5(addr, "#", DOLLAR_TOPICS).await, ["foo/x"]);
    assert_eq!(topics_received_v5(addr, "+/x", DOLLAR_TOPICS).await, ["foo/x"]);
    assert_eq!(topics_received_v5(addr, "$foo/#", DOLLAR_TOPICS).await, ["$foo/x"]);
    assert_eq!(topics_received_v5(addr, "$foo/+", DOLLAR_TOPICS).await, ["$foo/x"]);
    broker.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("u/1", mqtt311::qos(1)).await;
    sub.subscribe("u/2", mqtt311::qos(1)).await;
    sub.unsubscribe("u/1").await;
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("u/1", mqtt311::qos(1), false, "gone").await;
    publisher.publish("u/2", mqtt311::qos(1), false, "kept").await;

    // u/1 was routed before u/2 by the same publisher, so had it been delivered it would
    // arrive first; the short quiet wait covers a broker that reorders across topics.
    assert_eq!(sub.expect_publish(WAIT).await.topic, "u/2");
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("u/1", mqtt5::qos(1)).await;
    sub.subscribe("u/2", mqtt5::qos(1)).await;
    sub.unsubscribe("u/1").await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("u/1", mqtt5::qos(1), false, "gone").await;
    publisher.publish("u/2", mqtt5::qos(1), false, "kept").await;

    assert_eq!(&sub.expect_publish(WAIT).await.topic[..], b"u/2");
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}
