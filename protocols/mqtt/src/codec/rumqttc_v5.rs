//! Cross-check of 5.0 against an independent implementation: `rumqttc` 0.24's `v5`
//! packet modules. Each case pairs a `rumqttc` packet with the [`Packet`] it means. Bytes
//! written by `rumqttc` must decode to our packet, and our bytes must read back in `rumqttc`
//! as its packet. Bytes need not be equal: property order is free.
//! AUTH does not exist in `rumqttc`.

use bytes::{Bytes, BytesMut};

use super::testutil::{MAX, V5, dec, enc, user};
use super::*;
use rumqttc::v5::mqttbytes::QoS as RQoS;
use rumqttc::v5::mqttbytes::v5 as r;

fn connect_case() -> (r::Packet, Packet) {
    let props = ConnectProperties {
        session_expiry_interval: Some(3600),
        receive_maximum: Some(16),
        maximum_packet_size: Some(65_536),
        topic_alias_maximum: Some(8),
        request_response_information: Some(1),
        request_problem_information: Some(0),
        user_properties: vec![user("site", "north"), user("site", "south")],
        authentication_method: Some("TOKEN".into()),
        authentication_data: Some(Bytes::from_static(b"\x01\x02")),
    };
    let will_props = WillProperties {
        delay_interval: Some(5),
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/dev".into()),
        correlation_data: Some(Bytes::from_static(b"cid")),
        user_properties: vec![user("k", "v")],
    };
    let ours = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 45,
        properties: props,
        client_id: "dev-5".into(),
        will: Some(LastWill {
            topic: "status/dev-5".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: will_props,
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
    };
    let theirs = r::Packet::Connect(
        r::Connect {
            keep_alive: 45,
            client_id: "dev-5".into(),
            clean_start: true,
            properties: Some(r::ConnectProperties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(16),
                max_packet_size: Some(65_536),
                topic_alias_max: Some(8),
                request_response_info: Some(1),
                request_problem_info: Some(0),
                user_properties: vec![user("site", "north"), user("site", "south")],
                authentication_method: Some("TOKEN".into()),
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
            }),
        },
        Some(r::LastWill {
            topic: Bytes::from_static(b"status/dev-5"),
            message: Bytes::from_static(b"gone"),
            qos: RQoS::ExactlyOnce,
            retain: false,
            properties: Some(r::LastWillProperties {
                delay_interval: Some(5),
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(60),
                content_type: Some("text/plain".into()),
                response_topic: Some("reply/dev".into()),
                correlation_data: Some(Bytes::from_static(b"cid")),
                user_properties: vec![user("k", "v")],
            }),
        }),
        Some(r::Login::new("u", "p")),
    );
    (theirs, Packet::Connect(Box::new(ours)))
}

fn connack_case() -> (r::Packet, Packet) {
    let ours = ConnAck {
        session_present: true,
        code: 0,
        properties: ConnAckProperties {
            session_expiry_interval: Some(0),
            receive_maximum: Some(64),
            maximum_qos: Some(1),
            retain_available: Some(1),
            maximum_packet_size: Some(1 << 20),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(64),
            reason_string: Some("welcome".into()),
            user_properties: vec![user("a", "b")],
            wildcard_subscription_available: Some(1),
            subscription_identifiers_available: Some(1),
            shared_subscription_available: Some(0),
            server_keep_alive: Some(120),
            response_information: Some("resp/".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("TOKEN".into()),
            authentication_data: Some(Bytes::from_static(b"ok")),
        },
    };
    let theirs = r::ConnAck {
        session_present: true,
        code: r::ConnectReturnCode::Success,
        properties: Some(r::ConnAckProperties {
            session_expiry_interval: Some(0),
            receive_max: Some(64),
            max_qos: Some(1),
            retain_available: Some(1),
            max_packet_size: Some(1 << 20),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_max: Some(64),
            reason_string: Some("welcome".into()),
            user_properties: vec![user("a", "b")],
            wildcard_subscription_available: Some(1),
            subscription_identifiers_available: Some(1),
            shared_subscription_available: Some(0),
            server_keep_alive: Some(120),
            response_information: Some("resp/".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("TOKEN".into()),
            authentication_data: Some(Bytes::from_static(b"ok")),
        }),
    };
    (r::Packet::ConnAck(theirs), Packet::ConnAck(Box::new(ours)))
}

fn publish_case() -> (r::Packet, Packet) {
    let ours = Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "sensors/t1".into(),
        packet_id: 9,
        properties: PublishProperties {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(30),
            topic_alias: Some(3),
            response_topic: Some("r/t1".into()),
            correlation_data: Some(Bytes::from_static(b"\x09")),
            user_properties: vec![user("unit", "C")],
            subscription_identifiers: vec![1, 268_435_455],
            content_type: Some("application/cbor".into()),
        },
        payload: Bytes::from_static(b"\xA1\x01\x02"),
    };
    let theirs = r::Publish {
        dup: true,
        qos: RQoS::AtLeastOnce,
        retain: false,
        topic: Bytes::from_static(b"sensors/t1"),
        pkid: 9,
        payload: Bytes::from_static(b"\xA1\x01\x02"),
        properties: Some(r::PublishProperties {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(30),
            topic_alias: Some(3),
            response_topic: Some("r/t1".into()),
            correlation_data: Some(Bytes::from_static(b"\x09")),
            user_properties: vec![user("unit", "C")],
            subscription_identifiers: vec![1, 268_435_455],
            content_type: Some("application/cbor".into()),
        }),
    };
    (r::Packet::Publish(theirs), Packet::Publish(ours))
}

fn ack_cases() -> Vec<(r::Packet, Packet)> {
    let props = AckProperties { reason_string: Some("none".into()), user_properties: vec![user("x", "y")] };
    let r_props = || r::PubAckProperties { reason_string: Some("none".into()), user_properties: vec![user("x", "y")] };
    vec![
        (
            r::Packet::PubAck(r::PubAck {
                pkid: 1,
                reason: r::PubAckReason::NoMatchingSubscribers,
                properties: Some(r_props()),
            }),
            Packet::PubAck(Ack { packet_id: 1, reason: 0x10, properties: props }),
        ),
        (
            r::Packet::PubAck(r::PubAck { pkid: 2, reason: r::PubAckReason::Success, properties: None }),
            Packet::PubAck(Ack { packet_id: 2, ..Ack::default() }),
        ),
        (
            r::Packet::PubRec(r::PubRec { pkid: 3, reason: r::PubRecReason::QuotaExceeded, properties: None }),
            Packet::PubRec(Ack { packet_id: 3, reason: 0x97, ..Ack::default() }),
        ),
        (
            r::Packet::PubRel(r::PubRel {
                pkid: 4,
                reason: r::PubRelReason::PacketIdentifierNotFound,
                properties: None,
            }),
            Packet::PubRel(Ack { packet_id: 4, reason: 0x92, ..Ack::default() }),
        ),
        (
            r::Packet::PubComp(r::PubComp { pkid: 5, reason: r::PubCompReason::Success, properties: None }),
            Packet::PubComp(Ack { packet_id: 5, ..Ack::default() }),
        ),
    ]
}

fn subscription_cases() -> Vec<(r::Packet, Packet)> {
    let r_filter = r::Filter {
        path: "$share/g/a/#".into(),
        qos: RQoS::AtLeastOnce,
        nolocal: false,
        preserve_retain: true,
        retain_forward_rule: r::RetainForwardRule::OnNewSubscribe,
    };
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: true,
        retain_handling: RetainHandling::SendIfNew,
    };
    let no_local = SubscriptionOptions {
        no_local: true,
        retain_handling: RetainHandling::DoNotSend,
        ..SubscriptionOptions::default()
    };
    let r_no_local = r::Filter {
        nolocal: true,
        retain_forward_rule: r::RetainForwardRule::Never,
        ..r::Filter::new("b", RQoS::AtMostOnce)
    };
    vec![
        (
            r::Packet::Subscribe(r::Subscribe {
                pkid: 10,
                filters: vec![r_filter, r_no_local],
                properties: Some(r::SubscribeProperties { id: Some(77), user_properties: vec![user("k", "v")] }),
            }),
            Packet::Subscribe(Subscribe {
                packet_id: 10,
                subscription_identifier: Some(77),
                user_properties: vec![user("k", "v")],
                filters: vec![
                    SubscribeFilter { filter: "$share/g/a/#".into(), options },
                    SubscribeFilter { filter: "b".into(), options: no_local },
                ],
            }),
        ),
        (
            r::Packet::SubAck(r::SubAck {
                pkid: 10,
                return_codes: vec![
                    r::SubscribeReasonCode::Success(RQoS::ExactlyOnce),
                    r::SubscribeReasonCode::NotAuthorized,
                    r::SubscribeReasonCode::SharedSubscriptionsNotSupported,
                ],
                properties: None,
            }),
            Packet::SubAck(SubAck { packet_id: 10, reasons: vec![2, 0x87, 0x9E], ..SubAck::default() }),
        ),
        (
            r::Packet::Unsubscribe(r::Unsubscribe {
                pkid: 11,
                filters: vec!["a/#".into()],
                properties: Some(r::UnsubscribeProperties { user_properties: vec![user("k", "v")] }),
            }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 11,
                user_properties: vec![user("k", "v")],
                filters: vec!["a/#".into()],
            }),
        ),
        (
            r::Packet::UnsubAck(r::UnsubAck {
                pkid: 11,
                reasons: vec![r::UnsubAckReason::Success, r::UnsubAckReason::NoSubscriptionExisted],
                properties: None,
            }),
            Packet::UnsubAck(UnsubAck { packet_id: 11, reasons: vec![0, 0x11], ..UnsubAck::default() }),
        ),
    ]
}

fn cases() -> Vec<(r::Packet, Packet)> {
    let mut cases = vec![connect_case(), connack_case(), publish_case()];
    cases.extend(ack_cases());
    cases.extend(subscription_cases());
    cases.push((r::Packet::PingReq(r::PingReq), Packet::PingReq));
    cases.push((r::Packet::PingResp(r::PingResp), Packet::PingResp));
    cases
}

#[test]
fn rumqttc_bytes_decode_here() {
    for (theirs, ours) in cases() {
        let mut buf = BytesMut::new();
        assert!(theirs.write(&mut buf).is_ok(), "rumqttc cannot write {theirs:?}");
        assert_eq!(dec(&buf, V5).ok().as_ref(), Some(&ours), "{theirs:?}");
    }
}

/// One way only: rumqttc 0.24 rejects the Remaining Length 0 DISCONNECT the spec allows,
/// mis-frames one with a reason code and no properties (Remaining Length 1, two bytes
/// written) and cannot build one with properties (private type).
#[test]
fn rumqttc_disconnect_decodes_here() {
    let theirs = r::Disconnect::new(r::DisconnectReasonCode::NormalDisconnection);
    let mut buf = BytesMut::new();
    assert!(theirs.write(&mut buf).is_ok());
    assert_eq!(dec(&buf, V5).ok(), Some(Packet::Disconnect(Disconnect::default())));
}

#[test]
fn our_bytes_decode_in_rumqttc() {
    for (theirs, ours) in cases() {
        let mut buf = BytesMut::from(&enc(&ours, V5)[..]);
        let read = r::Packet::read(&mut buf, Some(MAX));
        assert_eq!(read.ok().as_ref(), Some(&theirs), "{ours:?}");
        assert!(buf.is_empty());
    }
}
