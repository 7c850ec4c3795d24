//! CONNECT byte vectors, error cases and round-trips.

use super::super::testutil::*;
use super::*;
use crate::codec::Packet;
use bytes::Bytes;
use proptest::prelude::*;

fn connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect { protocol, client_id: client_id.into(), ..Connect::default() }
}

#[test]
fn v311_minimal() {
    let bytes = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3C\x00\x04test";
    let c = Connect { clean_start: true, keep_alive: 60, ..connect(V3, "test") };
    assert_vector(bytes, V3, &Packet::Connect(Box::new(c.clone())));
    // CONNECT carries its own version: the connection's version does not matter.
    assert_eq!(dec(bytes, V5).ok(), Some(Packet::Connect(Box::new(c))));
}

#[test]
fn v31_with_will_and_login() {
    let bytes = b"\x10\x1D\x00\x06MQIsdp\x03\xEE\x00\x0A\x00\x01c\
        \x00\x01w\x00\x03bye\x00\x01u\x00\x01p";
    let c = Connect {
        clean_start: true,
        keep_alive: 10,
        will: Some(LastWill {
            topic: "w".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        ..connect(ProtocolVersion::V31, "c")
    };
    assert_vector(bytes, V3, &Packet::Connect(Box::new(c)));
}

#[test]
fn v5_with_all_properties() {
    let bytes = b"\x10\x60\x00\x04MQTT\x05\xD6\x00\x1E\
        \x24\x11\x00\x00\x00\x78\x21\x00\x14\x27\x00\x00\x10\x00\x22\x00\x0A\x19\x01\x17\x00\
        \x26\x00\x01a\x00\x01b\x15\x00\x02pw\x16\x00\x01\x00\
        \x00\x01c\
        \x1F\x18\x00\x00\x00\x05\x01\x01\x02\x00\x00\x00\x0A\x03\x00\x01t\x08\x00\x01r\
        \x09\x00\x01\x07\x26\x00\x01x\x00\x01y\
        \x00\x01w\x00\x03bye\x00\x01u\x00\x01p";
    let c = Connect {
        clean_start: true,
        keep_alive: 30,
        properties: ConnectProperties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(20),
            maximum_packet_size: Some(4096),
            topic_alias_maximum: Some(10),
            request_response_information: Some(1),
            request_problem_information: Some(0),
            user_properties: vec![("a".into(), "b".into())],
            authentication_method: Some("pw".into()),
            authentication_data: Some(Bytes::from_static(b"\x00")),
        },
        will: Some(LastWill {
            topic: "w".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: WillProperties {
                delay_interval: Some(5),
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(10),
                content_type: Some("t".into()),
                response_topic: Some("r".into()),
                correlation_data: Some(Bytes::from_static(b"\x07")),
                user_properties: vec![("x".into(), "y".into())],
            },
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        ..connect(V5, "c")
    };
    assert_vector(bytes, V3, &Packet::Connect(Box::new(c)));
}

#[test]
fn v5_password_without_username_is_allowed() {
    let bytes = b"\x10\x11\x00\x04MQTT\x05\x40\x00\x00\x00\x00\x00\x00\x02pw";
    let c = Connect { password: Some(Bytes::from_static(b"pw")), ..connect(V5, "") };
    assert_vector(bytes, V5, &Packet::Connect(Box::new(c)));
    let err = dec_err(b"\x10\x10\x00\x04MQTT\x04\x40\x00\x00\x00\x00\x00\x02pw", V3);
    assert_eq!(err.to_string(), "CONNECT: password flag is set without the user name flag");
    assert_eq!(err.reason_code(), 0x81);
    let mut buf = bytes::BytesMut::new();
    let v3 = Connect { password: Some(Bytes::from_static(b"pw")), ..connect(V3, "") };
    let err = crate::codec::encode(&Packet::Connect(Box::new(v3)), V3, &mut buf).unwrap_err();
    assert_eq!(err.to_string(), "CONNECT: a password without a user name needs MQTT 5.0");
}

#[test]
fn protocol_name_and_level() {
    let err = dec_err(b"\x10\x0C\x00\x04MQTX\x04\x02\x00\x3C\x00\x00", V3);
    assert_eq!(err.to_string(), "CONNECT: protocol name \"MQTX\" is unknown");
    assert_eq!(err.reason_code(), 0x84);
    for (bytes, level) in [
        (&b"\x10\x0C\x00\x04MQTT\x06\x02\x00\x3C\x00\x00"[..], 6),
        (&b"\x10\x0C\x00\x04MQTT\x03\x02\x00\x3C\x00\x00"[..], 3),
        (&b"\x10\x0E\x00\x06MQIsdp\x04\x02\x00\x3C\x00\x00"[..], 4),
    ] {
        let err = dec_err(bytes, V5);
        assert!(matches!(err, crate::codec::DecodeError::UnsupportedProtocolVersion(l) if l == level));
        assert_eq!(err.reason_code(), 0x84);
        assert_eq!(err.to_string(), format!("CONNECT: protocol level {level} is not supported"));
    }
}

/// A v3.1.1 CONNECT with client id "" and the given flags, plus `tail` after the client id.
fn v3_with_flags(flags: u8, tail: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x10, 12 + tail.len() as u8, 0, 4, b'M', b'Q', b'T', b'T', 4, flags];
    bytes.extend_from_slice(&[0, 60, 0, 0]);
    bytes.extend_from_slice(tail);
    bytes
}

#[test]
fn flag_errors() {
    let cases: [(u8, &str, u8); 5] = [
        (0x03, "reserved connect flag is set", 0x81),
        (0x1E, "Will QoS 3 is invalid", 0x81),
        (0x0A, "Will QoS or Will Retain is set without the Will Flag", 0x82),
        (0x22, "Will QoS or Will Retain is set without the Will Flag", 0x82),
        (0x82, "user name is truncated", 0x81),
    ];
    for (flags, msg, code) in cases {
        assert_err(&v3_with_flags(flags, b""), V3, &format!("CONNECT: {msg}"), code);
    }
    let trailing = v3_with_flags(0x02, b"x");
    assert_err(&trailing, V3, "CONNECT: 1 unexpected bytes at the end of the packet", 0x81);
    let wildcard = v3_with_flags(0x06, b"\x00\x03a/#\x00\x00");
    assert_err(&wildcard, V3, "CONNECT: topic name \"a/#\" contains a wildcard", 0x90);
    assert_err(&v3_with_flags(0x06, b"\x00\x01a"), V3, "CONNECT: Will Payload is truncated", 0x81);
    let header = b"\x11\x0C\x00\x04MQTT\x04\x02\x00\x3C\x00\x00";
    assert_err(header, V3, "CONNECT: fixed header flags are 0b0001, must be 0b0000", 0x81);
}

/// A v5 CONNECT with client id "", no flags, the given property block and `tail`.
fn v5_with_props(block: &[u8], tail: &[u8]) -> Vec<u8> {
    let len = 10 + 1 + block.len() + 2 + tail.len();
    let mut bytes = vec![0x10, len as u8, 0, 4, b'M', b'Q', b'T', b'T', 5, 0, 0, 60];
    bytes.push(block.len() as u8);
    bytes.extend_from_slice(block);
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(tail);
    bytes
}

#[test]
fn property_errors() {
    let cases: [(&[u8], &str, u8); 5] = [
        (b"\x23\x00\x01", "property Topic Alias (0x23) is not allowed", 0x81),
        (b"\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02", "property Session Expiry Interval appears more than once", 0x82),
        (b"\x16\x00\x01x", "Authentication Data without Authentication Method", 0x82),
        (b"\x21\x00\x00", "Receive Maximum must not be 0", 0x82),
        (b"\x17\x02", "Request Problem Information must be 0 or 1, not 2", 0x82),
    ];
    for (block, msg, code) in cases {
        assert_err(&v5_with_props(block, b""), V5, &format!("CONNECT: {msg}"), code);
    }
    // Will properties: Session Expiry belongs to CONNECT, not the Will.
    let mut will = v5_with_props(b"", b"\x05\x11\x00\x00\x00\x01\x00\x01w\x00\x00");
    will[9] = WILL;
    let msg = "CONNECT: property Session Expiry Interval (0x11) is not allowed";
    assert_err(&will, V5, msg, 0x81);
}

fn will(v5: bool) -> impl Strategy<Value = LastWill> {
    let props = (
        (any::<Option<u32>>(), flag(), any::<Option<u32>>()),
        (proptest::option::of(text()), proptest::option::of(topic())),
        (proptest::option::of(bytes()), users()),
    )
        .prop_map(|((delay, pfi, expiry), (content, response), (corr, users))| WillProperties {
            delay_interval: delay,
            payload_format_indicator: pfi,
            message_expiry_interval: expiry,
            content_type: content,
            response_topic: response,
            correlation_data: corr,
            user_properties: users,
        });
    (topic(), bytes(), qos(), any::<bool>(), props).prop_map(move |(topic, payload, qos, retain, props)| LastWill {
        topic,
        payload,
        qos,
        retain,
        properties: if v5 { props } else { WillProperties::default() },
    })
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (any::<Option<u32>>(), proptest::option::of(1u16..), proptest::option::of(1u32..)),
        (any::<Option<u16>>(), flag(), flag(), users()),
        proptest::option::of((text(), proptest::option::of(bytes()))),
    )
        .prop_map(|((expiry, recv, max), (alias, rri, rpi, users), auth)| ConnectProperties {
            session_expiry_interval: expiry,
            receive_maximum: recv,
            maximum_packet_size: max,
            topic_alias_maximum: alias,
            request_response_information: rri,
            request_problem_information: rpi,
            user_properties: users,
            authentication_method: auth.as_ref().map(|(m, _)| m.clone()),
            authentication_data: auth.and_then(|(_, d)| d),
        })
}

fn any_connect(protocol: ProtocolVersion) -> impl Strategy<Value = Connect> {
    let v5 = protocol.is_v5();
    (
        (any::<bool>(), any::<u16>(), connect_properties(), text()),
        (proptest::option::of(will(v5)), proptest::option::of(text()), proptest::option::of(bytes())),
    )
        .prop_map(move |((clean_start, keep_alive, props, client_id), (will, username, password))| {
            let password = if v5 || username.is_some() { password } else { None };
            Connect {
                protocol,
                clean_start,
                keep_alive,
                properties: if v5 { props } else { ConnectProperties::default() },
                client_id,
                will,
                username,
                password,
            }
        })
}

proptest! {
    #[test]
    fn round_trips(
        c31 in any_connect(ProtocolVersion::V31),
        c311 in any_connect(V3),
        c5 in any_connect(V5),
    ) {
        // Encoded for the version it names, whatever the connection's version.
        round_trip(&Packet::Connect(Box::new(c31)), V5)?;
        round_trip(&Packet::Connect(Box::new(c311)), V3)?;
        round_trip(&Packet::Connect(Box::new(c5)), V3)?;
    }
}
