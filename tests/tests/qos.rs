//! QoS 0/1/2 in both directions with the right acknowledgements, exactly-once for QoS 2, and
//! delivery at the lower of the publish and subscription QoS (MQTT 3.1.1 §4.3, MQTT 5.0 §4.3).

use std::collections::BTreeMap;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

#[tokio::test]
async fn delivered_qos_is_min_of_publish_and_subscription_v311() {
    let broker = TestBroker::start().await;
    let mut subs = Vec::new();
    for sub_qos in 0..=2u8 {
        let mut sub = Client311::connect(broker.addr(), &format!("sub{sub_qos}")).await;
        sub.subscribe("q/#", mqtt311::qos(sub_qos)).await;
        subs.push((sub_qos, sub));
    }
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    for pub_qos in 0..=2u8 {
        publisher.publish(&format!("q/{pub_qos}"), mqtt311::qos(pub_qos), false, "m").await;
    }

    for (sub_qos, sub) in &mut subs {
        let mut delivered = BTreeMap::new();
        for _ in 0..3 {
            let p = sub.expect_publish(WAIT).await;
            delivered.insert(p.topic.clone(), p.qos as u8);
        }
        for pub_qos in 0..=2u8 {
            let topic = format!("q/{pub_qos}");
            assert_eq!(delivered.get(&topic), Some(&pub_qos.min(*sub_qos)), "sub QoS {sub_qos}, {topic}");
        }
        sub.assert_no_publish(QUIET).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn delivered_qos_is_min_of_publish_and_subscription_v5() {
    let broker = TestBroker::start().await;
    let mut subs = Vec::new();
    for sub_qos in 0..=2u8 {
        let mut sub = Client5::connect(broker.addr(), &format!("sub{sub_qos}")).await;
        sub.subscribe("q/#", mqtt5::qos(sub_qos)).await;
        subs.push((sub_qos, sub));
    }
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for pub_qos in 0..=2u8 {
        publisher.publish(&format!("q/{pub_qos}"), mqtt5::qos(pub_qos), false, "m").await;
    }

    for (sub_qos, sub) in &mut subs {
        let mut delivered = BTreeMap::new();
        for _ in 0..3 {
            let p = sub.expect_publish(WAIT).await;
            delivered.insert(raw::topic_v5(&p), p.qos as u8);
        }
        for pub_qos in 0..=2u8 {
            let topic = format!("q/{pub_qos}");
            assert_eq!(delivered.get(&topic), Some(&pub_qos.min(*sub_qos)), "sub QoS {sub_qos}, {topic}");
        }
        sub.assert_no_publish(QUIET).await;
    }
    broker.stop().await;
}

/// Client to broker: PUBACK for QoS 1; PUBREC, then PUBCOMP after PUBREL, for QoS 2; each
/// with the publisher's packet id.
#[tokio::test]
async fn broker_acks_incoming_qos1_and_qos2_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("ack/#", mqtt311::qos(2)).await;
    let (mut publisher, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("pub")).await;

    let mut p1 = v4::Publish::new("ack/1", mqtt311::qos(1), "one");
    p1.pkid = 10;
    publisher.send_v4(&v4::Packet::Publish(p1)).await;
    assert_eq!(publisher.recv_v4(WAIT).await, v4::Packet::PubAck(v4::PubAck::new(10)));

    let mut p2 = v4::Publish::new("ack/2", mqtt311::qos(2), "two");
    p2.pkid = 11;
    publisher.send_v4(&v4::Packet::Publish(p2)).await;
    assert_eq!(publisher.recv_v4(WAIT).await, v4::Packet::PubRec(v4::PubRec::new(11)));
    publisher.send_v4(&v4::Packet::PubRel(v4::PubRel::new(11))).await;
    assert_eq!(publisher.recv_v4(WAIT).await, v4::Packet::PubComp(v4::PubComp::new(11)));

    let got: Vec<_> = sub.collect_publishes(QUIET, WAIT).await.into_iter().map(|p| (p.topic, p.qos as u8)).collect();
    assert_eq!(got, [("ack/1".to_string(), 1), ("ack/2".to_string(), 2)]);
    broker.stop().await;
}

#[tokio::test]
async fn broker_acks_incoming_qos1_and_qos2_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("ack/#", mqtt5::qos(2)).await;
    let (mut publisher, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("pub"), None).await;

    let mut p1 = v5::Publish::new("ack/1", mqtt5::qos(1), "one", None);
    p1.pkid = 10;
    publisher.send_v5(&v5::Packet::Publish(p1)).await;
    match publisher.recv_v5(WAIT).await {
        v5::Packet::PubAck(ack) => {
            assert_eq!(ack.pkid, 10);
            assert_eq!(ack.reason, v5::PubAckReason::Success);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }

    let mut p2 = v5::Publish::new("ack/2", mqtt5::qos(2), "two", None);
    p2.pkid = 11;
    publisher.send_v5(&v5::Packet::Publish(p2)).await;
    match publisher.recv_v5(WAIT).await {
        v5::Packet::PubRec(rec) => {
            assert_eq!(rec.pkid, 11);
            assert_eq!(rec.reason, v5::PubRecReason::Success);
        }
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publisher.send_v5(&v5::Packet::PubRel(v5::PubRel::new(11, None))).await;
    match publisher.recv_v5(WAIT).await {
        v5::Packet::PubComp(comp) => {
            assert_eq!(comp.pkid, 11);
            assert_eq!(comp.reason, v5::PubCompReason::Success);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }

    let got: Vec<_> =
        sub.collect_publishes(QUIET, WAIT).await.into_iter().map(|p| (raw::topic_v5(&p), p.qos as u8)).collect();
    assert_eq!(got, [("ack/1".to_string(), 1), ("ack/2".to_string(), 2)]);
    broker.stop().await;
}

/// Broker to client: a QoS 1 PUBLISH is done once PUBACKed, a QoS 2 one goes PUBLISH, PUBREC,
/// PUBREL, PUBCOMP; nothing is resent on a healthy connection.
#[tokio::test]
async fn broker_completes_outgoing_qos1_and_qos2_v311() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("sub")).await;
    sub.send_v4(&raw::subscribe_v4(1, "out/#", mqtt311::qos(2))).await;
    assert!(matches!(sub.recv_v4(WAIT).await, v4::Packet::SubAck(ack) if ack.pkid == 1));

    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("out/1", mqtt311::qos(1), false, "one").await;
    let p1 = sub.expect_publish_v4(WAIT).await;
    assert_eq!((p1.topic.as_str(), p1.qos as u8, p1.dup), ("out/1", 1, false));
    assert_ne!(p1.pkid, 0);
    sub.send_v4(&v4::Packet::PubAck(v4::PubAck::new(p1.pkid))).await;

    publisher.publish("out/2", mqtt311::qos(2), false, "two").await;
    let p2 = sub.expect_publish_v4(WAIT).await;
    assert_eq!((p2.topic.as_str(), p2.qos as u8, p2.dup), ("out/2", 2, false));
    sub.send_v4(&v4::Packet::PubRec(v4::PubRec::new(p2.pkid))).await;
    assert_eq!(sub.recv_v4(WAIT).await, v4::Packet::PubRel(v4::PubRel::new(p2.pkid)));
    sub.send_v4(&v4::Packet::PubComp(v4::PubComp::new(p2.pkid))).await;

    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn broker_completes_outgoing_qos1_and_qos2_v5() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("sub"), None).await;
    sub.send_v5(&raw::subscribe_v5(1, v5::Filter::new("out/#", mqtt5::qos(2)), None)).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::SubAck(ack) if ack.pkid == 1));

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("out/1", mqtt5::qos(1), false, "one").await;
    let p1 = sub.expect_publish_v5(WAIT).await;
    assert_eq!((raw::topic_v5(&p1).as_str(), p1.qos as u8, p1.dup), ("out/1", 1, false));
    sub.send_v5(&v5::Packet::PubAck(v5::PubAck::new(p1.pkid, None))).await;

    publisher.publish("out/2", mqtt5::qos(2), false, "two").await;
    let p2 = sub.expect_publish_v5(WAIT).await;
    assert_eq!((raw::topic_v5(&p2).as_str(), p2.qos as u8, p2.dup), ("out/2", 2, false));
    sub.send_v5(&v5::Packet::PubRec(v5::PubRec::new(p2.pkid, None))).await;
    match sub.recv_v5(WAIT).await {
        v5::Packet::PubRel(rel) => assert_eq!(rel.pkid, p2.pkid),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send_v5(&v5::Packet::PubComp(v5::PubComp::new(p2.pkid, None))).await;

    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

/// A QoS 2 PUBLISH resent (DUP) before PUBREL is acknowledged again but delivered once.
#[tokio::test]
async fn qos2_resent_before_pubrel_is_delivered_once_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect(broker.addr(), "sub").await;
    sub.subscribe("once", mqtt311::qos(2)).await;
    let (mut publisher, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("pub")).await;

    let mut publish = v4::Publish::new("once", mqtt311::qos(2), "x");
    publish.pkid = 5;
    publisher.send_v4(&v4::Packet::Publish(publish.clone())).await;
    assert_eq!(publisher.recv_v4(WAIT).await, v4::Packet::PubRec(v4::PubRec::new(5)));
    publish.dup = true;
    publisher.send_v4(&v4::Packet::Publish(publish)).await;
    assert_eq!(publisher.recv_v4(WAIT).await, v4::Packet::PubRec(v4::PubRec::new(5)));
    publisher.send_v4(&v4::Packet::PubRel(v4::PubRel::new(5))).await;
    assert_eq!(publisher.recv_v4(WAIT).await, v4::Packet::PubComp(v4::PubComp::new(5)));

    assert_eq!(sub.collect_publishes(QUIET, WAIT).await.len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn qos2_resent_before_pubrel_is_delivered_once_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("once", mqtt5::qos(2)).await;
    let (mut publisher, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("pub"), None).await;

    let mut publish = v5::Publish::new("once", mqtt5::qos(2), "x", None);
    publish.pkid = 5;
    publisher.send_v5(&v5::Packet::Publish(publish.clone())).await;
    assert!(matches!(publisher.recv_v5(WAIT).await, v5::Packet::PubRec(r) if r.pkid == 5));
    publish.dup = true;
    publisher.send_v5(&v5::Packet::Publish(publish)).await;
    assert!(matches!(publisher.recv_v5(WAIT).await, v5::Packet::PubRec(r) if r.pkid == 5));
    publisher.send_v5(&v5::Packet::PubRel(v5::PubRel::new(5, None))).await;
    assert!(matches!(publisher.recv_v5(WAIT).await, v5::Packet::PubComp(c) if c.pkid == 5));

    assert_eq!(sub.collect_publishes(QUIET, WAIT).await.len(), 1);
    broker.stop().await;
}
