//! Retained messages: stored per topic, sent on subscribe with RETAIN = 1, cleared by an
//! empty retained publish; live forwarding clears RETAIN unless v5 Retain As Published; v5
//! Retain Handling 0/1/2 (MQTT 3.1.1 §3.3.1.3, MQTT 5.0 §3.3.1.3, §3.8.3.1).

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::v5::mqttbytes::v5::{Filter, RetainForwardRule};

#[tokio::test]
async fn retained_message_sent_on_subscribe_v311() {
    let broker = TestBroker::start().await;
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt311::qos(1), true, "kept").await;

    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("r/#", mqtt311::qos(1)).await;
    let got = sub.expect_publish(WAIT).await;
    assert_eq!((got.topic.as_str(), &got.payload[..], got.retain), ("r/a", &b"kept"[..], true));
    broker.stop().await;
}

#[tokio::test]
async fn retained_message_sent_on_subscribe_v5() {
    let broker = TestBroker::start().await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "kept").await;

    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("r/#", mqtt5::qos(1)).await;
    let got = sub.expect_publish(WAIT).await;
    assert_eq!((&got.topic[..], &got.payload[..], got.retain), (&b"r/a"[..], &b"kept"[..], true));
    broker.stop().await;
}

#[tokio::test]
async fn empty_retained_publish_clears_retained_v311() {
    let broker = TestBroker::start().await;
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt311::qos(1), true, "kept").await;
    publisher.publish("r/a", mqtt311::qos(1), true, "").await;

    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("r/#", mqtt311::qos(1)).await;
    sub.assert_no_publish(QUIET).await; // retained messages are sent right after SUBACK
    broker.stop().await;
}

#[tokio::test]
async fn empty_retained_publish_clears_retained_v5() {
    let broker = TestBroker::start().await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "kept").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "").await;

    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("r/#", mqtt5::qos(1)).await;
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

/// A retained publish forwarded to an existing subscription has RETAIN = 0 in 3.1.1.
#[tokio::test]
async fn live_forwarded_retained_message_has_retain_cleared_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("r/#", mqtt311::qos(1)).await;
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt311::qos(1), true, "live").await;

    let got = sub.expect_publish(WAIT).await;
    assert_eq!(&got.payload[..], b"live");
    assert!(!got.retain, "live forwarding must clear RETAIN");
    broker.stop().await;
}

/// v5: RETAIN as published for a subscription with Retain As Published, cleared without.
#[tokio::test]
async fn retain_as_published_v5() {
    let broker = TestBroker::start().await;
    let mut plain = Client5::connect(broker.addr(), "plain").await;
    plain.subscribe("r/#", mqtt5::qos(1)).await;
    let mut rap = Client5::connect(broker.addr(), "rap").await;
    let mut filter = Filter::new("r/#", mqtt5::qos(1));
    filter.preserve_retain = true;
    rap.subscribe_with(filter, None).await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "live").await;
    publisher.publish("r/b", mqtt5::qos(1), false, "not retained").await;

    let got = plain.expect_publish(WAIT).await;
    assert!(!got.retain, "without Retain As Published, live forwarding clears RETAIN");
    let got = rap.expect_publish(WAIT).await;
    assert!(got.retain, "with Retain As Published, RETAIN is kept");
    let got = rap.expect_publish(WAIT).await;
    assert!(!got.retain, "a non-retained publish stays non-retained");
    broker.stop().await;
}

fn retain_handling(rule: RetainForwardRule) -> Filter {
    let mut filter = Filter::new("r/#", mqtt5::qos(1));
    filter.retain_forward_rule = rule;
    filter
}

/// Retain Handling 0: retained messages on every SUBSCRIBE, repeated ones included.
#[tokio::test]
async fn retain_handling_0_sends_on_every_subscribe_v5() {
    let broker = TestBroker::start().await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "kept").await;

    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe_with(retain_handling(RetainForwardRule::OnEverySubscribe), None).await;
    assert!(sub.expect_publish(WAIT).await.retain);
    sub.subscribe_with(retain_handling(RetainForwardRule::OnEverySubscribe), None).await;
    assert!(sub.expect_publish(WAIT).await.retain);
    broker.stop().await;
}

/// Retain Handling 1: retained messages only if the subscription did not exist yet.
#[tokio::test]
async fn retain_handling_1_sends_on_new_subscription_only_v5() {
    let broker = TestBroker::start().await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "kept").await;

    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe_with(retain_handling(RetainForwardRule::OnNewSubscribe), None).await;
    assert!(sub.expect_publish(WAIT).await.retain);
    sub.subscribe_with(retain_handling(RetainForwardRule::OnNewSubscribe), None).await;
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

/// Retain Handling 2: no retained messages at subscribe time; live messages still flow.
#[tokio::test]
async fn retain_handling_2_never_sends_retained_v5() {
    let broker = TestBroker::start().await;
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/a", mqtt5::qos(1), true, "kept").await;

    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe_with(retain_handling(RetainForwardRule::Never), None).await;
    sub.assert_no_publish(QUIET).await;
    publisher.publish("r/a", mqtt5::qos(1), false, "live").await;
    assert_eq!(&sub.expect_publish(WAIT).await.payload[..], b"live");
    broker.stop().await;
}
