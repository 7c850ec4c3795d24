//! Codec layer: the fixed header (3.1.1 §2.2, 5.0 §2.1) and the `decode` / `encode` entry
//! points that frame one packet and hand its body to the packet's module. PINGREQ and
//! PINGRESP (§3.12, §3.13) are a fixed header alone and are handled here.

use bytes::BytesMut;

use super::error::{DecodeError, EncodeError};
use super::primitives::{Counter, MAX_VARINT, Reader, Sink, varint_len};
use super::{Packet, ProtocolVersion};
use super::{ack, auth, connack, connect, disconnect, publish, suback, subscribe};
use super::{unsuback, unsubscribe};

/// The control packet type in the high nibble of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Connect => "CONNECT",
            Kind::ConnAck => "CONNACK",
            Kind::Publish => "PUBLISH",
            Kind::PubAck => "PUBACK",
            Kind::PubRec => "PUBREC",
            Kind::PubRel => "PUBREL",
            Kind::PubComp => "PUBCOMP",
            Kind::Subscribe => "SUBSCRIBE",
            Kind::SubAck => "SUBACK",
            Kind::Unsubscribe => "UNSUBSCRIBE",
            Kind::UnsubAck => "UNSUBACK",
            Kind::PingReq => "PINGREQ",
            Kind::PingResp => "PINGRESP",
            Kind::Disconnect => "DISCONNECT",
            Kind::Auth => "AUTH",
        }
    }

    fn from_nibble(nibble: u8, version: ProtocolVersion) -> Result<Kind, DecodeError> {
        Ok(match nibble {
            1 => Kind::Connect,
            2 => Kind::ConnAck,
            3 => Kind::Publish,
            4 => Kind::PubAck,
            5 => Kind::PubRec,
            6 => Kind::PubRel,
            7 => Kind::PubComp,
            8 => Kind::Subscribe,
            9 => Kind::SubAck,
            10 => Kind::Unsubscribe,
            11 => Kind::UnsubAck,
            12 => Kind::PingReq,
            13 => Kind::PingResp,
            14 => Kind::Disconnect,
            15 if version.is_v5() => Kind::Auth,
            15 => {
                return Err(DecodeError::malformed("AUTH", "packet exists only in MQTT 5.0"));
            }
            _ => {
                return Err(DecodeError::malformed("fixed header", "packet type 0 is reserved"));
            }
        })
    }

    /// The flags nibble every packet type but PUBLISH must carry (§2.1.3).
    fn fixed_flags(self) -> u8 {
        match self {
            Kind::PubRel | Kind::Subscribe | Kind::Unsubscribe => 0b0010,
            _ => 0,
        }
    }

    fn of(packet: &Packet) -> Kind {
        match packet {
            Packet::Connect(_) => Kind::Connect,
            Packet::ConnAck(_) => Kind::ConnAck,
            Packet::Publish(_) => Kind::Publish,
            Packet::PubAck(_) => Kind::PubAck,
            Packet::PubRec(_) => Kind::PubRec,
            Packet::PubRel(_) => Kind::PubRel,
            Packet::PubComp(_) => Kind::PubComp,
            Packet::Subscribe(_) => Kind::Subscribe,
            Packet::SubAck(_) => Kind::SubAck,
            Packet::Unsubscribe(_) => Kind::Unsubscribe,
            Packet::UnsubAck(_) => Kind::UnsubAck,
            Packet::PingReq => Kind::PingReq,
            Packet::PingResp => Kind::PingResp,
            Packet::Disconnect(_) => Kind::Disconnect,
            Packet::Auth(_) => Kind::Auth,
        }
    }
}

impl Packet {
    /// The packet type's name as the spec writes it (`"PUBLISH"`), for logs and errors.
    pub fn name(&self) -> &'static str {
        Kind::of(self).name()
    }
}

/// A parsed fixed header: type, flags and the declared size.
struct FixedHeader {
    kind: Kind,
    flags: u8,
    /// Bytes of the fixed header itself (2..=5).
    header_len: usize,
    remaining_len: usize,
}

/// Parses the fixed header at the start of `buf`; `None` if more bytes are needed. Type,
/// flags and the Remaining Length encoding are checked as soon as their bytes are here.
fn parse_header(buf: &[u8], version: ProtocolVersion) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let kind = Kind::from_nibble(first >> 4, version)?;
    let flags = first & 0x0F;
    check_flags(kind, flags, version)?;
    let mut remaining_len = 0usize;
    for i in 0..4 {
        let Some(&byte) = rest.get(i) else {
            return Ok(None);
        };
        remaining_len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                let what = "remaining length is not minimally encoded";
                return Err(DecodeError::malformed(kind.name(), what));
            }
            return Ok(Some(FixedHeader { kind, flags, header_len: 2 + i, remaining_len }));
        }
    }
    Err(DecodeError::malformed(kind.name(), "remaining length is longer than 4 bytes"))
}

fn check_flags(kind: Kind, flags: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    if kind == Kind::Publish {
        let qos = (flags >> 1) & 0b11;
        if qos == 3 {
            return Err(DecodeError::malformed("PUBLISH", "QoS 3 is invalid"));
        }
        if qos == 0 && flags & 0b1000 != 0 {
            let what = "DUP flag is set on a QoS 0 message";
            return Err(DecodeError::protocol_v5("PUBLISH", version.is_v5(), what));
        }
    } else if flags != kind.fixed_flags() {
        let what = format!("fixed header flags are 0b{flags:04b}, must be 0b{:04b}", kind.fixed_flags());
        return Err(DecodeError::malformed(kind.name(), what));
    }
    Ok(())
}

/// Decodes one packet from the front of `buf`.
///
/// Returns `Ok(None)`, leaving `buf` as it is, until the whole packet has arrived; then
/// removes exactly that packet's bytes. The declared size is checked against
/// `max_packet_size` (the whole packet, fixed header included) as soon as the fixed header is
/// complete, so an oversized packet fails before its body is buffered. CONNECT is decoded
/// by the protocol level it carries, whatever `version` says; `version` governs the rest.
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = parse_header(buf, version)? else {
        return Ok(None);
    };
    let total = header.header_len + header.remaining_len;
    if total > max_packet_size {
        let packet = header.kind.name();
        return Err(DecodeError::PacketTooLarge { packet, size: total, max: max_packet_size });
    }
    if buf.len() < total {
        // No reserve(total) here: a peer announcing a large packet and then trickling it
        // should cost the bytes it sent, not the limit, times every such connection.
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    let body = Reader::new(frame.slice(header.header_len..), header.kind.name());
    decode_body(header, body, version).map(Some)
}

fn decode_body(h: FixedHeader, r: Reader, v: ProtocolVersion) -> Result<Packet, DecodeError> {
    Ok(match h.kind {
        Kind::Connect => Packet::Connect(Box::new(connect::decode(r)?)),
        Kind::ConnAck => Packet::ConnAck(Box::new(connack::decode(r, v)?)),
        Kind::Publish => Packet::Publish(publish::decode(r, h.flags, v)?),
        Kind::PubAck => Packet::PubAck(ack::decode(r, v, ack::PUBACK_REASONS)?),
        Kind::PubRec => Packet::PubRec(ack::decode(r, v, ack::PUBACK_REASONS)?),
        Kind::PubRel => Packet::PubRel(ack::decode(r, v, ack::PUBREL_REASONS)?),
        Kind::PubComp => Packet::PubComp(ack::decode(r, v, ack::PUBREL_REASONS)?),
        Kind::Subscribe => Packet::Subscribe(subscribe::decode(r, v)?),
        Kind::SubAck => Packet::SubAck(suback::decode(r, v)?),
        Kind::Unsubscribe => Packet::Unsubscribe(unsubscribe::decode(r, v)?),
        Kind::UnsubAck => Packet::UnsubAck(unsuback::decode(r, v)?),
        Kind::PingReq => r.finish().map(|()| Packet::PingReq)?,
        Kind::PingResp => r.finish().map(|()| Packet::PingResp)?,
        Kind::Disconnect => Packet::Disconnect(disconnect::decode(r, v)?),
        Kind::Auth => Packet::Auth(auth::decode(r)?),
    })
}

/// Appends `packet`, encoded for `version`, to `buf`. CONNECT is encoded for the protocol
/// level it names. Fields that exist only in MQTT 5.0 (properties, ack reason codes) are
/// left out when encoding for 3.1.1; an AUTH packet cannot be encoded for 3.1.1 at all.
/// On error `buf` is left as it was.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let version = effective_version(packet, version);
    let mut counter = Counter::new(packet.name());
    write_body(packet, version, &mut counter);
    if let Some(err) = counter.error {
        return Err(err);
    }
    let remaining = counter.len;
    if remaining > MAX_VARINT as usize {
        return Err(EncodeError::TooLarge { packet: packet.name(), len: remaining });
    }
    buf.reserve(1 + varint_len(remaining) + remaining);
    buf.u8(first_byte(packet));
    buf.varint("remaining length", remaining as u32);
    write_body(packet, version, buf);
    Ok(())
}

/// Bytes `encode` would append for `packet` (fixed header included), e.g. to respect a v5
/// client's Maximum Packet Size before sending.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let mut counter = Counter::new(packet.name());
    write_body(packet, effective_version(packet, version), &mut counter);
    1 + varint_len(counter.len) + counter.len
}

fn effective_version(packet: &Packet, version: ProtocolVersion) -> ProtocolVersion {
    match packet {
        Packet::Connect(c) => c.protocol,
        _ => version,
    }
}

fn first_byte(packet: &Packet) -> u8 {
    let kind = Kind::of(packet);
    let flags = match packet {
        Packet::Publish(p) => (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain),
        _ => kind.fixed_flags(),
    };
    ((kind as u8) << 4) | flags
}

fn write_body<S: Sink>(packet: &Packet, v: ProtocolVersion, s: &mut S) {
    match packet {
        Packet::Connect(c) => connect::write(c, s),
        Packet::ConnAck(c) => connack::write(c, v, s),
        Packet::Publish(p) => publish::write(p, v, s),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => ack::write(a, v, s),
        Packet::Subscribe(p) => subscribe::write(p, v, s),
        Packet::SubAck(p) => suback::write(p, v, s),
        Packet::Unsubscribe(p) => unsubscribe::write(p, v, s),
        Packet::UnsubAck(p) => unsuback::write(p, v, s),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => disconnect::write(d, v, s),
        Packet::Auth(a) => auth::write(a, v, s),
    }
}

/// Packet identifiers are non-zero wherever they appear (3.1.1 §2.3.1, 5.0 §2.2.1).
pub(crate) fn read_packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    let id = r.u16("packet identifier")?;
    if id == 0 {
        return Err(DecodeError::protocol(r.packet(), "packet identifier is 0"));
    }
    Ok(id)
}

pub(crate) fn put_packet_id<S: Sink>(s: &mut S, id: u16) {
    if id == 0 {
        s.fail("packet identifier is 0".into());
    }
    s.u16(id);
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
