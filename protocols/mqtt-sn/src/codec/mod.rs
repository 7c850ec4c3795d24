//! Codec layer: MQTT-SN 1.2 messages <-> datagrams (§5). One datagram holds one message
//! (or one forwarder-encapsulated message, §5.5); its declared length must equal the datagram
//! length. Decoding never panics and never allocates more than the datagram holds: every
//! malformed input is a [`DecodeError`] naming the message and what was wrong. Fuzzed by
//! `fuzz/fuzz_targets/mqttsn_decode.rs`.
//!
//! Written here rather than taken from crates.io: the MQTT-SN crates there are device-side,
//! unmaintained, or panic on malformed input.

mod decode;
mod encode;
mod flags;
mod message;
#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};

pub use flags::{Flags, SnQos, TopicIdType};
pub use message::{Connect, Message, MsgId, MsgType, Publish, ReturnCode, TopicId, TopicRef, WillTopic};

/// The largest message: the 3-byte length form counts to 65535 (§5.2.1).
pub const MAX_MESSAGE_LEN: usize = 65_535;

/// What was wrong with a datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("MQTT-SN: datagram of {0} bytes is too short for a header")]
    TooShort(usize),
    #[error("MQTT-SN: declared length {declared} but the datagram holds {actual} bytes")]
    BadLength { declared: usize, actual: usize },
    #[error("MQTT-SN: unknown message type 0x{0:02x}")]
    UnknownType(u8),
    #[error("MQTT-SN {msg}: {len}-byte body, at least {need} needed")]
    Truncated { msg: &'static str, len: usize, need: usize },
    #[error("MQTT-SN {0}: unexpected bytes after the body")]
    TrailingBytes(&'static str),
    #[error("MQTT-SN {0}: topic id type 0b11 is reserved")]
    ReservedTopicIdType(&'static str),
    #[error("MQTT-SN {0}: text is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("MQTT-SN CONNECT: protocol id 0x{0:02x}, expected 0x01")]
    ProtocolId(u8),
    #[error("MQTT-SN {0}: {1} is empty")]
    Empty(&'static str, &'static str),
    #[error("MQTT-SN encapsulated message: {0}")]
    Encapsulation(&'static str),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("MQTT-SN {msg}: {len} bytes exceeds the 65535-byte maximum")]
    TooLong { msg: &'static str, len: usize },
}

/// Splits the length header off a datagram: (header length, total declared length).
fn header(buf: &[u8]) -> Result<(usize, usize), DecodeError> {
    match buf {
        [] | [_] => Err(DecodeError::TooShort(buf.len())),
        [0x01, hi, lo, ..] => Ok((3, usize::from(u16::from_be_bytes([*hi, *lo])))),
        [0x01, ..] => Err(DecodeError::TooShort(buf.len())),
        [len, ..] => Ok((1, usize::from(*len))),
    }
}

/// Decodes one datagram holding one MQTT-SN message.
pub fn decode(datagram: &Bytes) -> Result<Message, DecodeError> {
    let (hlen, declared) = header(datagram)?;
    if declared != datagram.len() {
        return Err(DecodeError::BadLength { declared, actual: datagram.len() });
    }
    // The type byte follows the length; a declared length must cover it.
    if declared <= hlen {
        return Err(DecodeError::TooShort(declared));
    }
    let ty = datagram[hlen];
    decode::decode_body(ty, datagram.slice(hlen + 1..))
}

/// Encodes `msg` into `out`, with the 1-byte length form when it fits and the 3-byte form
/// otherwise.
pub fn encode(msg: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut body = BytesMut::new();
    let ty = encode::encode_body(msg, &mut body);
    let short = body.len() + 2;
    if short <= 255 {
        out.reserve(short);
        out.put_u8(short as u8);
    } else {
        let long = body.len() + 4;
        if long > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong { msg: msg.name(), len: long });
        }
        out.reserve(long);
        out.put_u8(0x01);
        out.put_u16(long as u16);
    }
    out.put_u8(ty);
    out.put_slice(&body);
    Ok(())
}

/// Encodes `msg` to a fresh buffer.
pub fn to_bytes(msg: &Message) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::new();
    encode(msg, &mut out)?;
    Ok(out.freeze())
}

/// A message relayed by a forwarder (§5.5): the wireless node it came from and the
/// MQTT-SN message it carries, still encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encapsulated {
    /// Ctrl byte, bits 1-0: the broadcast radius (§5.5).
    pub radius: u8,
    pub node_id: Bytes,
    pub inner: Bytes,
}

pub const ENCAPSULATED_TYPE: u8 = 0xFE;

/// If `datagram` is a forwarder encapsulation, splits it; `Ok(None)` when it is a plain
/// message.
pub fn decode_encapsulated(datagram: &Bytes) -> Result<Option<Encapsulated>, DecodeError> {
    if datagram.len() < 2 || datagram[1] != ENCAPSULATED_TYPE {
        return Ok(None);
    }
    // §5.5: the encapsulation header uses the 1-byte length form and counts only itself.
    let hlen = usize::from(datagram[0]);
    if hlen < 3 {
        return Err(DecodeError::Encapsulation("header length below 3"));
    }
    if hlen >= datagram.len() {
        return Err(DecodeError::Encapsulation("no message after the header"));
    }
    Ok(Some(Encapsulated {
        radius: datagram[2] & 0b11,
        node_id: datagram.slice(3..hlen),
        inner: datagram.slice(hlen..),
    }))
}

/// Wraps an encoded message for a forwarder.
pub fn encode_encapsulated(radius: u8, node_id: &[u8], inner: &[u8]) -> Result<Bytes, EncodeError> {
    let hlen = 3 + node_id.len();
    if hlen > 255 {
        return Err(EncodeError::TooLong { msg: "encapsulation header", len: hlen });
    }
    let mut out = BytesMut::with_capacity(hlen + inner.len());
    out.put_u8(hlen as u8);
    out.put_u8(ENCAPSULATED_TYPE);
    out.put_u8(radius & 0b11);
    out.put_slice(node_id);
    out.put_slice(inner);
    Ok(out.freeze())
}
