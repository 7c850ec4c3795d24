//! Cross-check of 3.1.1 against an independent implementation: `rumqttc` 0.24's `v4`
//! packet modules. Each case pairs a `rumqttc` packet with the [`Packet`] it means. Bytes
//! written by `rumqttc` must decode to our packet, and our bytes must read back in `rumqttc`
//! as its packet. Bytes need not be equal: property order is free.

use bytes::{Bytes, BytesMut};

use super::testutil::{MAX, V3, dec, enc};
use super::*;
use rumqttc::mqttbytes::v4 as r;
use rumqttc::mqttbytes::{Protocol, QoS as RQoS};

fn write(p: &r::Packet, buf: &mut BytesMut) {
    let res = match p {
        r::Packet::Connect(c) => c.write(buf),
        r::Packet::ConnAck(c) => c.write(buf),
        r::Packet::Publish(c) => c.write(buf),
        r::Packet::PubAck(c) => c.write(buf),
        r::Packet::PubRec(c) => c.write(buf),
        r::Packet::PubRel(c) => c.write(buf),
        r::Packet::PubComp(c) => c.write(buf),
        r::Packet::Subscribe(c) => c.write(buf),
        r::Packet::SubAck(c) => c.write(buf),
        r::Packet::Unsubscribe(c) => c.write(buf),
        r::Packet::UnsubAck(c) => c.write(buf),
        r::Packet::PingReq => r::PingReq.write(buf),
        r::Packet::PingResp => r::PingResp.write(buf),
        r::Packet::Disconnect => r::Disconnect.write(buf),
    };
    assert!(res.is_ok(), "rumqttc cannot write {p:?}");
}

fn cases() -> Vec<(r::Packet, Packet)> {
    let connect = Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 30,
        client_id: "dev-1".into(),
        will: Some(LastWill {
            topic: "status/dev-1".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"pass")),
        ..Connect::default()
    };
    let r_connect = r::Connect {
        protocol: Protocol::V4,
        keep_alive: 30,
        client_id: "dev-1".into(),
        clean_session: true,
        last_will: Some(r::LastWill::new("status/dev-1", "offline", RQoS::AtLeastOnce, true)),
        login: Some(r::Login::new("user", "pass")),
    };
    let publish = Publish {
        retain: true,
        qos: QoS::ExactlyOnce,
        topic: "a/b".into(),
        packet_id: 7,
        payload: Bytes::from_static(b"\x00\x01payload"),
        ..Publish::default()
    };
    let mut r_publish = r::Publish::new("a/b", RQoS::ExactlyOnce, &b"\x00\x01payload"[..]);
    r_publish.retain = true;
    r_publish.pkid = 7;
    let ack = |packet_id| Ack { packet_id, ..Ack::default() };
    let filter = |f: &str, qos| SubscribeFilter {
        filter: f.into(),
        options: SubscriptionOptions { qos, ..SubscriptionOptions::default() },
    };
    vec![
        (r::Packet::Connect(r_connect), Packet::Connect(Box::new(connect))),
        (
            r::Packet::ConnAck(r::ConnAck::new(r::ConnectReturnCode::BadUserNamePassword, false)),
            Packet::ConnAck(Box::new(ConnAck { code: 0x86, ..ConnAck::default() })),
        ),
        (
            r::Packet::ConnAck(r::ConnAck::new(r::ConnectReturnCode::Success, true)),
            Packet::ConnAck(Box::new(ConnAck { session_present: true, ..ConnAck::default() })),
        ),
        (r::Packet::Publish(r_publish), Packet::Publish(publish)),
        (
            r::Packet::Publish(r::Publish::new("t", RQoS::AtMostOnce, "x")),
            Packet::Publish(Publish { topic: "t".into(), payload: Bytes::from_static(b"x"), ..Publish::default() }),
        ),
        (r::Packet::PubAck(r::PubAck::new(1)), Packet::PubAck(ack(1))),
        (r::Packet::PubRec(r::PubRec::new(2)), Packet::PubRec(ack(2))),
        (r::Packet::PubRel(r::PubRel::new(3)), Packet::PubRel(ack(3))),
        (r::Packet::PubComp(r::PubComp::new(4)), Packet::PubComp(ack(4))),
        (
            r::Packet::Subscribe(r::Subscribe {
                pkid: 5,
                filters: vec![
                    r::SubscribeFilter::new("a/+".into(), RQoS::AtLeastOnce),
                    r::SubscribeFilter::new("#".into(), RQoS::ExactlyOnce),
                ],
            }),
            Packet::Subscribe(Subscribe {
                packet_id: 5,
                filters: vec![filter("a/+", QoS::AtLeastOnce), filter("#", QoS::ExactlyOnce)],
                ..Subscribe::default()
            }),
        ),
        (
            r::Packet::SubAck(r::SubAck::new(
                5,
                vec![r::SubscribeReasonCode::Success(RQoS::AtLeastOnce), r::SubscribeReasonCode::Failure],
            )),
            Packet::SubAck(SubAck { packet_id: 5, reasons: vec![1, 0x80], ..SubAck::default() }),
        ),
        (
            r::Packet::Unsubscribe(r::Unsubscribe { pkid: 6, topics: vec!["a/b".into(), "c".into()] }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 6,
                filters: vec!["a/b".into(), "c".into()],
                ..Unsubscribe::default()
            }),
        ),
        (r::Packet::UnsubAck(r::UnsubAck::new(6)), Packet::UnsubAck(UnsubAck { packet_id: 6, ..UnsubAck::default() })),
        (r::Packet::PingReq, Packet::PingReq),
        (r::Packet::PingResp, Packet::PingResp),
        (r::Packet::Disconnect, Packet::Disconnect(Disconnect::default())),
    ]
}

#[test]
fn rumqttc_bytes_decode_here() {
    for (theirs, ours) in cases() {
        let mut buf = BytesMut::new();
        write(&theirs, &mut buf);
        assert_eq!(dec(&buf, V3).ok().as_ref(), Some(&ours), "{theirs:?}");
    }
}

#[test]
fn our_bytes_decode_in_rumqttc() {
    for (theirs, ours) in cases() {
        let mut buf = BytesMut::from(&enc(&ours, V3)[..]);
        let read = r::read(&mut buf, MAX);
        assert_eq!(read.ok().as_ref(), Some(&theirs), "{ours:?}");
        assert!(buf.is_empty());
    }
}
