//! Codec layer: UNSUBACK (3.1.1 §3.11, 5.0 §3.11). In 3.1.1 it is a packet identifier
//! alone; v5 adds properties and one reason code per topic filter.

use super::error::DecodeError;
use super::frame::{put_packet_id, read_packet_id};
use super::primitives::{Reader, Sink};
use super::properties::{put_properties, read_ack_properties};
use super::{ProtocolVersion, UnsubAck};

/// Reason codes of UNSUBACK (5.0 §3.11.3).
pub(crate) const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let mut ack = UnsubAck { packet_id: read_packet_id(&mut r)?, ..UnsubAck::default() };
    if v.is_v5() {
        ack.properties = read_ack_properties(&mut r)?;
        ack.reasons.reserve(r.remaining());
        while !r.is_empty() {
            ack.reasons.push(r.reason(UNSUBACK_REASONS)?);
        }
        if ack.reasons.is_empty() {
            return Err(DecodeError::protocol("UNSUBACK", "no reason codes"));
        }
    }
    r.finish()?;
    Ok(ack)
}

pub(crate) fn write<S: Sink>(p: &UnsubAck, v: ProtocolVersion, s: &mut S) {
    put_packet_id(s, p.packet_id);
    if !v.is_v5() {
        return;
    }
    put_properties(s, &p.properties);
    if p.reasons.is_empty() {
        s.fail("no reason codes".into());
    }
    s.put(&p.reasons);
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::{AckProperties, Packet};
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        let v3 = UnsubAck { packet_id: 3, ..UnsubAck::default() };
        assert_vector(b"\xB0\x02\x00\x03", V3, &Packet::UnsubAck(v3));
        let v5 = UnsubAck { packet_id: 3, reasons: vec![0x00, 0x11], ..UnsubAck::default() };
        assert_vector(b"\xB0\x05\x00\x03\x00\x00\x11", V5, &Packet::UnsubAck(v5.clone()));
        // Reason codes do not exist in 3.1.1.
        assert_eq!(enc(&Packet::UnsubAck(v5), V3), b"\xB0\x02\x00\x03");
    }

    #[test]
    fn errors() {
        let trailing = "UNSUBACK: 1 unexpected bytes at the end of the packet";
        assert_err(b"\xB0\x03\x00\x03\x00", V3, trailing, 0x81);
        assert_err(b"\xB0\x03\x00\x03\x00", V5, "UNSUBACK: no reason codes", 0x82);
        assert_err(b"\xB0\x02\x00\x03", V5, "UNSUBACK: property length is truncated", 0x81);
        assert_err(b"\xB0\x04\x00\x03\x00\x02", V5, "UNSUBACK: reason code 0x02 is invalid", 0x82);
        assert_err(b"\xB0\x02\x00\x00", V3, "UNSUBACK: packet identifier is 0", 0x82);
    }

    fn any_unsuback() -> impl Strategy<Value = UnsubAck> {
        let reasons = proptest::collection::vec(reason_of(UNSUBACK_REASONS), 1..5);
        (packet_id(), proptest::option::of(text()), users(), reasons).prop_map(
            |(packet_id, reason_string, user_properties, reasons)| UnsubAck {
                packet_id,
                properties: AckProperties { reason_string, user_properties },
                reasons,
            },
        )
    }

    proptest! {
        #[test]
        fn round_trips_v5(p in any_unsuback()) {
            round_trip(&Packet::UnsubAck(p), V5)?;
        }

        #[test]
        fn round_trips_v3(packet_id in packet_id()) {
            round_trip(&Packet::UnsubAck(UnsubAck { packet_id, ..UnsubAck::default() }), V3)?;
        }
    }
}
