//! MQTT 5.0 features: reason codes on failures, topic aliases both ways, Receive Maximum,
//! Maximum Packet Size both ways, message expiry, subscription identifiers, No Local,
//! properties passed through, assigned client ids, Server Keep Alive (MQTT 5.0 §3, §4.13);
//! and the 3.1.1 counterpart where one exists.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::raw::{self, RawClient, RecvError};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5::{self, Filter, PublishProperties};

fn publish_v5(topic: &str, qos: u8, pkid: u16, payload: &'static [u8], props: Option<PublishProperties>) -> v5::Packet {
    let mut publish = v5::Publish::new(topic, mqtt5::qos(qos), payload, props);
    publish.pkid = pkid;
    v5::Packet::Publish(publish)
}

fn alias(n: u16) -> Option<PublishProperties> {
    Some(PublishProperties { topic_alias: Some(n), ..Default::default() })
}

fn connect_v5_with(client_id: &str, edit: impl FnOnce(&mut v5::ConnectProperties)) -> v5::Connect {
    let mut props = v5::ConnectProperties::new();
    edit(&mut props);
    let mut connect = raw::connect_v5(client_id);
    connect.properties = Some(props);
    connect
}

/// `a/#/b` is not a valid filter (`#` must be last). The broker refuses it with SUBACK 0x8F
/// and keeps the connection, or treats the packet as malformed and disconnects (0x81).
#[tokio::test]
async fn invalid_subscription_filter_is_refused_v5() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("bad-filter"), None).await;
    client.send_v5(&raw::subscribe_v5(1, Filter::new("a/#/b", mqtt5::qos(0)), None)).await;

    match client.try_recv_v5(WAIT).await {
        Ok(v5::Packet::SubAck(ack)) => {
            assert_eq!(ack.return_codes, [v5::SubscribeReasonCode::TopicFilterInvalid]);
            if let Some(reason) = ack.properties.and_then(|p| p.reason_string) {
                assert!(!reason.is_empty(), "a reason string, when sent, says something");
            }
            client.send_v5(&v5::Packet::PingReq(v5::PingReq)).await;
            assert!(matches!(client.recv_v5(WAIT).await, v5::Packet::PingResp(_)), "connection still usable");
        }
        Ok(v5::Packet::Disconnect(d)) => {
            let allowed = [v5::DisconnectReasonCode::MalformedPacket, v5::DisconnectReasonCode::TopicFilterInvalid];
            assert!(allowed.contains(&d.reason_code), "DISCONNECT reason {:?}", d.reason_code);
            client.expect_close(WAIT).await;
        }
        Err(RecvError::Closed) => panic!("closed without DISCONNECT: a v5 server says why"),
        other => panic!("expected SUBACK 0x8F or DISCONNECT, got {other:?}"),
    }
    broker.stop().await;
}

/// 3.1.1 has no reason codes: SUBACK 0x80 (failure) or closing the connection.
#[tokio::test]
async fn invalid_subscription_filter_is_refused_v311() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("bad-filter")).await;
    client.send_v4(&raw::subscribe_v4(1, "a/#/b", mqtt311::qos(0))).await;

    match client.try_recv_v4(WAIT).await {
        Ok(v4::Packet::SubAck(ack)) => {
            assert_eq!(ack.return_codes, [v4::SubscribeReasonCode::Failure])
        }
        Err(RecvError::Closed) => {}
        other => panic!("expected SUBACK 0x80 or close, got {other:?}"),
    }
    broker.stop().await;
}

/// A topic name must not contain wildcards: DISCONNECT 0x90 (Topic Name invalid).
#[tokio::test]
async fn publish_to_wildcard_topic_disconnects_0x90_v5() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("bad-topic"), None).await;
    client.send_v5(&publish_v5("a/+", 0, 0, b"x", None)).await;

    let reason = client.expect_close_reason_v5(WAIT).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::TopicNameInvalid));
    broker.stop().await;
}

#[tokio::test]
async fn publish_to_wildcard_topic_closes_v311() {
    let broker = TestBroker::start().await;
    let (mut client, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("bad-topic")).await;
    client.send_v4(&v4::Packet::Publish(v4::Publish::new("a/#", mqtt311::qos(0), "x"))).await;

    let sent = client.expect_close(WAIT).await;
    assert!(sent.is_empty(), "nothing to say in 3.1.1: {sent:02x?}");
    broker.stop().await;
}

/// Client to server aliases: topic + alias sets it, alias alone uses it, topic + the same
/// alias remaps it.
#[tokio::test]
async fn topic_alias_from_client_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("ta/#", mqtt5::qos(0)).await;
    let (mut client, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5("aliaser"), None).await;
    let max = ack.properties.and_then(|p| p.topic_alias_max).unwrap_or(0);
    assert!(max >= 1, "the broker accepts topic aliases (CONNACK Topic Alias Maximum {max})");

    client.send_v5(&publish_v5("ta/x", 0, 0, b"one", alias(1))).await;
    client.send_v5(&publish_v5("", 0, 0, b"two", alias(1))).await;
    client.send_v5(&publish_v5("ta/y", 0, 0, b"three", alias(1))).await;
    client.send_v5(&publish_v5("", 0, 0, b"four", alias(1))).await;

    let mut got = Vec::new();
    for _ in 0..4 {
        let p = sub.expect_publish(WAIT).await;
        got.push((raw::topic_v5(&p), String::from_utf8_lossy(&p.payload).into_owned()));
    }
    let want = [("ta/x", "one"), ("ta/x", "two"), ("ta/y", "three"), ("ta/y", "four")];
    assert_eq!(got, want.map(|(t, p)| (t.to_string(), p.to_string())));
    broker.stop().await;
}

/// An alias above the broker's Topic Alias Maximum: DISCONNECT 0x94 (Topic Alias invalid).
#[tokio::test]
async fn topic_alias_above_maximum_disconnects_0x94_v5() {
    let broker = TestBroker::start().await;
    let (mut client, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5("aliaser"), None).await;
    let max = ack.properties.and_then(|p| p.topic_alias_max).unwrap_or(0);

    client.send_v5(&publish_v5("ta/x", 0, 0, b"x", alias(max + 1))).await;
    let reason = client.expect_close_reason_v5(WAIT).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::TopicAliasInvalid));
    broker.stop().await;
}

/// Server to client aliases: with Topic Alias Maximum 5 the broker may replace repeated topics
/// by aliases (never above 5); the client resolves every PUBLISH to the right topic. A client
/// that allows no aliases gets full topics and no alias property.
#[tokio::test]
async fn topic_alias_to_client_v5() {
    let broker = TestBroker::start().await;
    let (mut aliased, _) =
        RawClient::connect_v5(broker.addr(), connect_v5_with("aliased", |p| p.topic_alias_max = Some(5)), None).await;
    aliased.send_v5(&raw::subscribe_v5(1, Filter::new("ta/#", mqtt5::qos(0)), None)).await;
    assert!(matches!(aliased.recv_v5(WAIT).await, v5::Packet::SubAck(_)));
    let (mut plain, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("plain"), None).await;
    plain.send_v5(&raw::subscribe_v5(1, Filter::new("ta/#", mqtt5::qos(0)), None)).await;
    assert!(matches!(plain.recv_v5(WAIT).await, v5::Packet::SubAck(_)));

    let topics = ["ta/same", "ta/same", "ta/same", "ta/other", "ta/same", "ta/other", "ta/same"];
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for topic in topics {
        publisher.publish(topic, mqtt5::qos(0), false, "x").await;
    }

    let mut aliases: HashMap<u16, String> = HashMap::new();
    for want in topics {
        let p = aliased.expect_publish_v5(WAIT).await;
        let alias = p.properties.as_ref().and_then(|props| props.topic_alias);
        let topic = match (p.topic.is_empty(), alias) {
            (false, None) => raw::topic_v5(&p),
            (false, Some(a)) => {
                assert!((1..=5).contains(&a), "alias {a} outside 1..=5");
                aliases.insert(a, raw::topic_v5(&p));
                raw::topic_v5(&p)
            }
            (true, Some(a)) => aliases.get(&a).cloned().unwrap_or_else(|| panic!("alias {a} used before it was set")),
            (true, None) => panic!("PUBLISH with neither topic nor alias"),
        };
        assert_eq!(topic, want);

        let p = plain.expect_publish_v5(WAIT).await;
        assert_eq!(raw::topic_v5(&p), want);
        assert_eq!(p.properties.and_then(|props| props.topic_alias), None, "no aliases to a client that allows none");
    }
    broker.stop().await;
}

/// With Receive Maximum 2 the broker has at most two unacknowledged QoS 1 PUBLISHes out.
#[tokio::test]
async fn receive_maximum_limits_unacked_publishes_v5() {
    let broker = TestBroker::start().await;
    let connect = connect_v5_with("slow-acker", |p| p.receive_maximum = Some(2));
    let (mut sub, _) = RawClient::connect_v5(broker.addr(), connect, None).await;
    sub.send_v5(&raw::subscribe_v5(1, Filter::new("rm/t", mqtt5::qos(1)), None)).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::SubAck(_)));

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for i in 0..5 {
        publisher.publish("rm/t", mqtt5::qos(1), false, i.to_string()).await;
    }

    let mut inflight = vec![sub.expect_publish_v5(WAIT).await, sub.expect_publish_v5(WAIT).await];
    let mut delivered = Vec::new();
    while !inflight.is_empty() {
        // Two unacknowledged: nothing more may come until one is acked.
        if inflight.len() == 2 {
            sub.assert_silent(QUIET).await;
        }
        let oldest = inflight.remove(0);
        delivered.push(String::from_utf8_lossy(&oldest.payload).into_owned());
        sub.send_v5(&v5::Packet::PubAck(v5::PubAck::new(oldest.pkid, None))).await;
        if delivered.len() + inflight.len() < 5 {
            inflight.push(sub.expect_publish_v5(WAIT).await);
        }
    }
    assert_eq!(delivered, ["0", "1", "2", "3", "4"]);
    broker.stop().await;
}

/// A client's Maximum Packet Size: a message that would exceed it is not sent to that client
/// (it is dropped for it), smaller ones are.
#[tokio::test]
async fn client_maximum_packet_size_is_respected_v5() {
    let broker = TestBroker::start().await;
    let connect = connect_v5_with("small", |p| p.max_packet_size = Some(100));
    let (mut sub, _) = RawClient::connect_v5(broker.addr(), connect, None).await;
    sub.send_v5(&raw::subscribe_v5(1, Filter::new("mps/#", mqtt5::qos(1)), None)).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::SubAck(_)));

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("mps/big", mqtt5::qos(1), false, vec![b'x'; 200]).await;
    publisher.publish("mps/small", mqtt5::qos(1), false, "fits").await;

    let p = sub.expect_publish_v5(WAIT).await;
    assert_eq!(raw::topic_v5(&p), "mps/small");
    sub.send_v5(&v5::Packet::PubAck(v5::PubAck::new(p.pkid, None))).await;
    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

/// The broker's Maximum Packet Size (`[mqtt] max_packet_size`) is announced in CONNACK, and a
/// larger packet from the client gets DISCONNECT 0x95 (Packet too large).
#[tokio::test]
async fn oversized_packet_from_client_disconnects_0x95_v5() {
    let broker = TestBroker::start_with("[mqtt]\nmax_packet_size = 1024\n").await;
    let (mut client, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5("big"), None).await;
    assert_eq!(ack.properties.and_then(|p| p.max_packet_size), Some(1024));

    let payload: &'static [u8] = &[b'x'; 2000];
    client.send_v5(&publish_v5("mps/t", 0, 0, payload, None)).await;
    let reason = client.expect_close_reason_v5(WAIT).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::PacketTooLarge));
    broker.stop().await;
}

fn expiring(secs: u32) -> Option<PublishProperties> {
    Some(PublishProperties { message_expiry_interval: Some(secs), ..Default::default() })
}

/// A queued message past its expiry is not delivered; one still alive is, with the expiry
/// reduced by the time it waited (MQTT 5.0 §3.3.2.3.3).
#[tokio::test]
async fn message_expiry_for_queued_messages_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect_persistent(broker.addr(), "away", true, 60).await;
    sub.subscribe("exp/#", mqtt5::qos(1)).await;
    sub.disconnect().await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish_with("exp/short", mqtt5::qos(1), false, "short", expiring(1)).await;
    publisher.publish_with("exp/long", mqtt5::qos(1), false, "long", expiring(60)).await;
    // Expiry is about time passing, so this wait is the test.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut sub = Client5::connect_persistent(broker.addr(), "away", false, 60).await;
    let p = sub.expect_publish(WAIT).await;
    assert_eq!(&p.payload[..], b"long", "the expired message must not be delivered");
    let left = p.properties.and_then(|props| props.message_expiry_interval);
    assert!(matches!(left, Some(1..=58)), "remaining expiry after 2 s queued: {left:?}");
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

/// A delivered PUBLISH carries the identifiers of the subscriptions it matched: all in one
/// copy, or one per copy if the broker sends a copy per subscription (MQTT 5.0 §3.3.4).
#[tokio::test]
async fn subscription_identifiers_on_delivery_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe_with(Filter::new("si/#", mqtt5::qos(0)), Some(7)).await;
    sub.subscribe_with(Filter::new("si/+", mqtt5::qos(0)), Some(9)).await;
    sub.subscribe_with(Filter::new("plain/t", mqtt5::qos(0)), None).await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("si/a", mqtt5::qos(0), false, "both").await;
    publisher.publish("si/a/b", mqtt5::qos(0), false, "only7").await;
    publisher.publish("plain/t", mqtt5::qos(0), false, "none").await;

    let got = sub.collect_publishes(QUIET, WAIT).await;
    let ids = |payload: &[u8]| -> Vec<Vec<usize>> {
        got.iter()
            .filter(|p| p.payload == payload)
            .map(|p| p.properties.as_ref().map(|props| props.subscription_identifiers.clone()).unwrap_or_default())
            .collect()
    };
    let both = ids(b"both");
    assert!(both.iter().all(|copy| !copy.is_empty()), "every copy names its subscription(s): {both:?}");
    assert_eq!(both.concat().into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([7, 9]), "{both:?}");
    assert_eq!(ids(b"only7"), [vec![7]]);
    assert_eq!(ids(b"none"), [Vec::<usize>::new()]);
    broker.stop().await;
}

/// No Local: a client's own messages do not come back on that subscription; others' do.
#[tokio::test]
async fn no_local_v5() {
    let broker = TestBroker::start().await;
    let mut me = Client5::connect(broker.addr(), "me").await;
    let mut filter = Filter::new("nl/t", mqtt5::qos(1));
    filter.nolocal = true;
    me.subscribe_with(filter, None).await;
    let mut watcher = Client5::connect(broker.addr(), "watcher").await;
    watcher.subscribe("nl/t", mqtt5::qos(1)).await;

    me.publish("nl/t", mqtt5::qos(1), false, "mine").await;
    let mut other = Client5::connect(broker.addr(), "other").await;
    other.publish("nl/t", mqtt5::qos(1), false, "theirs").await;

    // "mine" was routed (PUBACKed) before "theirs" was sent, so it would have come first.
    assert_eq!(&me.expect_publish(WAIT).await.payload[..], b"theirs");
    me.assert_no_publish(QUIET).await;
    assert_eq!(&watcher.expect_publish(WAIT).await.payload[..], b"mine");
    assert_eq!(&watcher.expect_publish(WAIT).await.payload[..], b"theirs");
    broker.stop().await;
}

/// User properties (order and duplicates kept), content type, payload format indicator,
/// response topic and correlation data reach the subscriber unchanged.
#[tokio::test]
async fn publish_properties_pass_through_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect(broker.addr(), "sub").await;
    sub.subscribe("props/t", mqtt5::qos(1)).await;

    let sent = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("props/reply".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![("k".into(), "v1".into()), ("a".into(), "b".into()), ("k".into(), "v2".into())],
        ..Default::default()
    };
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish_with("props/t", mqtt5::qos(1), false, "{}", Some(sent.clone())).await;

    let got = sub.expect_publish(WAIT).await.properties.expect("properties delivered");
    assert_eq!(got.payload_format_indicator, sent.payload_format_indicator);
    assert_eq!(got.content_type, sent.content_type);
    assert_eq!(got.response_topic, sent.response_topic);
    assert_eq!(got.correlation_data, sent.correlation_data);
    assert_eq!(got.user_properties, sent.user_properties);
    broker.stop().await;
}

/// An empty client id in v5: accepted, and CONNACK carries the Assigned Client Identifier.
#[tokio::test]
async fn empty_client_id_gets_assigned_identifier_v5() {
    let broker = TestBroker::start().await;
    let (_client, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5(""), None).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);
    let assigned = ack.properties.and_then(|p| p.assigned_client_identifier);
    assert!(matches!(&assigned, Some(id) if !id.is_empty()), "assigned id: {assigned:?}");
    broker.stop().await;
}

/// 3.1.1: an empty client id needs clean session = 1; otherwise CONNACK 0x02 (identifier
/// rejected) and the connection is closed (MQTT 3.1.1 §3.1.3.1).
#[tokio::test]
async fn empty_client_id_without_clean_session_rejected_v311() {
    let broker = TestBroker::start().await;
    let mut connect = raw::connect_v4("");
    connect.clean_session = false;
    let (mut client, ack) = RawClient::connect_v4(broker.addr(), connect).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::BadClientId);
    client.expect_close(WAIT).await;

    let (_client, ack) = RawClient::connect_v4(broker.addr(), raw::connect_v4("")).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success, "with clean session an empty id is fine");
    broker.stop().await;
}

/// `[mqtt] max_keep_alive = 10`: a client asking 60 s is told Server Keep Alive 10.
#[tokio::test]
async fn server_keep_alive_caps_client_keep_alive_v5() {
    let broker = TestBroker::start_with("[mqtt]\nmax_keep_alive = 10\n").await;
    let mut connect = raw::connect_v5("sleepy");
    connect.keep_alive = 60;
    let (_client, ack) = RawClient::connect_v5(broker.addr(), connect, None).await;
    assert_eq!(ack.properties.and_then(|p| p.server_keep_alive), Some(10));
    broker.stop().await;
}

/// Session Present is 0 for a new session and 1 when one is resumed (also checked with
/// messages in `session.rs`); a 3.1.1 client sees the same flag.
#[tokio::test]
async fn session_present_flag_v5_and_v311() {
    let broker = TestBroker::start().await;
    let connect = raw::connect_v5_persistent("sp5", false, 60);
    let (client, ack) = RawClient::connect_v5(broker.addr(), connect.clone(), None).await;
    assert!(!ack.session_present, "no session existed");
    drop(client);
    let (_client, ack) = RawClient::connect_v5(broker.addr(), connect, None).await;
    assert!(ack.session_present);

    let sub = Client311::connect_persistent(broker.addr(), "sp311").await;
    assert!(!sub.session_present());
    sub.disconnect().await;
    let sub = Client311::connect_persistent(broker.addr(), "sp311").await;
    assert!(sub.session_present());
    broker.stop().await;
}
