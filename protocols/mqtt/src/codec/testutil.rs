//! Test helpers shared by the packet modules: decode/encode wrappers that check the codec's
//! own invariants, and proptest strategies for packet contents.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{DecodeError, Packet, ProtocolVersion, QoS, UserProperty, decode, encode, encoded_len};

pub(crate) const V3: ProtocolVersion = ProtocolVersion::V311;
pub(crate) const V5: ProtocolVersion = ProtocolVersion::V5;
pub(crate) const MAX: usize = 1 << 20;

/// Decodes exactly one complete packet from `bytes`; asserts nothing is left over.
pub(crate) fn dec(bytes: &[u8], v: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, v, MAX)?;
    let Some(packet) = packet else { panic!("incomplete packet: {bytes:02X?}") };
    assert!(buf.is_empty(), "{} bytes left after {packet:?}", buf.len());
    Ok(packet)
}

/// The error decoding `bytes` gives; panics if they decode.
pub(crate) fn dec_err(bytes: &[u8], v: ProtocolVersion) -> DecodeError {
    match dec(bytes, v) {
        Ok(p) => panic!("{bytes:02X?} decoded as {p:?}"),
        Err(e) => e,
    }
}

/// Asserts the error message and reason code of decoding `bytes`.
pub(crate) fn assert_err(bytes: &[u8], v: ProtocolVersion, msg: &str, code: u8) {
    let err = dec_err(bytes, v);
    assert_eq!(err.to_string(), msg, "{bytes:02X?}");
    assert_eq!(err.reason_code(), code, "{msg}");
}

/// Encodes `packet`, checking `encoded_len` agrees.
pub(crate) fn enc(packet: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(e) = encode(packet, v, &mut buf) {
        panic!("cannot encode {packet:?}: {e}");
    }
    assert_eq!(buf.len(), encoded_len(packet, v), "encoded_len of {packet:?}");
    buf.to_vec()
}

/// A spec vector: `bytes` decode to `packet` and `packet` encodes to `bytes`.
pub(crate) fn assert_vector(bytes: &[u8], v: ProtocolVersion, packet: &Packet) {
    assert_eq!(&dec(bytes, v).expect("vector decodes"), packet);
    assert_eq!(enc(packet, v), bytes, "encoding of {packet:?}");
}

/// Encode, then decode, must give the packet back — and every prefix must be "need more".
pub(crate) fn round_trip(packet: &Packet, v: ProtocolVersion) -> Result<(), TestCaseError> {
    let bytes = enc(packet, v);
    let decoded = dec(&bytes, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, packet);
    let cut = bytes.len() / 2;
    let mut partial = BytesMut::from(&bytes[..cut]);
    prop_assert!(matches!(decode(&mut partial, v, MAX), Ok(None)));
    prop_assert_eq!(partial.len(), cut);
    Ok(())
}

/// A UTF-8 string without U+0000.
pub(crate) fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

/// A topic name: no U+0000, no wildcards.
pub(crate) fn topic() -> impl Strategy<Value = String> {
    "[^\u{0}+#]{0,12}"
}

pub(crate) fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub(crate) fn users() -> impl Strategy<Value = Vec<UserProperty>> {
    proptest::collection::vec((text(), text()), 0..3)
}

pub(crate) fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

pub(crate) fn flag() -> impl Strategy<Value = Option<u8>> {
    proptest::option::of(0u8..=1)
}

pub(crate) fn packet_id() -> impl Strategy<Value = u16> {
    1u16..
}

/// One of a packet type's reason codes.
pub(crate) fn reason_of(codes: &'static [u8]) -> impl Strategy<Value = u8> {
    proptest::sample::select(codes)
}

pub(crate) fn user(key: &str, value: &str) -> UserProperty {
    (key.into(), value.into())
}
