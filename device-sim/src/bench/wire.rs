//! The load generator's hot path on the wire: PUBLISH written and read without building a
//! `Publish` value (no topic `String`, no `Bytes` per message). Every other packet goes
//! through `roost_mqtt::codec`, which is also what checks this module in the tests.

use bytes::{Buf as _, BufMut as _, BytesMut};
use roost_mqtt::codec::{Packet, ProtocolVersion, QoS};

use crate::client;

/// Bytes at the front of every bench payload: publisher index, sequence number, send time.
pub const HEADER_LEN: usize = 4 + 8 + 8;

/// Appends one PUBLISH whose payload is the bench header padded with zeros to `payload_len`.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    qos: QoS,
    packet_id: u16,
    topic: &str,
    payload_len: usize,
    publisher: u32,
    seq: u64,
    sent_ns: u64,
) {
    let payload_len = payload_len.max(HEADER_LEN);
    let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let props_len = usize::from(version.is_v5());
    let remaining = 2 + topic.len() + id_len + props_len + payload_len;
    buf.reserve(5 + remaining);
    buf.put_u8(0x30 | ((qos as u8) << 1));
    let mut r = remaining;
    loop {
        let mut byte = (r % 128) as u8;
        r /= 128;
        if r > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if r == 0 {
            break;
        }
    }
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if id_len > 0 {
        buf.put_u16(packet_id);
    }
    if props_len > 0 {
        buf.put_u8(0);
    }
    buf.put_u32_le(publisher);
    buf.put_u64_le(seq);
    buf.put_u64_le(sent_ns);
    buf.put_bytes(0, payload_len - HEADER_LEN);
}

/// A bench message as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub qos: u8,
    pub packet_id: u16,
    pub publisher: u32,
    pub seq: u64,
    pub sent_ns: u64,
}

pub enum Frame {
    /// A PUBLISH carrying a bench header.
    Bench(Received),
    /// A PUBLISH whose payload is too short to be ours.
    Foreign,
    Other(Packet),
}

/// Takes the next complete packet from `buf`, if there is one.
pub fn next(buf: &mut BytesMut, version: ProtocolVersion) -> anyhow::Result<Option<Frame>> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first >> 4 != 3 {
        return Ok(client::decode(buf, version)?.map(Frame::Other));
    }
    // Remaining length (at most 4 bytes).
    let mut remaining = 0usize;
    let mut header = 1;
    loop {
        let Some(&b) = buf.get(header) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7f) << (7 * (header - 1));
        header += 1;
        if b & 0x80 == 0 {
            break;
        }
        if header > 4 {
            anyhow::bail!("PUBLISH: malformed remaining length");
        }
    }
    if buf.len() < header + remaining {
        return Ok(None);
    }
    let qos = (first >> 1) & 3;
    let body = &buf[header..header + remaining];
    let frame = parse_body(body, qos, version);
    buf.advance(header + remaining);
    frame
}

fn parse_body(body: &[u8], qos: u8, version: ProtocolVersion) -> anyhow::Result<Option<Frame>> {
    let short = || anyhow::anyhow!("PUBLISH: truncated");
    let topic_len =
        usize::from(u16::from_be_bytes([*body.first().ok_or_else(short)?, *body.get(1).ok_or_else(short)?]));
    let mut at = 2 + topic_len;
    let mut packet_id = 0;
    if qos > 0 {
        let b = body.get(at..at + 2).ok_or_else(short)?;
        packet_id = u16::from_be_bytes([b[0], b[1]]);
        at += 2;
    }
    if version.is_v5() {
        let mut props = 0usize;
        let mut shift = 0;
        loop {
            let b = *body.get(at).ok_or_else(short)?;
            at += 1;
            props |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        at += props;
    }
    let payload = body.get(at..).ok_or_else(short)?;
    if payload.len() < HEADER_LEN {
        return Ok(Some(Frame::Foreign));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Ok(Some(Frame::Bench(Received {
        qos,
        packet_id,
        publisher: u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]),
        seq: u64_at(4),
        sent_ns: u64_at(12),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_mqtt::codec;

    #[test]
    fn round_trips_and_agrees_with_the_codec() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for (qos, pid) in [(QoS::AtMostOnce, 0), (QoS::AtLeastOnce, 513)] {
                let topic = "bench/x/in/7".repeat(20); // long enough for a 2-byte length
                let mut buf = BytesMut::new();
                encode_publish(&mut buf, version, qos, pid, &topic, 64, 7, 99, 12345);
                let mut copy = buf.clone();
                match codec::decode(&mut copy, version, 1 << 20).unwrap() {
                    Some(Packet::Publish(p)) => {
                        assert_eq!(
                            (p.topic.as_str(), p.qos, p.packet_id, p.payload.len()),
                            (topic.as_str(), qos, pid, 64)
                        );
                    }
                    other => panic!("{other:?}"),
                }
                match next(&mut buf, version).unwrap() {
                    Some(Frame::Bench(r)) => {
                        assert_eq!(
                            r,
                            Received { qos: qos as u8, packet_id: pid, publisher: 7, seq: 99, sent_ns: 12345 }
                        );
                    }
                    _ => panic!("not a bench frame"),
                }
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn waits_for_the_whole_packet() {
        let mut buf = BytesMut::new();
        encode_publish(&mut buf, ProtocolVersion::V311, QoS::AtMostOnce, 0, "t", 64, 0, 0, 0);
        let mut part = BytesMut::from(&buf[..10]);
        assert!(next(&mut part, ProtocolVersion::V311).unwrap().is_none());
        assert_eq!(part.len(), 10);
    }
}
