//! Sessions: takeover by a second connection with the same client id, persistent sessions
//! (3.1.1 clean session = 0; 5.0 clean start = 0 with a session expiry), redelivery of
//! unacknowledged QoS 1/2 messages after a reconnect, clean sessions and session expiry
//! (MQTT 3.1.1 §3.1.2.4, §4.4; MQTT 5.0 §3.1.2.4, §3.1.2.11.2, §4.4).

use std::time::Duration;

use roost_e2e::mqtt5::{self, Client5};
use roost_e2e::mqtt311::{self, Client311};
use roost_e2e::raw::{self, RawClient};
use roost_e2e::{QUIET, TestBroker, WAIT};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

fn persistent_v4(client_id: &str) -> v4::Connect {
    let mut connect = raw::connect_v4(client_id);
    connect.clean_session = false;
    connect
}

#[tokio::test]
async fn takeover_closes_first_connection_v311() {
    let broker = TestBroker::start().await;
    let (mut first, _) = RawClient::connect_v4(broker.addr(), raw::connect_v4("same")).await;
    let (mut second, ack) = RawClient::connect_v4(broker.addr(), raw::connect_v4("same")).await;
    assert_eq!(ack.code, v4::ConnectReturnCode::Success);

    let sent_before_close = first.expect_close(WAIT).await;
    assert!(sent_before_close.is_empty(), "3.1.1 has no server DISCONNECT: {sent_before_close:02x?}");
    second.send_v4(&v4::Packet::PingReq).await;
    assert_eq!(second.recv_v4(WAIT).await, v4::Packet::PingResp);
    broker.stop().await;
}

#[tokio::test]
async fn takeover_sends_disconnect_0x8e_v5() {
    let broker = TestBroker::start().await;
    let (mut first, _) = RawClient::connect_v5(broker.addr(), raw::connect_v5("same"), None).await;
    let (mut second, ack) = RawClient::connect_v5(broker.addr(), raw::connect_v5("same"), None).await;
    assert_eq!(ack.code, v5::ConnectReturnCode::Success);

    let reason = first.expect_close_reason_v5(WAIT).await;
    assert_eq!(reason, Some(v5::DisconnectReasonCode::SessionTakenOver));
    second.send_v5(&v5::Packet::PingReq(v5::PingReq)).await;
    assert!(matches!(second.recv_v5(WAIT).await, v5::Packet::PingResp(_)));
    broker.stop().await;
}

#[tokio::test]
async fn persistent_session_gets_messages_sent_while_away_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect_persistent(broker.addr(), "away").await;
    assert!(!sub.session_present(), "a new session is not present");
    sub.subscribe("away/t", mqtt311::qos(1)).await;
    sub.disconnect().await;

    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    for i in 0..3 {
        publisher.publish("away/t", mqtt311::qos(1), false, format!("m{i}")).await;
    }

    let mut sub = Client311::connect_persistent(broker.addr(), "away").await;
    assert!(sub.session_present());
    for i in 0..3 {
        let p = sub.expect_publish(WAIT).await;
        assert_eq!(p.payload, format!("m{i}"));
    }
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn persistent_session_gets_messages_sent_while_away_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect_persistent(broker.addr(), "away", true, 60).await;
    assert!(!sub.session_present(), "a new session is not present");
    sub.subscribe("away/t", mqtt5::qos(1)).await;
    sub.disconnect().await;

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    for i in 0..3 {
        publisher.publish("away/t", mqtt5::qos(1), false, format!("m{i}")).await;
    }

    let mut sub = Client5::connect_persistent(broker.addr(), "away", false, 60).await;
    assert!(sub.session_present());
    for i in 0..3 {
        let p = sub.expect_publish(WAIT).await;
        assert_eq!(p.payload, format!("m{i}"));
    }
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

/// QoS 1 PUBLISHes never PUBACKed are resent after reconnect with DUP = 1 and the same packet
/// ids (MQTT 3.1.1 §4.4).
#[tokio::test]
async fn unacked_qos1_redelivered_with_dup_v311() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_v4(broker.addr(), persistent_v4("redeliver")).await;
    sub.send_v4(&raw::subscribe_v4(1, "r/1", mqtt311::qos(1))).await;
    assert!(matches!(sub.recv_v4(WAIT).await, v4::Packet::SubAck(_)));

    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("r/1", mqtt311::qos(1), false, "a").await;
    publisher.publish("r/1", mqtt311::qos(1), false, "b").await;
    let first: Vec<v4::Publish> = vec![sub.expect_publish_v4(WAIT).await, sub.expect_publish_v4(WAIT).await];
    drop(sub); // no PUBACK, no DISCONNECT

    let (mut sub, ack) = RawClient::connect_v4(broker.addr(), persistent_v4("redeliver")).await;
    assert!(ack.session_present);
    for original in &first {
        let again = sub.expect_publish_v4(WAIT).await;
        assert!(again.dup, "redelivery must set DUP: {again:?}");
        assert_eq!((again.pkid, &again.payload), (original.pkid, &original.payload));
        sub.send_v4(&v4::Packet::PubAck(v4::PubAck::new(again.pkid))).await;
    }
    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn unacked_qos1_redelivered_with_dup_v5() {
    let broker = TestBroker::start().await;
    let connect = raw::connect_v5_persistent("redeliver", true, 60);
    let (mut sub, _) = RawClient::connect_v5(broker.addr(), connect, None).await;
    sub.send_v5(&raw::subscribe_v5(1, v5::Filter::new("r/1", mqtt5::qos(1)), None)).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::SubAck(_)));

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/1", mqtt5::qos(1), false, "a").await;
    publisher.publish("r/1", mqtt5::qos(1), false, "b").await;
    let first: Vec<v5::Publish> = vec![sub.expect_publish_v5(WAIT).await, sub.expect_publish_v5(WAIT).await];
    drop(sub);

    let connect = raw::connect_v5_persistent("redeliver", false, 60);
    let (mut sub, ack) = RawClient::connect_v5(broker.addr(), connect, None).await;
    assert!(ack.session_present);
    for original in &first {
        let again = sub.expect_publish_v5(WAIT).await;
        assert!(again.dup, "redelivery must set DUP: {again:?}");
        assert_eq!((again.pkid, &again.payload), (original.pkid, &original.payload));
        sub.send_v5(&v5::Packet::PubAck(v5::PubAck::new(again.pkid, None))).await;
    }
    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

/// Two QoS 2 messages: the first PUBRECed (so the broker has sent PUBREL) but not PUBCOMPed,
/// the second not acknowledged at all. After reconnect the broker resends PUBREL for the
/// first (never its PUBLISH: that would deliver it twice) and the second PUBLISH with DUP = 1
/// and its packet id.
#[tokio::test]
async fn qos2_flows_resume_after_reconnect_v311() {
    let broker = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_v4(broker.addr(), persistent_v4("resume")).await;
    sub.send_v4(&raw::subscribe_v4(1, "r/2", mqtt311::qos(2))).await;
    assert!(matches!(sub.recv_v4(WAIT).await, v4::Packet::SubAck(_)));

    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("r/2", mqtt311::qos(2), false, "first").await;
    publisher.publish("r/2", mqtt311::qos(2), false, "second").await;
    let first = sub.expect_publish_v4(WAIT).await;
    let second = sub.expect_publish_v4(WAIT).await;
    assert_eq!((&first.payload[..], &second.payload[..]), (&b"first"[..], &b"second"[..]));
    sub.send_v4(&v4::Packet::PubRec(v4::PubRec::new(first.pkid))).await;
    assert_eq!(sub.recv_v4(WAIT).await, v4::Packet::PubRel(v4::PubRel::new(first.pkid)));
    drop(sub); // no PUBCOMP for the first, no PUBREC for the second

    let (mut sub, ack) = RawClient::connect_v4(broker.addr(), persistent_v4("resume")).await;
    assert!(ack.session_present);
    // The spec orders PUBRELs among themselves and PUBLISHes among themselves, not one
    // against the other, so take both in either order.
    let mut pubrel = None;
    let mut republish = None;
    for _ in 0..2 {
        match sub.recv_v4(WAIT).await {
            v4::Packet::PubRel(rel) if pubrel.is_none() => pubrel = Some(rel.pkid),
            v4::Packet::Publish(p) if republish.is_none() => republish = Some(p),
            other => panic!("expected PUBREL {} and PUBLISH {}, got {other:?}", first.pkid, second.pkid),
        }
    }
    assert_eq!(pubrel, Some(first.pkid));
    let republish = republish.expect("second PUBLISH resent");
    assert!(republish.dup);
    assert_eq!((republish.pkid, &republish.payload[..]), (second.pkid, &b"second"[..]));

    sub.send_v4(&v4::Packet::PubComp(v4::PubComp::new(first.pkid))).await;
    sub.send_v4(&v4::Packet::PubRec(v4::PubRec::new(second.pkid))).await;
    assert_eq!(sub.recv_v4(WAIT).await, v4::Packet::PubRel(v4::PubRel::new(second.pkid)));
    sub.send_v4(&v4::Packet::PubComp(v4::PubComp::new(second.pkid))).await;
    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn qos2_flows_resume_after_reconnect_v5() {
    let broker = TestBroker::start().await;
    let connect = raw::connect_v5_persistent("resume", true, 60);
    let (mut sub, _) = RawClient::connect_v5(broker.addr(), connect, None).await;
    sub.send_v5(&raw::subscribe_v5(1, v5::Filter::new("r/2", mqtt5::qos(2)), None)).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::SubAck(_)));

    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("r/2", mqtt5::qos(2), false, "first").await;
    publisher.publish("r/2", mqtt5::qos(2), false, "second").await;
    let first = sub.expect_publish_v5(WAIT).await;
    let second = sub.expect_publish_v5(WAIT).await;
    assert_eq!((&first.payload[..], &second.payload[..]), (&b"first"[..], &b"second"[..]));
    sub.send_v5(&v5::Packet::PubRec(v5::PubRec::new(first.pkid, None))).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::PubRel(rel) if rel.pkid == first.pkid));
    drop(sub);

    let connect = raw::connect_v5_persistent("resume", false, 60);
    let (mut sub, ack) = RawClient::connect_v5(broker.addr(), connect, None).await;
    assert!(ack.session_present);
    let mut pubrel = None;
    let mut republish = None;
    for _ in 0..2 {
        match sub.recv_v5(WAIT).await {
            v5::Packet::PubRel(rel) if pubrel.is_none() => pubrel = Some(rel.pkid),
            v5::Packet::Publish(p) if republish.is_none() => republish = Some(p),
            other => panic!("expected PUBREL {} and PUBLISH {}, got {other:?}", first.pkid, second.pkid),
        }
    }
    assert_eq!(pubrel, Some(first.pkid));
    let republish = republish.expect("second PUBLISH resent");
    assert!(republish.dup);
    assert_eq!((republish.pkid, &republish.payload[..]), (second.pkid, &b"second"[..]));

    sub.send_v5(&v5::Packet::PubComp(v5::PubComp::new(first.pkid, None))).await;
    sub.send_v5(&v5::Packet::PubRec(v5::PubRec::new(second.pkid, None))).await;
    assert!(matches!(sub.recv_v5(WAIT).await, v5::Packet::PubRel(rel) if rel.pkid == second.pkid));
    sub.send_v5(&v5::Packet::PubComp(v5::PubComp::new(second.pkid, None))).await;
    sub.assert_silent(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn clean_session_starts_empty_and_is_discarded_v311() {
    let broker = TestBroker::start().await;
    let mut sub = Client311::connect_persistent(broker.addr(), "c").await;
    sub.subscribe("clean/t", mqtt311::qos(1)).await;
    sub.disconnect().await;

    let mut sub = Client311::connect(broker.addr(), "c").await;
    assert!(!sub.session_present(), "clean session never resumes a session");
    let mut publisher = Client311::connect(broker.addr(), "pub").await;
    publisher.publish("clean/t", mqtt311::qos(1), false, "x").await;
    sub.assert_no_publish(QUIET).await; // the old subscription is gone
    sub.disconnect().await;

    // The clean session ended with its connection: nothing left to resume.
    let sub = Client311::connect_persistent(broker.addr(), "c").await;
    assert!(!sub.session_present());
    broker.stop().await;
}

#[tokio::test]
async fn clean_start_discards_existing_session_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect_persistent(broker.addr(), "c", true, 60).await;
    sub.subscribe("clean/t", mqtt5::qos(1)).await;
    sub.disconnect().await;

    let mut sub = Client5::connect_persistent(broker.addr(), "c", true, 60).await;
    assert!(!sub.session_present(), "clean start never resumes a session");
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("clean/t", mqtt5::qos(1), false, "x").await;
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn session_expiry_zero_ends_session_at_disconnect_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect_persistent(broker.addr(), "e0", true, 0).await;
    sub.subscribe("e0/t", mqtt5::qos(1)).await;
    sub.disconnect().await;

    let mut sub = Client5::connect_persistent(broker.addr(), "e0", false, 60).await;
    assert!(!sub.session_present());
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("e0/t", mqtt5::qos(1), false, "x").await;
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}

/// A session with expiry 1 s survives a quick reconnect and is gone 2 s after a disconnect.
#[tokio::test]
async fn session_expiry_interval_is_honoured_v5() {
    let broker = TestBroker::start().await;
    let mut sub = Client5::connect_persistent(broker.addr(), "e1", true, 1).await;
    sub.subscribe("e1/t", mqtt5::qos(1)).await;
    sub.disconnect().await;

    let sub = Client5::connect_persistent(broker.addr(), "e1", false, 1).await;
    assert!(sub.session_present(), "reconnected well within the expiry interval");
    sub.disconnect().await;

    // Expiry is about time passing, so this wait is the test: twice the interval.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sub = Client5::connect_persistent(broker.addr(), "e1", false, 60).await;
    assert!(!sub.session_present(), "session should have expired");
    let mut publisher = Client5::connect(broker.addr(), "pub").await;
    publisher.publish("e1/t", mqtt5::qos(1), false, "x").await;
    sub.assert_no_publish(QUIET).await;
    broker.stop().await;
}
