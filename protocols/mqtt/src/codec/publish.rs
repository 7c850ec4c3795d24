//! Codec layer: PUBLISH (3.1.1 §3.3, 5.0 §3.3).
//!
//! The fixed header flags (DUP, QoS, RETAIN) are checked with the fixed header, before the
//! body arrives; here the topic name, packet identifier, v5 properties and payload. The
//! payload shares the receive buffer (no copy).

use super::error::DecodeError;
use super::frame::{put_packet_id, read_packet_id};
use super::primitives::{Reader, Sink, check_topic_name};
use super::properties::{self as props, Property, WriteProperties, id, not_allowed, set_once};
use super::{ProtocolVersion, Publish, PublishProperties, QoS};

pub(crate) fn decode(mut r: Reader, flags: u8, v: ProtocolVersion) -> Result<Publish, DecodeError> {
    let Some(qos) = QoS::from_u8((flags >> 1) & 0b11) else {
        return Err(DecodeError::malformed("PUBLISH", "QoS 3 is invalid"));
    };
    let topic = check_topic_name("PUBLISH", r.string("topic name")?)?;
    let packet_id = if qos == QoS::AtMostOnce { 0 } else { read_packet_id(&mut r)? };
    let properties = if v.is_v5() { read_properties(&mut r)? } else { Default::default() };
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

fn read_properties(r: &mut Reader) -> Result<PublishProperties, DecodeError> {
    let packet = r.packet();
    let mut p = PublishProperties::default();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::PayloadFormatIndicator(v) => set_once(packet, &mut p.payload_format_indicator, id, v),
            Property::MessageExpiryInterval(v) => set_once(packet, &mut p.message_expiry_interval, id, v),
            Property::TopicAlias(v) => set_once(packet, &mut p.topic_alias, id, v),
            Property::ResponseTopic(v) => set_once(packet, &mut p.response_topic, id, check_topic_name(packet, v)?),
            Property::CorrelationData(v) => set_once(packet, &mut p.correlation_data, id, v),
            Property::User(k, v) => {
                p.user_properties.push((k, v));
                Ok(())
            }
            Property::SubscriptionIdentifier(v) => {
                p.subscription_identifiers.push(v);
                Ok(())
            }
            Property::ContentType(v) => set_once(packet, &mut p.content_type, id, v),
            other => Err(not_allowed(packet, &other)),
        }
    })?;
    Ok(p)
}

pub(crate) fn write<S: Sink>(p: &Publish, v: ProtocolVersion, s: &mut S) {
    if p.dup && p.qos == QoS::AtMostOnce {
        s.fail("DUP flag is set on a QoS 0 message".into());
    }
    s.topic_name("topic name", &p.topic);
    if p.qos != QoS::AtMostOnce {
        put_packet_id(s, p.packet_id);
    }
    if v.is_v5() {
        props::put_properties(s, &p.properties);
    }
    s.put(&p.payload);
}

impl WriteProperties for PublishProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        props::put_u8(s, id::PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        props::put_u32(s, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        props::put_u16(s, id::TOPIC_ALIAS, self.topic_alias);
        if let Some(topic) = &self.response_topic {
            s.u8(id::RESPONSE_TOPIC);
            s.topic_name("Response Topic", topic);
        }
        props::put_binary(s, id::CORRELATION_DATA, self.correlation_data.as_deref());
        props::put_user_properties(s, &self.user_properties);
        for &sub_id in &self.subscription_identifiers {
            props::put_varint(s, id::SUBSCRIPTION_IDENTIFIER, sub_id);
        }
        props::put_string(s, id::CONTENT_TYPE, self.content_type.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::Packet;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn publish(topic: &str, qos: QoS, packet_id: u16, payload: &'static [u8]) -> Publish {
        Publish { topic: topic.into(), qos, packet_id, payload: Bytes::from_static(payload), ..Publish::default() }
    }

    #[test]
    fn v3_vectors() {
        let qos0 = publish("a/b", QoS::AtMostOnce, 0, b"hello");
        let bytes = b"\x30\x0A\x00\x03a/bhello";
        assert_vector(bytes, V3, &Packet::Publish(qos0));
        let qos1 = Publish { dup: true, retain: true, ..publish("a/b", QoS::AtLeastOnce, 10, b"") };
        assert_vector(b"\x3B\x07\x00\x03a/b\x00\x0A", V3, &Packet::Publish(qos1));
        // v5 properties are dropped when encoding for 3.1.1.
        let mut with_props = publish("a/b", QoS::AtMostOnce, 0, b"hello");
        with_props.properties.message_expiry_interval = Some(60);
        assert_eq!(enc(&Packet::Publish(with_props), V3), bytes);
    }

    #[test]
    fn v5_vectors() {
        let bytes = b"\x34\x32\x00\x03a/b\x00\x0A\x28\
            \x01\x01\x02\x00\x00\x00\x3C\x23\x00\x05\x08\x00\x03r/t\x09\x00\x02\xDE\xAD\
            \x26\x00\x01k\x00\x01v\x0B\x81\x01\x0B\x05\x03\x00\x04jsonhi";
        let mut p = publish("a/b", QoS::ExactlyOnce, 10, b"hi");
        p.properties = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(5),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(&[0xDE, 0xAD])),
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![129, 5],
            content_type: Some("json".into()),
        };
        assert_vector(bytes, V5, &Packet::Publish(p));
        // Empty topic name standing in for a topic alias.
        let mut aliased = publish("", QoS::AtMostOnce, 0, b"x");
        aliased.properties.topic_alias = Some(1);
        assert_vector(b"\x30\x07\x00\x00\x03\x23\x00\x01x", V5, &Packet::Publish(aliased));
    }

    #[test]
    fn flag_errors() {
        for v in [V3, V5] {
            assert_err(b"\x36\x02\x00\x00", v, "PUBLISH: QoS 3 is invalid", 0x81);
        }
        let dup0 = b"\x38\x04\x00\x01a\x00";
        assert_err(dup0, V5, "PUBLISH: DUP flag is set on a QoS 0 message", 0x82);
        assert_err(dup0, V3, "PUBLISH: DUP flag is set on a QoS 0 message", 0x81);
    }

    #[test]
    fn body_errors() {
        let wildcard = "PUBLISH: topic name \"a/#\" contains a wildcard";
        assert_err(b"\x30\x05\x00\x03a/#", V3, wildcard, 0x90);
        assert_err(b"\x30\x04\x00\x02+/", V3, "PUBLISH: topic name \"+/\" contains a wildcard", 0x90);
        assert_err(b"\x32\x05\x00\x01a\x00\x00", V3, "PUBLISH: packet identifier is 0", 0x82);
        assert_err(b"\x32\x04\x00\x01a\x00", V3, "PUBLISH: packet identifier is truncated", 0x81);
        assert_err(b"\x30\x04\x00\x02\xC3\x28", V3, "PUBLISH: topic name is not valid UTF-8", 0x81);
        assert_err(b"\x30\x04\x00\x02a\x00", V3, "PUBLISH: topic name contains U+0000", 0x81);
        assert_err(b"\x30\x03\x00\x05a", V3, "PUBLISH: topic name is truncated", 0x81);
    }

    #[test]
    fn property_errors() {
        let cases: [(&[u8], &str, u8); 6] = [
            (
                b"\x30\x09\x00\x01a\x05\x11\x00\x00\x00\x01",
                "property Session Expiry Interval (0x11) is not allowed",
                0x81,
            ),
            (b"\x30\x0A\x00\x01a\x06\x23\x00\x01\x23\x00\x02", "property Topic Alias appears more than once", 0x82),
            (b"\x30\x06\x00\x01a\x02\x0B\x00", "Subscription Identifier must not be 0", 0x82),
            (b"\x30\x07\x00\x01a\x03\x23\x00\x00", "Topic Alias must not be 0", 0x82),
            (b"\x30\x06\x00\x01a\x02\x01\x02", "Payload Format Indicator must be 0 or 1, not 2", 0x82),
            (b"\x30\x04\x00\x01a\x05", "property block is truncated", 0x81),
        ];
        for (bytes, msg, code) in cases {
            assert_err(bytes, V5, &format!("PUBLISH: {msg}"), code);
        }
        let wildcard = "PUBLISH: topic name \"r/+\" contains a wildcard";
        assert_err(b"\x30\x0A\x00\x01a\x06\x08\x00\x03r/+", V5, wildcard, 0x90);
    }

    #[test]
    fn encoder_refuses_what_the_decoder_would_reject() {
        let mut buf = bytes::BytesMut::new();
        let cases = [
            (publish("a/+", QoS::AtMostOnce, 0, b""), "PUBLISH: topic name \"a/+\" contains a wildcard"),
            (publish("a", QoS::AtLeastOnce, 0, b""), "PUBLISH: packet identifier is 0"),
            (
                Publish { dup: true, ..publish("a", QoS::AtMostOnce, 0, b"") },
                "PUBLISH: DUP flag is set on a QoS 0 message",
            ),
        ];
        for (p, msg) in cases {
            let err = crate::codec::encode(&Packet::Publish(p), V5, &mut buf).unwrap_err();
            assert_eq!(err.to_string(), msg);
            assert!(buf.is_empty());
        }
    }

    fn v5_properties() -> impl Strategy<Value = PublishProperties> {
        (
            (flag(), any::<Option<u32>>(), proptest::option::of(1u16..)),
            (proptest::option::of(topic()), proptest::option::of(bytes()), users()),
            (proptest::collection::vec(1u32..=268_435_455, 0..3), proptest::option::of(text())),
        )
            .prop_map(|((pfi, expiry, alias), (response, corr, users), (sub_ids, content))| {
                PublishProperties {
                    payload_format_indicator: pfi,
                    message_expiry_interval: expiry,
                    topic_alias: alias,
                    response_topic: response,
                    correlation_data: corr,
                    user_properties: users,
                    subscription_identifiers: sub_ids,
                    content_type: content,
                }
            })
    }

    fn any_publish(v5: bool) -> impl Strategy<Value = Publish> {
        (qos(), any::<(bool, bool)>(), topic(), packet_id(), bytes(), v5_properties()).prop_map(
            move |(qos, (dup, retain), topic, id, payload, properties)| {
                let qos0 = qos == QoS::AtMostOnce;
                Publish {
                    dup: dup && !qos0,
                    qos,
                    retain,
                    topic,
                    packet_id: if qos0 { 0 } else { id },
                    properties: if v5 { properties } else { PublishProperties::default() },
                    payload,
                }
            },
        )
    }

    proptest! {
        #[test]
        fn round_trips_v5(p in any_publish(true)) {
            round_trip(&Packet::Publish(p), V5)?;
        }

        #[test]
        fn round_trips_v3(p in any_publish(false)) {
            round_trip(&Packet::Publish(p), V3)?;
        }
    }
}
