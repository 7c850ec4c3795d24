//! Fixed header, framing and PINGREQ/PINGRESP tests.

use super::super::testutil::*;
use super::*;
use crate::codec::{Ack, Publish};
use bytes::Bytes;

#[test]
fn ping_vectors() {
    for v in [V3, V5] {
        assert_vector(b"\xC0\x00", v, &Packet::PingReq);
        assert_vector(b"\xD0\x00", v, &Packet::PingResp);
    }
    let trailing = "PINGREQ: 1 unexpected bytes at the end of the packet";
    assert_err(b"\xC0\x01\x00", V3, trailing, 0x81);
    let flags = "PINGRESP: fixed header flags are 0b1000, must be 0b0000";
    assert_err(b"\xD8\x00", V5, flags, 0x81);
}

#[test]
fn reserved_packet_type() {
    assert_err(b"\x00\x00", V5, "fixed header: packet type 0 is reserved", 0x81);
}

#[test]
fn waits_for_more_bytes_without_consuming() {
    let full = b"\x32\x0A\x00\x03a/b\x00\x01xyz";
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert!(matches!(decode(&mut buf, V3, MAX), Ok(None)), "cut at {cut}");
        assert_eq!(&buf[..], &full[..cut]);
    }
}

#[test]
fn consumes_exactly_one_packet() {
    let mut buf = BytesMut::from(&b"\x40\x02\x00\x01\xC0\x00\xD0"[..]);
    let first = decode(&mut buf, V3, MAX).unwrap();
    assert_eq!(first, Some(Packet::PubAck(Ack { packet_id: 1, ..Ack::default() })));
    assert_eq!(decode(&mut buf, V3, MAX).unwrap(), Some(Packet::PingReq));
    assert_eq!(decode(&mut buf, V3, MAX).unwrap(), None);
    assert_eq!(&buf[..], b"\xD0");
}

#[test]
fn oversize_fails_before_the_body_arrives() {
    // Four-byte Remaining Length claiming 256 MiB, no body at all.
    let mut buf = BytesMut::from(&b"\x30\xFF\xFF\xFF\x7F"[..]);
    let err = decode(&mut buf, V5, MAX).unwrap_err();
    assert_eq!(err.reason_code(), 0x95);
    assert_eq!(err.to_string(), "PUBLISH: packet of 268435460 bytes exceeds the maximum packet size of 1048576 bytes");
    assert!(buf.capacity() < 1024, "buffered for the claimed size");
    // The limit counts the fixed header: 2 + 8 = 10 bytes.
    let mut buf = BytesMut::from(&b"\x30\x08"[..]);
    assert!(decode(&mut buf, V3, 10).unwrap().is_none());
    let mut buf = BytesMut::from(&b"\x30\x09"[..]);
    assert!(matches!(decode(&mut buf, V3, 10), Err(DecodeError::PacketTooLarge { .. })));
}

#[test]
fn allowed_but_incomplete_packet_reserves_nothing() {
    // 1 MiB - 5 declared, within the limit: wait, without reserving memory for it.
    let mut buf = BytesMut::from(&b"\x30\xFB\xFF\x3F\x00\x01a"[..]);
    assert!(decode(&mut buf, V3, MAX).unwrap().is_none());
    assert!(buf.capacity() < 1024);
}

#[test]
fn remaining_length_encoding_errors() {
    let five = "PUBLISH: remaining length is longer than 4 bytes";
    assert_err(b"\x30\xFF\xFF\xFF\xFF\x01", V3, five, 0x81);
    // Reported as soon as the fourth byte says "more follows", not after a fifth arrives.
    let err = decode(&mut BytesMut::from(&b"\x30\x80\x80\x80\x80"[..]), V3, MAX).unwrap_err();
    assert_eq!(err.to_string(), five);
    let padded = "PUBACK: remaining length is not minimally encoded";
    assert_err(b"\x40\x82\x00\x00\x01", V3, padded, 0x81);
}

#[test]
fn header_errors_do_not_wait_for_the_body() {
    let mut buf = BytesMut::from(&b"\x82"[..]);
    assert!(decode(&mut buf, V3, MAX).unwrap().is_none());
    let mut buf = BytesMut::from(&b"\x83"[..]);
    let err = decode(&mut buf, V3, MAX).unwrap_err();
    assert_eq!(err.to_string(), "SUBSCRIBE: fixed header flags are 0b0011, must be 0b0010");
}

#[test]
fn long_remaining_length_round_trips() {
    let payload = Bytes::from(vec![7u8; 20_000]);
    let p = Packet::Publish(Publish { topic: "t".into(), payload, ..Publish::default() });
    let bytes = enc(&p, V5);
    assert_eq!(&bytes[..4], b"\x30\xA4\x9C\x01");
    assert_eq!(dec(&bytes, V5).ok(), Some(p));
}

#[test]
fn encode_refuses_more_than_mqtt_can_frame() {
    let payload = Bytes::from(vec![0u8; MAX_VARINT as usize]);
    let p = Packet::Publish(Publish { topic: "t".into(), payload, ..Publish::default() });
    let mut buf = BytesMut::new();
    let err = encode(&p, V3, &mut buf).unwrap_err();
    assert_eq!(err.to_string(), "PUBLISH: remaining length of 268435458 bytes exceeds the MQTT maximum of 268435455");
    assert!(buf.is_empty());
    assert_eq!(encoded_len(&p, V3), 1 + 4 + 268_435_458);
}

#[test]
fn names() {
    assert_eq!(Packet::PingReq.name(), "PINGREQ");
    assert_eq!(Packet::PubRel(Ack::default()).name(), "PUBREL");
}

/// The fuzz seeds are spec vectors: each file is a stream of valid packets (v5 if its name
/// says so, else 3.1.1) that decodes completely and round-trips.
#[test]
fn fuzz_seeds_are_valid_streams() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/mqtt_decode");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let v = if name.contains("v5") { V5 } else { V3 };
        let mut buf = BytesMut::from(&std::fs::read(&path).unwrap()[..]);
        while !buf.is_empty() {
            match decode(&mut buf, v, MAX) {
                Ok(Some(p)) => assert_eq!(dec(&enc(&p, v), v).ok(), Some(p), "{name}"),
                other => panic!("{name}: {other:?} with {} bytes left", buf.len()),
            }
        }
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} seeds");
}
