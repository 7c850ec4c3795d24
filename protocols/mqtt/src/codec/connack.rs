//! Codec layer: CONNACK (3.1.1 §3.2, 5.0 §3.2).
//!
//! `ConnAck::code` is always a v5 reason code. For 3.1.1 it is sent through
//! [`connack_code_v3`] and a received return code is mapped back (0 -> 0x00, 1 -> 0x84,
//! 2 -> 0x85, 3 -> 0x88, 4 -> 0x86, 5 -> 0x87); 6-255 are reserved and malformed.

use super::error::DecodeError;
use super::primitives::{Reader, Sink};
use super::properties::{self as props, Property, WriteProperties, id, not_allowed, set_once};
use super::{ConnAck, ConnAckProperties, ProtocolVersion, connack_code_v3, reason};

/// Reason codes of CONNACK (5.0 §3.2.2.2).
pub(crate) const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
    0x9C, 0x9D, 0x9F,
];

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("acknowledge flags")?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::malformed("CONNACK", "reserved acknowledge flags are set"));
    }
    let code = if v.is_v5() { r.reason(CONNACK_REASONS)? } else { v3_code(&mut r)? };
    let properties = if v.is_v5() { read_properties(&mut r)? } else { Default::default() };
    r.finish()?;
    Ok(ConnAck { session_present: flags & 0x01 != 0, code, properties })
}

fn v3_code(r: &mut Reader) -> Result<u8, DecodeError> {
    Ok(match r.u8("return code")? {
        0 => reason::SUCCESS,
        1 => reason::UNSUPPORTED_PROTOCOL_VERSION,
        2 => reason::CLIENT_IDENTIFIER_NOT_VALID,
        3 => reason::SERVER_UNAVAILABLE,
        4 => reason::BAD_USER_NAME_OR_PASSWORD,
        5 => reason::NOT_AUTHORIZED,
        other => {
            let what = format!("return code {other} is reserved");
            return Err(DecodeError::malformed("CONNACK", what));
        }
    })
}

fn read_properties(r: &mut Reader) -> Result<ConnAckProperties, DecodeError> {
    let packet = r.packet();
    let mut p = ConnAckProperties::default();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::SessionExpiryInterval(v) => set_once(packet, &mut p.session_expiry_interval, id, v),
            Property::ReceiveMaximum(v) => set_once(packet, &mut p.receive_maximum, id, v),
            Property::MaximumQos(v) => set_once(packet, &mut p.maximum_qos, id, v),
            Property::RetainAvailable(v) => set_once(packet, &mut p.retain_available, id, v),
            Property::MaximumPacketSize(v) => set_once(packet, &mut p.maximum_packet_size, id, v),
            Property::AssignedClientIdentifier(v) => set_once(packet, &mut p.assigned_client_identifier, id, v),
            Property::TopicAliasMaximum(v) => set_once(packet, &mut p.topic_alias_maximum, id, v),
            Property::ReasonString(v) => set_once(packet, &mut p.reason_string, id, v),
            Property::User(k, v) => {
                p.user_properties.push((k, v));
                Ok(())
            }
            Property::WildcardSubscriptionAvailable(v) => {
                set_once(packet, &mut p.wildcard_subscription_available, id, v)
            }
            Property::SubscriptionIdentifierAvailable(v) => {
                set_once(packet, &mut p.subscription_identifiers_available, id, v)
            }
            Property::SharedSubscriptionAvailable(v) => set_once(packet, &mut p.shared_subscription_available, id, v),
            Property::ServerKeepAlive(v) => set_once(packet, &mut p.server_keep_alive, id, v),
            Property::ResponseInformation(v) => set_once(packet, &mut p.response_information, id, v),
            Property::ServerReference(v) => set_once(packet, &mut p.server_reference, id, v),
            Property::AuthenticationMethod(v) => set_once(packet, &mut p.authentication_method, id, v),
            Property::AuthenticationData(v) => set_once(packet, &mut p.authentication_data, id, v),
            other => Err(not_allowed(packet, &other)),
        }
    })?;
    Ok(p)
}

pub(crate) fn write<S: Sink>(c: &ConnAck, v: ProtocolVersion, s: &mut S) {
    s.u8(u8::from(c.session_present));
    if v.is_v5() {
        s.u8(c.code);
        props::put_properties(s, &c.properties);
    } else {
        s.u8(connack_code_v3(c.code));
    }
}

impl WriteProperties for ConnAckProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        props::put_u32(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        props::put_u16(s, id::RECEIVE_MAXIMUM, self.receive_maximum);
        props::put_u8(s, id::MAXIMUM_QOS, self.maximum_qos);
        props::put_u8(s, id::RETAIN_AVAILABLE, self.retain_available);
        props::put_u32(s, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        let assigned = self.assigned_client_identifier.as_deref();
        props::put_string(s, id::ASSIGNED_CLIENT_IDENTIFIER, assigned);
        props::put_u16(s, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        props::put_string(s, id::REASON_STRING, self.reason_string.as_deref());
        props::put_user_properties(s, &self.user_properties);
        let wildcard = self.wildcard_subscription_available;
        props::put_u8(s, id::WILDCARD_SUBSCRIPTION_AVAILABLE, wildcard);
        let sub_ids = self.subscription_identifiers_available;
        props::put_u8(s, id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, sub_ids);
        props::put_u8(s, id::SHARED_SUBSCRIPTION_AVAILABLE, self.shared_subscription_available);
        props::put_u16(s, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        props::put_string(s, id::RESPONSE_INFORMATION, self.response_information.as_deref());
        props::put_string(s, id::SERVER_REFERENCE, self.server_reference.as_deref());
        props::put_string(s, id::AUTHENTICATION_METHOD, self.authentication_method.as_deref());
        props::put_binary(s, id::AUTHENTICATION_DATA, self.authentication_data.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::Packet;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn connack(session_present: bool, code: u8) -> Packet {
        Packet::ConnAck(Box::new(ConnAck { session_present, code, ..ConnAck::default() }))
    }

    #[test]
    fn v3_vectors() {
        assert_vector(&[0x20, 0x02, 0x01, 0x00], V3, &connack(true, 0));
        let v3_codes = [(1, 0x84), (2, 0x85), (3, 0x88), (4, 0x86), (5, 0x87)];
        for (v3, v5) in v3_codes {
            assert_vector(&[0x20, 0x02, 0x00, v3], V3, &connack(false, v5));
        }
        // v5 codes without a 3.1.1 twin become "server unavailable".
        assert_eq!(enc(&connack(false, reason::SERVER_BUSY), V3), [0x20, 0x02, 0x00, 0x03]);
        assert_eq!(enc(&connack(false, reason::QUOTA_EXCEEDED), V3), [0x20, 0x02, 0x00, 0x03]);
    }

    #[test]
    fn v5_vectors() {
        assert_vector(&[0x20, 0x03, 0x00, 0x00, 0x00], V5, &connack(false, 0));
        assert_vector(&[0x20, 0x03, 0x00, 0x86, 0x00], V5, &connack(false, 0x86));
        let bytes = b"\x20\x41\x01\x00\x3E\
            \x11\x00\x00\x00\x0A\x21\x00\x0A\x24\x01\x25\x00\x27\x00\x01\x00\x00\
            \x12\x00\x02id\x22\x00\x05\x1F\x00\x02ok\x26\x00\x01a\x00\x01b\
            \x28\x01\x29\x00\x2A\x01\x13\x00\x3C\x1A\x00\x01r\x1C\x00\x01s\
            \x15\x00\x01m\x16\x00\x01\x09";
        let c = ConnAck {
            session_present: true,
            code: 0,
            properties: ConnAckProperties {
                session_expiry_interval: Some(10),
                receive_maximum: Some(10),
                maximum_qos: Some(1),
                retain_available: Some(0),
                maximum_packet_size: Some(65_536),
                assigned_client_identifier: Some("id".into()),
                topic_alias_maximum: Some(5),
                reason_string: Some("ok".into()),
                user_properties: vec![("a".into(), "b".into())],
                wildcard_subscription_available: Some(1),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(1),
                server_keep_alive: Some(60),
                response_information: Some("r".into()),
                server_reference: Some("s".into()),
                authentication_method: Some("m".into()),
                authentication_data: Some(Bytes::from_static(b"\x09")),
            },
        };
        assert_vector(bytes, V5, &Packet::ConnAck(Box::new(c)));
    }

    #[test]
    fn errors() {
        let flags = "CONNACK: reserved acknowledge flags are set";
        assert_err(&[0x20, 0x02, 0x02, 0x00], V3, flags, 0x81);
        assert_err(&[0x20, 0x02, 0x00, 0x06], V3, "CONNACK: return code 6 is reserved", 0x81);
        assert_err(&[0x20, 0x03, 0x00, 0x00, 0x00], V3, "CONNACK: 1 unexpected bytes at the end of the packet", 0x81);
        assert_err(&[0x20, 0x03, 0x00, 0x01, 0x00], V5, "CONNACK: reason code 0x01 is invalid", 0x82);
        assert_err(&[0x20, 0x02, 0x00, 0x00], V5, "CONNACK: property length is truncated", 0x81);
        let alias = "CONNACK: property Topic Alias (0x23) is not allowed";
        assert_err(&[0x20, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01], V5, alias, 0x81);
        let qos = "CONNACK: Maximum QoS must be 0 or 1, not 2";
        assert_err(&[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02], V5, qos, 0x82);
    }

    fn properties() -> impl Strategy<Value = ConnAckProperties> {
        (
            (
                any::<Option<u32>>(),
                proptest::option::of(1u16..),
                flag(),
                flag(),
                proptest::option::of(1u32..),
                proptest::option::of(text()),
            ),
            (any::<Option<u16>>(), proptest::option::of(text()), users(), flag(), flag(), flag()),
            (
                any::<Option<u16>>(),
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(bytes()),
            ),
        )
            .prop_map(|(a, b, c)| ConnAckProperties {
                session_expiry_interval: a.0,
                receive_maximum: a.1,
                maximum_qos: a.2,
                retain_available: a.3,
                maximum_packet_size: a.4,
                assigned_client_identifier: a.5,
                topic_alias_maximum: b.0,
                reason_string: b.1,
                user_properties: b.2,
                wildcard_subscription_available: b.3,
                subscription_identifiers_available: b.4,
                shared_subscription_available: b.5,
                server_keep_alive: c.0,
                response_information: c.1,
                server_reference: c.2,
                authentication_method: c.3,
                authentication_data: c.4,
            })
    }

    proptest! {
        #[test]
        fn round_trips_v5(present: bool, code in reason_of(CONNACK_REASONS), properties in properties()) {
            let c = ConnAck { session_present: present, code, properties };
            round_trip(&Packet::ConnAck(Box::new(c)), V5)?;
        }

        #[test]
        fn round_trips_v3(present: bool, code in reason_of(&[0x00, 0x84, 0x85, 0x88, 0x86, 0x87])) {
            round_trip(&connack(present, code), V3)?;
        }
    }
}
