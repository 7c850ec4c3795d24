//! Codec layer: datagrams <-> `coap_lite::Packet` (RFC 7252 §3), with the checks
//! `coap-lite` leaves out (version 1, a payload marker followed by no payload, empty
//! messages with a token, options or a body) and typed access to the options we use:
//! Uri-Path, Uri-Query, Observe (RFC 7641), Block1/Block2 (RFC 7959). Never panics.

use coap_lite::{CoapOption, MessageClass, MessageType, Packet};

/// Largest datagram we read or write (the IPv4 UDP maximum is 65,507).
pub const MAX_DATAGRAM: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("CoAP datagram of {0} bytes is shorter than the 4-byte header")]
    Short(usize),
    #[error("CoAP version {0} (only 1 exists)")]
    Version(u8),
    #[error("CoAP message format error: {0}")]
    Format(String),
    #[error("CoAP payload marker followed by an empty payload (RFC 7252 §3)")]
    EmptyPayload,
    #[error("CoAP empty message (code 0.00) with a token, options or payload (RFC 7252 §4.1)")]
    BadEmpty,
    #[error("CoAP reserved message code {0}")]
    ReservedCode(u8),
}

/// What the header alone says, for answering a datagram that does not parse: a malformed
/// CON is rejected with RST (§4.2), anything else is dropped (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    pub confirmable: bool,
    pub message_id: u16,
}

pub fn raw_header(buf: &[u8]) -> Option<RawHeader> {
    if buf.len() < 4 || buf[0] >> 6 != 1 {
        return None;
    }
    Some(RawHeader { confirmable: (buf[0] >> 4) & 0x3 == 0, message_id: u16::from_be_bytes([buf[2], buf[3]]) })
}

pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
    if buf.len() < 4 {
        return Err(DecodeError::Short(buf.len()));
    }
    let version = buf[0] >> 6;
    if version != 1 {
        return Err(DecodeError::Version(version));
    }
    let packet = Packet::from_bytes(buf).map_err(|e| DecodeError::Format(e.to_string()))?;
    if packet.payload.is_empty() && buf.last() == Some(&0xFF) && payload_marker_at_end(buf) {
        return Err(DecodeError::EmptyPayload);
    }
    match packet.header.code {
        MessageClass::Empty if buf.len() != 4 || buf[0] & 0x0F != 0 => return Err(DecodeError::BadEmpty),
        MessageClass::Reserved(c) => return Err(DecodeError::ReservedCode(c)),
        _ => {}
    }
    Ok(packet)
}

/// Whether the final 0xFF of `buf` is a payload marker (and not the last byte of an
/// option value): walk the options as the parser did.
fn payload_marker_at_end(buf: &[u8]) -> bool {
    let tkl = usize::from(buf[0] & 0x0F);
    let mut i = 4 + tkl;
    while i < buf.len() {
        let b = buf[i];
        if b == 0xFF {
            return i == buf.len() - 1;
        }
        i += 1;
        let mut ext = |nibble: u8| -> Option<usize> {
            match nibble {
                13 => {
                    let v = usize::from(*buf.get(i)?) + 13;
                    i += 1;
                    Some(v)
                }
                14 => {
                    let v = usize::from(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?])) + 269;
                    i += 2;
                    Some(v)
                }
                n => Some(usize::from(n)),
            }
        };
        if ext(b >> 4).is_none() {
            return false;
        }
        let Some(len) = ext(b & 0x0F) else { return false };
        i += len;
    }
    false
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("CoAP message of {0} bytes is larger than a datagram")]
    TooLarge(usize),
}

pub fn encode(packet: &Packet) -> Result<Vec<u8>, EncodeError> {
    packet.to_bytes_with_limit(MAX_DATAGRAM).map_err(|_| EncodeError::TooLarge(packet.payload.len()))
}

/// An empty message (ACK or RST) for `message_id`.
pub fn empty(kind: MessageType, message_id: u16) -> Packet {
    let mut p = Packet::new();
    p.header.set_version(1);
    p.header.set_type(kind);
    p.header.code = MessageClass::Empty;
    p.header.message_id = message_id;
    p
}

/// The Uri-Path segments, each as UTF-8 (`None` if one is not).
pub fn uri_path(p: &Packet) -> Option<Vec<String>> {
    let Some(segments) = p.get_option(CoapOption::UriPath) else {
        return Some(Vec::new());
    };
    segments.iter().map(|s| String::from_utf8(s.clone()).ok()).collect()
}

/// The Uri-Query options as `key=value` pairs (a bare `key` has an empty value).
pub fn uri_query(p: &Packet) -> Vec<(String, String)> {
    let Some(queries) = p.get_option(CoapOption::UriQuery) else {
        return Vec::new();
    };
    queries
        .iter()
        .filter_map(|q| std::str::from_utf8(q).ok())
        .map(|q| match q.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (q.to_string(), String::new()),
        })
        .collect()
}

/// An option value we cannot use (a uint longer than 4 bytes, a block option with SZX 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CoAP option value out of range")]
pub struct BadValue;

/// An unsigned option value (RFC 7252 §3.2 uint: big-endian, leading zeros dropped).
pub fn uint_option(p: &Packet, option: CoapOption) -> Option<Result<u32, BadValue>> {
    let v = p.get_first_option(option)?;
    if v.len() > 4 {
        return Some(Err(BadValue));
    }
    Some(Ok(v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))))
}

pub fn encode_uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// A Block1/Block2 option value (RFC 7959 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub num: u32,
    pub more: bool,
    /// SZX: block size is 2^(szx + 4), 0..=6.
    pub szx: u8,
}

impl Block {
    pub fn size(self) -> usize {
        1usize << (self.szx + 4)
    }

    pub fn szx_for(size: usize) -> u8 {
        let size = size.clamp(16, 1024);
        (size.ilog2() - 4) as u8
    }

    pub fn decode(v: u32) -> Result<Block, BadValue> {
        let szx = (v & 0x7) as u8;
        if szx == 7 || v >> 24 != 0 {
            return Err(BadValue);
        }
        Ok(Block { num: v >> 4, more: v & 0x8 != 0, szx })
    }

    pub fn encode(self) -> u32 {
        (self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx)
    }

    /// The option of `p`, if present; `Err` when malformed.
    pub fn of(p: &Packet, option: CoapOption) -> Option<Result<Block, BadValue>> {
        uint_option(p, option).map(|r| r.and_then(Block::decode))
    }
}

/// The first critical option (odd number, §5.4.1) outside `known`, which we must reject
/// with 4.02 Bad Option.
pub fn unknown_critical(p: &Packet, known: &[CoapOption]) -> Option<u16> {
    p.options().map(|(n, _)| *n).find(|n| n % 2 == 1 && !known.iter().any(|k| u16::from(*k) == *n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc7252_get_with_path_decodes() {
        // CON GET mid 0x7d34 token none, Uri-Path "temperature" (RFC 7252 Figure 16 style).
        let mut b = vec![0x40, 0x01, 0x7d, 0x34, 0xbb];
        b.extend_from_slice(b"temperature");
        let p = decode(&b).unwrap();
        assert_eq!(p.header.get_type(), MessageType::Confirmable);
        assert_eq!(p.header.message_id, 0x7d34);
        assert_eq!(uri_path(&p).unwrap(), vec!["temperature".to_string()]);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(decode(&[0x40, 0x01]), Err(DecodeError::Short(2)));
        assert_eq!(decode(&[0x80, 0x01, 0, 1]), Err(DecodeError::Version(2)));
        assert_eq!(decode(&[0x40, 0x01, 0, 1, 0xFF]), Err(DecodeError::EmptyPayload));
        assert_eq!(decode(&[0x41, 0x00, 0, 1, 0xAA]), Err(DecodeError::BadEmpty));
        assert!(matches!(decode(&[0x49, 0x01, 0, 1]), Err(DecodeError::Format(_))));
        assert!(matches!(decode(&[0x40, 0x01, 0, 1, 0xF0]), Err(DecodeError::Format(_))));
        assert_eq!(decode(&[0x40, 0x25, 0, 1]), Err(DecodeError::ReservedCode(0x25)));
    }

    #[test]
    fn option_value_ending_in_ff_is_not_a_payload_marker() {
        // Uri-Path of one byte 0xFF, no payload.
        let p = decode(&[0x40, 0x01, 0, 1, 0xB1, 0xFF]).unwrap();
        assert!(p.payload.is_empty());
    }

    #[test]
    fn block_values_round_trip() {
        let b = Block { num: 5, more: true, szx: 6 };
        assert_eq!(Block::decode(b.encode()), Ok(b));
        assert_eq!(b.size(), 1024);
        assert_eq!(Block::szx_for(1024), 6);
        assert_eq!(Block::szx_for(16), 0);
        assert_eq!(Block::decode(7), Err(BadValue));
        assert_eq!(encode_uint(0), Vec::<u8>::new());
        assert_eq!(encode_uint(0x1234), vec![0x12, 0x34]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn encoded_packets_decode_back(mid in any::<u16>(), token in proptest::collection::vec(any::<u8>(), 0..=8),
                                       path in "[a-z]{1,10}", body in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut p = Packet::new();
            p.header.set_type(MessageType::NonConfirmable);
            p.header.code = MessageClass::Request(coap_lite::RequestType::Put);
            p.header.message_id = mid;
            p.set_token(token);
            p.add_option(CoapOption::UriPath, path.into_bytes());
            p.payload = body;
            let back = decode(&encode(&p).unwrap()).unwrap();
            prop_assert_eq!(back, p);
        }
    }
}
