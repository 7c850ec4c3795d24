//! Property block tests: allow-lists, duplicates, ranges, exact lengths.

use super::*;
use bytes::BytesMut;

fn ack_props(bytes: &'static [u8]) -> Result<AckProperties, DecodeError> {
    let mut r = Reader::new(Bytes::from_static(bytes), "PUBACK");
    let props = read_ack_properties(&mut r)?;
    r.finish()?;
    Ok(props)
}

#[test]
fn reads_reason_string_and_users_in_order() {
    let props = ack_props(b"\x12\x1F\x00\x02ok\x26\x00\x01b\x00\x01\x32\x26\x00\x01a\x00\x00").unwrap();
    assert_eq!(props.reason_string.as_deref(), Some("ok"));
    let users = [("b".into(), "2".into()), ("a".into(), String::new())];
    assert_eq!(props.user_properties, users);
    let mut out = BytesMut::new();
    put_properties(&mut out, &props);
    assert_eq!(&out[..], b"\x12\x1F\x00\x02ok\x26\x00\x01b\x00\x01\x32\x26\x00\x01a\x00\x00");
}

#[test]
fn duplicate_is_a_protocol_error() {
    let err = ack_props(b"\x08\x1F\x00\x01a\x1F\x00\x01b").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: property Reason String appears more than once");
    assert_eq!(err.reason_code(), 0x82);
}

#[test]
fn property_of_another_packet_is_malformed() {
    let err = ack_props(b"\x03\x23\x00\x01").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: property Topic Alias (0x23) is not allowed");
    assert_eq!(err.reason_code(), 0x81);
}

#[test]
fn unknown_identifier_is_malformed() {
    let err = ack_props(b"\x02\x7F\x00").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: property identifier 0x7F is unknown");
    assert_eq!(err.reason_code(), 0x81);
    // A two-byte identifier is no identifier the spec knows.
    let err = ack_props(b"\x03\x9F\x01\x00").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: property identifier 0x9F is unknown");
}

#[test]
fn length_must_match_exactly() {
    // Block says 5 bytes, 4 follow; then a block of 4 whose Reason String needs 5.
    let err = ack_props(b"\x05\x1F\x00\x02o").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: property block is truncated");
    let err = ack_props(b"\x04\x1F\x00\x02okx").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: Reason String is truncated");
    assert_eq!(err.reason_code(), 0x81);
    // Block shorter than the bytes that follow: the rest is not properties.
    let err = ack_props(b"\x00\x1F").unwrap_err();
    assert_eq!(err.to_string(), "PUBACK: 1 unexpected bytes at the end of the packet");
}

#[test]
fn range_rules_are_protocol_errors() {
    let cases: [(&'static [u8], &str); 6] = [
        (b"\x02\x01\x02", "Payload Format Indicator must be 0 or 1, not 2"),
        (b"\x02\x0B\x00", "Subscription Identifier must not be 0"),
        (b"\x03\x21\x00\x00", "Receive Maximum must not be 0"),
        (b"\x03\x23\x00\x00", "Topic Alias must not be 0"),
        (b"\x05\x27\x00\x00\x00\x00", "Maximum Packet Size must not be 0"),
        (b"\x02\x24\x02", "Maximum QoS must be 0 or 1, not 2"),
    ];
    for (bytes, msg) in cases {
        let mut r = Reader::new(Bytes::from_static(bytes), "TEST");
        let err = read_properties(&mut r, |_| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), format!("TEST: {msg}"));
        assert_eq!(err.reason_code(), 0x82);
    }
}

#[test]
fn every_identifier_reads_back_as_itself() {
    for raw in 0u8..=0x7F {
        let known = name(raw) != "unknown property";
        // Value bytes that parse as any type: 1 for flags and varints, 0x0101 for the
        // u16/u32 kinds and as the length of a 257-byte string, then one more string.
        let mut block = vec![raw, 0x01, 0x01];
        block.extend_from_slice(&[b'a'; 257]);
        block.extend_from_slice(b"\x00\x01b");
        let mut bytes = BytesMut::new();
        bytes.varint("len", block.len() as u32);
        bytes.extend_from_slice(&block);
        let mut r = Reader::new(bytes.freeze(), "TEST");
        let mut seen = None;
        let res = read_properties(&mut r, |p| {
            seen = Some(p.id());
            Err(DecodeError::malformed("TEST", "stop"))
        });
        assert!(res.is_err());
        assert_eq!(seen.is_some(), known, "0x{raw:02X}");
        if let Some(id) = seen {
            assert_eq!(id, raw);
        }
    }
}
