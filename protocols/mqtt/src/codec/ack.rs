//! Codec layer: PUBACK, PUBREC, PUBREL and PUBCOMP (3.1.1 §3.4-§3.7, 5.0 §3.4-§3.7).
//!
//! In 3.1.1 these are a packet identifier alone. In v5 a reason code and properties may
//! follow; both may be left out (Remaining Length 2: success, no properties) and the
//! property length may be left out (Remaining Length 3). We encode the shortest form.

use super::error::DecodeError;
use super::frame::{put_packet_id, read_packet_id};
use super::primitives::{Reader, Sink};
use super::properties::{put_properties, read_ack_properties};
use super::{Ack, AckProperties, ProtocolVersion};

/// Reason codes of PUBACK and PUBREC (5.0 §3.4.2.1, §3.5.2.1).
pub(crate) const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// Reason codes of PUBREL and PUBCOMP (5.0 §3.6.2.1, §3.7.2.1).
pub(crate) const PUBREL_REASONS: &[u8] = &[0x00, 0x92];

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion, reasons: &[u8]) -> Result<Ack, DecodeError> {
    let mut ack = Ack { packet_id: read_packet_id(&mut r)?, ..Ack::default() };
    if v.is_v5() && !r.is_empty() {
        ack.reason = r.reason(reasons)?;
        if !r.is_empty() {
            ack.properties = read_ack_properties(&mut r)?;
        }
    }
    r.finish()?;
    Ok(ack)
}

pub(crate) fn write<S: Sink>(ack: &Ack, v: ProtocolVersion, s: &mut S) {
    put_packet_id(s, ack.packet_id);
    if !v.is_v5() {
        return;
    }
    let no_properties = ack.properties == AckProperties::default();
    if ack.reason == 0 && no_properties {
        return;
    }
    s.u8(ack.reason);
    if !no_properties {
        put_properties(s, &ack.properties);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::Packet;
    use proptest::prelude::*;

    fn ack(packet_id: u16, reason: u8) -> Ack {
        Ack { packet_id, reason, properties: AckProperties::default() }
    }

    #[test]
    fn v3_vectors() {
        assert_vector(&[0x40, 0x02, 0x00, 0x0A], V3, &Packet::PubAck(ack(10, 0)));
        assert_vector(&[0x50, 0x02, 0x12, 0x34], V3, &Packet::PubRec(ack(0x1234, 0)));
        assert_vector(&[0x62, 0x02, 0xFF, 0xFF], V3, &Packet::PubRel(ack(0xFFFF, 0)));
        assert_vector(&[0x70, 0x02, 0x00, 0x01], V3, &Packet::PubComp(ack(1, 0)));
        // 3.1.1 has no reason codes: they are dropped when encoding.
        assert_eq!(enc(&Packet::PubAck(ack(10, 0x80)), V3), [0x40, 0x02, 0x00, 0x0A]);
    }

    #[test]
    fn v5_vectors() {
        assert_vector(&[0x40, 0x02, 0x00, 0x0A], V5, &Packet::PubAck(ack(10, 0)));
        assert_vector(&[0x50, 0x03, 0x00, 0x0A, 0x10], V5, &Packet::PubRec(ack(10, 0x10)));
        assert_vector(&[0x62, 0x03, 0x00, 0x0A, 0x92], V5, &Packet::PubRel(ack(10, 0x92)));
        let with_props = Ack {
            packet_id: 10,
            reason: 0x80,
            properties: AckProperties {
                reason_string: Some("bad".into()),
                user_properties: vec![("k".into(), "v".into())],
            },
        };
        let bytes = [
            0x70, 0x11, 0x00, 0x0A, 0x80, 0x0D, 0x1F, 0x00, 0x03, b'b', b'a', b'd', 0x26, 0x00, 0x01, b'k', 0x00, 0x01,
            b'v',
        ];
        let err = dec_err(&bytes, V5);
        assert_eq!(err.to_string(), "PUBCOMP: reason code 0x80 is invalid");
        let mut bytes = bytes;
        bytes[0] = 0x40;
        assert_vector(&bytes, V5, &Packet::PubAck(with_props));
    }

    #[test]
    fn v5_long_forms_decode_and_reencode_short() {
        // Reason 0 and an empty property block: legal, but we send the 2-byte form.
        let p = dec(&[0x40, 0x04, 0x00, 0x0A, 0x00, 0x00], V5).unwrap();
        assert_eq!(p, Packet::PubAck(ack(10, 0)));
        assert_eq!(enc(&p, V5), [0x40, 0x02, 0x00, 0x0A]);
        let p = dec(&[0x50, 0x04, 0x00, 0x0A, 0x10, 0x00], V5).unwrap();
        assert_eq!(enc(&p, V5), [0x50, 0x03, 0x00, 0x0A, 0x10]);
    }

    #[test]
    fn errors() {
        assert_err(&[0x60, 0x02, 0x00, 0x01], V3, "PUBREL: fixed header flags are 0b0000, must be 0b0010", 0x81);
        assert_err(&[0x42, 0x02, 0x00, 0x01], V5, "PUBACK: fixed header flags are 0b0010, must be 0b0000", 0x81);
        assert_err(&[0x40, 0x02, 0x00, 0x00], V5, "PUBACK: packet identifier is 0", 0x82);
        assert_err(&[0x40, 0x01, 0x00], V3, "PUBACK: packet identifier is truncated", 0x81);
        assert_err(&[0x40, 0x03, 0x00, 0x01, 0x00], V3, "PUBACK: 1 unexpected bytes at the end of the packet", 0x81);
        assert_err(&[0x62, 0x03, 0x00, 0x01, 0x10], V5, "PUBREL: reason code 0x10 is invalid", 0x82);
        assert_err(&[0x50, 0x05, 0x00, 0x01, 0x00, 0x02, 0x1F], V5, "PUBREC: property block is truncated", 0x81);
    }

    fn v5_ack(reasons: &'static [u8]) -> impl Strategy<Value = Ack> {
        (packet_id(), reason_of(reasons), proptest::option::of(text()), users()).prop_map(
            |(packet_id, reason, reason_string, user_properties)| Ack {
                packet_id,
                reason,
                properties: AckProperties { reason_string, user_properties },
            },
        )
    }

    proptest! {
        #[test]
        fn round_trips_v5(a in v5_ack(PUBACK_REASONS), b in v5_ack(PUBREL_REASONS)) {
            round_trip(&Packet::PubAck(a.clone()), V5)?;
            round_trip(&Packet::PubRec(a), V5)?;
            round_trip(&Packet::PubRel(b.clone()), V5)?;
            round_trip(&Packet::PubComp(b), V5)?;
        }

        #[test]
        fn round_trips_v3(id in packet_id()) {
            round_trip(&Packet::PubAck(ack(id, 0)), V3)?;
            round_trip(&Packet::PubRec(ack(id, 0)), V3)?;
            round_trip(&Packet::PubRel(ack(id, 0)), V3)?;
            round_trip(&Packet::PubComp(ack(id, 0)), V3)?;
        }
    }
}
