//! Codec layer: MQTT data representation (3.1.1 §1.5, 5.0 §1.5): two- and four-byte
//! integers, Variable Byte Integers, UTF-8 strings and binary data.
//!
//! [`Reader`] reads one packet's body with a bounds check before every read, so a length a
//! peer declares can never make us read past (or allocate beyond) the bytes it actually sent.
//! [`Sink`] writes; it is implemented both by `BytesMut` and by [`Counter`], which only adds
//! up lengths, so `encoded_len` and `encode` share one description of each packet.

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};

/// Largest value a Variable Byte Integer can carry (four bytes of seven bits).
pub(crate) const MAX_VARINT: u32 = 268_435_455;

/// Bytes a Variable Byte Integer of this value occupies.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// A topic name must not contain the wildcards `+` and `#` (3.1.1 §4.7.1, 5.0 §4.7.1).
/// Levels and length are the session's business.
pub(crate) fn check_topic_name(packet: &'static str, topic: String) -> Result<String, DecodeError> {
    if topic.contains(['+', '#']) {
        return Err(DecodeError::WildcardInTopicName { packet, topic });
    }
    Ok(topic)
}

/// Bounds-checked reads over one packet's body; errors name `packet` and the field.
pub(crate) struct Reader {
    buf: Bytes,
    packet: &'static str,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, packet: &'static str) -> Self {
        Reader { buf, packet }
    }

    pub(crate) fn packet(&self) -> &'static str {
        self.packet
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize, field: &str) -> Result<(), DecodeError> {
        if self.buf.len() < n {
            Err(DecodeError::malformed(self.packet, format!("{field} is truncated")))
        } else {
            Ok(())
        }
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.buf.get_u32())
    }

    /// A Variable Byte Integer: at most four bytes, minimally encoded (§1.5.5).
    pub(crate) fn varint(&mut self, field: &str) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8(field)?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    let what = format!("{field} is not minimally encoded");
                    return Err(DecodeError::malformed(self.packet, what));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::malformed(self.packet, format!("{field} is longer than 4 bytes")))
    }

    /// The next `n` bytes, shared with the packet buffer (no copy).
    pub(crate) fn take(&mut self, n: usize, field: &str) -> Result<Bytes, DecodeError> {
        self.need(n, field)?;
        Ok(self.buf.split_to(n))
    }

    /// A reader over the next `n` bytes, e.g. a property block.
    pub(crate) fn sub(&mut self, n: usize, field: &str) -> Result<Reader, DecodeError> {
        Ok(Reader::new(self.take(n, field)?, self.packet))
    }

    /// Binary Data: a two-byte length and that many bytes.
    pub(crate) fn binary(&mut self, field: &str) -> Result<Bytes, DecodeError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    /// UTF-8 Encoded String: well-formed UTF-8 without U+0000 (§1.5.4, malformed otherwise).
    pub(crate) fn string(&mut self, field: &str) -> Result<String, DecodeError> {
        let raw = self.binary(field)?;
        let Ok(text) = std::str::from_utf8(&raw) else {
            return Err(DecodeError::malformed(self.packet, format!("{field} is not valid UTF-8")));
        };
        if text.contains('\0') {
            return Err(DecodeError::malformed(self.packet, format!("{field} contains U+0000")));
        }
        Ok(text.to_owned())
    }

    /// A v5 reason code, which must be one the packet type defines (a Protocol Error if not).
    pub(crate) fn reason(&mut self, allowed: &[u8]) -> Result<u8, DecodeError> {
        let code = self.u8("reason code")?;
        if !allowed.contains(&code) {
            let what = format!("reason code 0x{code:02X} is invalid");
            return Err(DecodeError::protocol(self.packet, what));
        }
        Ok(code)
    }

    /// Everything left (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Ends decoding: bytes beyond what the packet type defines make it malformed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            let what = format!("{} unexpected bytes at the end of the packet", self.buf.len());
            Err(DecodeError::malformed(self.packet, what))
        }
    }
}

/// Where encoded bytes go: a buffer, or a [`Counter`] that only measures.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// Reports a field that cannot be encoded. `encode` always measures before it writes, so
    /// only the [`Counter`] needs to remember the error.
    fn fail(&mut self, _what: Cow<'static, str>) {}

    fn u8(&mut self, value: u8) {
        self.put(&[value]);
    }

    fn u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.put(&value.to_be_bytes());
    }

    fn varint(&mut self, field: &str, value: u32) {
        if value > MAX_VARINT {
            self.fail(format!("{field} {value} exceeds {MAX_VARINT}").into());
        }
        let mut rest = value.min(MAX_VARINT);
        loop {
            let mut byte = (rest & 0x7F) as u8;
            rest >>= 7;
            if rest > 0 {
                byte |= 0x80;
            }
            self.u8(byte);
            if rest == 0 {
                break;
            }
        }
    }

    fn binary(&mut self, field: &str, data: &[u8]) {
        let len = u16::try_from(data.len()).unwrap_or_else(|_| {
            self.fail(format!("{field} is {} bytes, more than 65535", data.len()).into());
            u16::MAX
        });
        self.u16(len);
        self.put(data);
    }

    fn topic_name(&mut self, field: &str, topic: &str) {
        if topic.contains(['+', '#']) {
            self.fail(format!("{field} {topic:?} contains a wildcard").into());
        }
        self.string(field, topic);
    }

    fn string(&mut self, field: &str, text: &str) {
        if text.contains('\0') {
            self.fail(format!("{field} contains U+0000").into());
        }
        self.binary(field, text.as_bytes());
    }
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Measures what a [`Sink`] user would write and keeps the first error it reports.
pub(crate) struct Counter {
    packet: &'static str,
    pub(crate) len: usize,
    pub(crate) error: Option<EncodeError>,
}

impl Counter {
    pub(crate) fn new(packet: &'static str) -> Self {
        Counter { packet, len: 0, error: None }
    }
}

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.len = self.len.saturating_add(bytes.len());
    }

    fn fail(&mut self, what: Cow<'static, str>) {
        if self.error.is_none() {
            self.error = Some(EncodeError::Invalid { packet: self.packet, what });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reader(bytes: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(bytes), "TEST")
    }

    #[test]
    fn varint_spec_boundaries() {
        let cases: [(&'static [u8], u32); 8] = [
            (&[0x00], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0x7F], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
        ];
        for (bytes, value) in cases {
            assert_eq!(reader(bytes).varint("v").ok(), Some(value), "{bytes:?}");
            let mut out = BytesMut::new();
            out.varint("v", value);
            assert_eq!(&out[..], bytes);
            assert_eq!(varint_len(value as usize), bytes.len());
        }
    }

    #[test]
    fn varint_rejects_five_bytes_and_padding() {
        let err = reader(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]).varint("v").unwrap_err();
        assert_eq!(err.to_string(), "TEST: v is longer than 4 bytes");
        assert_eq!(err.reason_code(), 0x81);
        let err = reader(&[0x80, 0x00]).varint("v").unwrap_err();
        assert_eq!(err.to_string(), "TEST: v is not minimally encoded");
        let err = reader(&[0x80]).varint("v").unwrap_err();
        assert_eq!(err.to_string(), "TEST: v is truncated");
    }

    #[test]
    fn strings_must_be_utf8_without_nul() {
        assert_eq!(reader(b"\x00\x03a\xC3\xA9").string("s").ok().as_deref(), Some("aé"));
        let err = reader(b"\x00\x02\xC3\x28").string("s").unwrap_err();
        assert_eq!(err.to_string(), "TEST: s is not valid UTF-8");
        assert_eq!(err.reason_code(), 0x81);
        // U+D800 encoded as UTF-8 (a surrogate) is ill-formed.
        let err = reader(b"\x00\x03\xED\xA0\x80").string("s").unwrap_err();
        assert_eq!(err.to_string(), "TEST: s is not valid UTF-8");
        let err = reader(b"\x00\x03a\x00b").string("s").unwrap_err();
        assert_eq!(err.to_string(), "TEST: s contains U+0000");
        let err = reader(b"\x00\x05abc").string("s").unwrap_err();
        assert_eq!(err.to_string(), "TEST: s is truncated");
    }

    #[test]
    fn finish_rejects_trailing_bytes() {
        let mut r = reader(&[1, 2, 3]);
        assert_eq!(r.u8("a").ok(), Some(1));
        let err = r.finish().unwrap_err();
        assert_eq!(err.to_string(), "TEST: 2 unexpected bytes at the end of the packet");
    }

    #[test]
    fn counter_reports_unencodable_fields() {
        let mut c = Counter::new("TEST");
        c.string("s", &"x".repeat(70_000));
        c.string("t", "a\0");
        assert_eq!(c.len, 2 + 70_000 + 2 + 2);
        let msg = c.error.map(|e| e.to_string());
        assert_eq!(msg.as_deref(), Some("TEST: s is 70000 bytes, more than 65535"));
    }

    proptest! {
        #[test]
        fn varint_round_trips(value in 0..=MAX_VARINT) {
            let mut out = BytesMut::new();
            out.varint("v", value);
            prop_assert_eq!(out.len(), varint_len(value as usize));
            let mut r = Reader::new(out.freeze(), "TEST");
            prop_assert_eq!(r.varint("v").ok(), Some(value));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn string_round_trips(text in "[^\u{0}]{0,40}") {
            let mut out = BytesMut::new();
            out.string("s", &text);
            let mut r = Reader::new(out.freeze(), "TEST");
            prop_assert_eq!(r.string("s").ok(), Some(text));
        }
    }
}
