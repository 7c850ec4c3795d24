//! Spec byte vectors (MQTT-SN 1.2 §5.4), malformed inputs and property round-trips.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn dec(b: &[u8]) -> Result<Message, DecodeError> {
    decode(&Bytes::copy_from_slice(b))
}

fn enc(m: &Message) -> Vec<u8> {
    to_bytes(m).unwrap().to_vec()
}

#[test]
fn connect_vector() {
    // Length 0x0A, CONNECT, flags: will + clean session, protocol 1, duration 60, "abcd".
    let b = [0x0A, 0x04, 0x0C, 0x01, 0x00, 0x3C, b'a', b'b', b'c', b'd'];
    let m = dec(&b).unwrap();
    let Message::Connect(c) = &m else { panic!("{m:?}") };
    assert!(c.flags.will && c.flags.clean_session);
    assert_eq!(c.duration, 60);
    assert_eq!(c.client_id, "abcd");
    assert_eq!(enc(&m), b);
}

#[test]
fn publish_vectors_every_qos_and_topic_type() {
    // QoS 1, normal topic id 0x0102, msg id 0x0304, "hi".
    let b = [0x09, 0x0C, 0x20, 0x01, 0x02, 0x03, 0x04, b'h', b'i'];
    let Message::Publish(p) = dec(&b).unwrap() else { panic!() };
    assert_eq!(
        (p.flags.qos, p.flags.topic_id_type, p.topic_id, p.msg_id),
        (SnQos::AtLeastOnce, TopicIdType::Normal, TopicId(0x0102), MsgId(0x0304))
    );
    assert_eq!(&p.data[..], b"hi");
    // QoS -1, predefined id 5, retain.
    let b = [0x07, 0x0C, 0x71, 0x00, 0x05, 0x00, 0x00];
    let Message::Publish(p) = dec(&b).unwrap() else { panic!() };
    assert_eq!((p.flags.qos, p.flags.topic_id_type, p.flags.retain), (SnQos::MinusOne, TopicIdType::Predefined, true));
    // QoS 2, short topic "ab", dup.
    let b = [0x07, 0x0C, 0xC2, b'a', b'b', 0x00, 0x07];
    let Message::Publish(p) = dec(&b).unwrap() else { panic!() };
    assert_eq!((p.flags.qos, p.flags.topic_id_type, p.flags.dup), (SnQos::ExactlyOnce, TopicIdType::Short, true));
    assert_eq!(p.topic_id.0.to_be_bytes(), *b"ab");
}

#[test]
fn long_length_form() {
    let data = vec![7u8; 300];
    let m = Message::Publish(Publish {
        flags: Flags::default(),
        topic_id: TopicId(1),
        msg_id: MsgId(0),
        data: Bytes::from(data),
    });
    let b = enc(&m);
    // 3 (length) + 1 (type) + 5 (flags, topic id, msg id) + 300 = 309 = 0x0135.
    assert_eq!(&b[..3], &[0x01, 0x01, 0x35]);
    assert_eq!(b.len(), 0x0135);
    assert_eq!(dec(&b).unwrap(), m);
    // The 3-byte form is legal for short messages too.
    assert_eq!(dec(&[0x01, 0x00, 0x04, 0x17]).unwrap(), Message::PingResp);
}

#[test]
fn small_messages() {
    assert_eq!(dec(&[0x02, 0x17]).unwrap(), Message::PingResp);
    assert_eq!(dec(&[0x02, 0x16]).unwrap(), Message::PingReq { client_id: None });
    assert_eq!(dec(&[0x04, 0x16, b'i', b'd']).unwrap(), Message::PingReq { client_id: Some("id".into()) });
    assert_eq!(dec(&[0x02, 0x18]).unwrap(), Message::Disconnect { duration: None });
    assert_eq!(dec(&[0x04, 0x18, 0x01, 0x00]).unwrap(), Message::Disconnect { duration: Some(256) });
    assert_eq!(dec(&[0x03, 0x01, 0x01]).unwrap(), Message::SearchGw { radius: 1 });
    assert_eq!(enc(&Message::GwInfo { gw_id: 9, gw_addr: Bytes::new() }), [0x03, 0x02, 0x09]);
    assert_eq!(enc(&Message::Advertise { gw_id: 9, duration: 900 }), [0x05, 0x00, 0x09, 0x03, 0x84]);
    assert_eq!(enc(&Message::ConnAck { rc: ReturnCode::Congestion }), [0x03, 0x05, 0x01]);
    assert_eq!(dec(&[0x02, 0x07]).unwrap(), Message::WillTopic(None));
    assert_eq!(
        enc(&Message::RegAck { topic_id: TopicId(1), msg_id: MsgId(2), rc: ReturnCode::InvalidTopicId }),
        [0x07, 0x0B, 0x00, 0x01, 0x00, 0x02, 0x02]
    );
}

#[test]
fn subscribe_forms() {
    let b = [0x08, 0x12, 0x20, 0x00, 0x01, b'a', b'/', b'#'];
    assert_eq!(
        dec(&b).unwrap(),
        Message::Subscribe {
            flags: Flags { qos: SnQos::AtLeastOnce, ..Flags::default() },
            msg_id: MsgId(1),
            topic: TopicRef::Name("a/#".into())
        }
    );
    let b = [0x07, 0x12, 0x01, 0x00, 0x01, 0x00, 0x05];
    assert!(matches!(dec(&b).unwrap(), Message::Subscribe { topic: TopicRef::Predefined(TopicId(5)), .. }));
    let b = [0x07, 0x14, 0x02, 0x00, 0x01, b'x', b'y'];
    assert!(matches!(dec(&b).unwrap(), Message::Unsubscribe { topic: TopicRef::Short(s), .. } if &s == b"xy"));
}

#[test]
fn malformed_inputs_are_errors() {
    assert_eq!(dec(&[]), Err(DecodeError::TooShort(0)));
    assert_eq!(dec(&[0x05]), Err(DecodeError::TooShort(1)));
    assert_eq!(dec(&[0x03, 0x17]), Err(DecodeError::BadLength { declared: 3, actual: 2 }));
    assert_eq!(dec(&[0x02, 0x17, 0x00]), Err(DecodeError::BadLength { declared: 2, actual: 3 }));
    assert_eq!(dec(&[0x01, 0x00]), Err(DecodeError::TooShort(2)));
    assert_eq!(dec(&[0x01, 0x00, 0x03]), Err(DecodeError::TooShort(3)));
    assert_eq!(dec(&[0x01, 0x17]), Err(DecodeError::TooShort(2)));
    assert_eq!(dec(&[0x00, 0x17]), Err(DecodeError::BadLength { declared: 0, actual: 2 }));
    assert_eq!(dec(&[0x02, 0x03]), Err(DecodeError::UnknownType(0x03)));
    assert_eq!(dec(&[0x02, 0xFF]), Err(DecodeError::UnknownType(0xFF)));
    assert!(matches!(dec(&[0x04, 0x0C, 0x00, 0x01]), Err(DecodeError::Truncated { msg: "PUBLISH", .. })));
    assert_eq!(dec(&[0x03, 0x0C, 0x03]), Err(DecodeError::ReservedTopicIdType("PUBLISH")));
    assert_eq!(dec(&[0x06, 0x04, 0x00, 0x02, 0x00, 0x00]), Err(DecodeError::ProtocolId(2)));
    assert_eq!(dec(&[0x05, 0x0E, 0x00, 0x01, 0x00]), Err(DecodeError::TrailingBytes("PUBCOMP")));
    assert_eq!(dec(&[0x06, 0x0A, 0x00, 0x00, 0x00, 0x01]), Err(DecodeError::Empty("REGISTER", "topic name")));
    assert_eq!(dec(&[0x08, 0x0A, 0x00, 0x00, 0x00, 0x01, 0xC3, 0x28]), Err(DecodeError::NotUtf8("REGISTER")));
}

#[test]
fn encapsulation() {
    let inner = enc(&Message::PingReq { client_id: None });
    let wrapped = encode_encapsulated(1, b"node7", &inner).unwrap();
    assert_eq!(&wrapped[..3], &[8, 0xFE, 1]);
    let e = decode_encapsulated(&wrapped).unwrap().unwrap();
    assert_eq!((&e.node_id[..], e.radius), (&b"node7"[..], 1));
    assert_eq!(decode(&e.inner).unwrap(), Message::PingReq { client_id: None });
    assert!(decode_encapsulated(&Bytes::from_static(&[0x02, 0x17])).unwrap().is_none());
    assert!(decode_encapsulated(&Bytes::from_static(&[0x02, 0xFE])).is_err());
    assert!(decode_encapsulated(&Bytes::from_static(&[0x05, 0xFE, 0x00, 0x01, 0x02])).is_err());
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9/+#]{{1,{max}}}")).unwrap()
}

fn flags() -> impl Strategy<Value = Flags> {
    (any::<bool>(), 0u8..4, any::<bool>(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(
        |(dup, q, retain, will, clean, t)| Flags {
            dup,
            qos: [SnQos::AtMostOnce, SnQos::AtLeastOnce, SnQos::ExactlyOnce, SnQos::MinusOne][q as usize],
            retain,
            will,
            clean_session: clean,
            topic_id_type: [TopicIdType::Normal, TopicIdType::Predefined, TopicIdType::Short][t as usize],
        },
    )
}

fn rc() -> impl Strategy<Value = ReturnCode> {
    any::<u8>().prop_map(ReturnCode::from_u8)
}

fn payload() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from)
}

fn topic_ref_for(f: Flags) -> BoxedStrategy<TopicRef> {
    match f.topic_id_type {
        TopicIdType::Normal => text(40).prop_map(TopicRef::Name).boxed(),
        TopicIdType::Predefined => any::<u16>().prop_map(|id| TopicRef::Predefined(TopicId(id))).boxed(),
        TopicIdType::Short => any::<[u8; 2]>().prop_map(TopicRef::Short).boxed(),
    }
}

fn message() -> impl Strategy<Value = Message> {
    let will = proptest::option::of((flags(), text(30)).prop_map(|(flags, topic)| WillTopic { flags, topic })).boxed();
    prop_oneof![
        (any::<u8>(), any::<u16>()).prop_map(|(gw_id, duration)| Message::Advertise { gw_id, duration }),
        any::<u8>().prop_map(|radius| Message::SearchGw { radius }),
        (any::<u8>(), payload()).prop_map(|(gw_id, gw_addr)| Message::GwInfo { gw_id, gw_addr }),
        (flags(), any::<u16>(), text(23)).prop_map(|(flags, duration, client_id)| Message::Connect(Connect {
            flags,
            duration,
            client_id
        })),
        rc().prop_map(|rc| Message::ConnAck { rc }),
        Just(Message::WillTopicReq),
        will.clone().prop_map(Message::WillTopic),
        Just(Message::WillMsgReq),
        payload().prop_map(Message::WillMsg),
        (any::<u16>(), any::<u16>(), text(60)).prop_map(|(topic_id, msg_id, topic_name)| {
            Message::Register { topic_id: TopicId(topic_id), msg_id: MsgId(msg_id), topic_name }
        }),
        (any::<u16>(), any::<u16>(), rc()).prop_map(|(topic_id, msg_id, rc)| Message::RegAck {
            topic_id: TopicId(topic_id),
            msg_id: MsgId(msg_id),
            rc
        }),
        (flags(), any::<u16>(), any::<u16>(), payload()).prop_map(|(flags, topic_id, msg_id, data)| Message::Publish(
            Publish { flags, topic_id: TopicId(topic_id), msg_id: MsgId(msg_id), data }
        )),
        (any::<u16>(), any::<u16>(), rc()).prop_map(|(topic_id, msg_id, rc)| Message::PubAck {
            topic_id: TopicId(topic_id),
            msg_id: MsgId(msg_id),
            rc
        }),
        any::<u16>().prop_map(|msg_id| Message::PubComp { msg_id: MsgId(msg_id) }),
        any::<u16>().prop_map(|msg_id| Message::PubRec { msg_id: MsgId(msg_id) }),
        any::<u16>().prop_map(|msg_id| Message::PubRel { msg_id: MsgId(msg_id) }),
        (flags(), any::<u16>(), any::<bool>()).prop_flat_map(|(flags, msg_id, sub)| topic_ref_for(flags).prop_map(
            move |topic| if sub {
                Message::Subscribe { flags, msg_id: MsgId(msg_id), topic }
            } else {
                Message::Unsubscribe { flags, msg_id: MsgId(msg_id), topic }
            }
        )),
        (flags(), any::<u16>(), any::<u16>(), rc()).prop_map(|(flags, topic_id, msg_id, rc)| {
            Message::SubAck { flags, topic_id: TopicId(topic_id), msg_id: MsgId(msg_id), rc }
        }),
        any::<u16>().prop_map(|msg_id| Message::UnsubAck { msg_id: MsgId(msg_id) }),
        proptest::option::of(text(23)).prop_map(|client_id| Message::PingReq { client_id }),
        Just(Message::PingResp),
        proptest::option::of(any::<u16>()).prop_map(|duration| Message::Disconnect { duration }),
        will.prop_map(Message::WillTopicUpd),
        rc().prop_map(|rc| Message::WillTopicResp { rc }),
        payload().prop_map(Message::WillMsgUpd),
        rc().prop_map(|rc| Message::WillMsgResp { rc }),
    ]
}

proptest! {
    #[test]
    fn round_trip(m in message()) {
        let b = to_bytes(&m).unwrap();
        prop_assert_eq!(decode(&b).unwrap(), m);
    }

    #[test]
    fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = Bytes::from(b);
        let _ = decode(&b);
        if let Ok(Some(e)) = decode_encapsulated(&b) {
            let _ = decode(&e.inner);
        }
    }
}
