//! Codec layer: SUBACK (3.1.1 §3.9, 5.0 §3.9).
//!
//! `SubAck::reasons` holds v5 reason codes. 3.1.1 knows only the granted QoS (0-2) and
//! 0x80 (failure): every code from 0x80 up is sent as 0x80.

use super::error::DecodeError;
use super::frame::{put_packet_id, read_packet_id};
use super::primitives::{Reader, Sink};
use super::properties::{put_properties, read_ack_properties};
use super::{ProtocolVersion, SubAck};

/// Reason codes of SUBACK (5.0 §3.9.3).
pub(crate) const SUBACK_REASONS: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
/// Return codes of a 3.1.1 SUBACK (§3.9.3).
const V3_RETURN_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = read_packet_id(&mut r)?;
    let properties = if v.is_v5() { read_ack_properties(&mut r)? } else { Default::default() };
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = r.u8("reason code")?;
        let allowed = if v.is_v5() { SUBACK_REASONS } else { V3_RETURN_CODES };
        if !allowed.contains(&code) {
            let what = format!("reason code 0x{code:02X} is invalid");
            return Err(DecodeError::protocol_v5("SUBACK", v.is_v5(), what));
        }
        reasons.push(code);
    }
    if reasons.is_empty() {
        return Err(DecodeError::protocol("SUBACK", "no reason codes"));
    }
    Ok(SubAck { packet_id, properties, reasons })
}

pub(crate) fn write<S: Sink>(p: &SubAck, v: ProtocolVersion, s: &mut S) {
    put_packet_id(s, p.packet_id);
    if v.is_v5() {
        put_properties(s, &p.properties);
    }
    if p.reasons.is_empty() {
        s.fail("no reason codes".into());
    }
    for &code in &p.reasons {
        if v.is_v5() {
            s.u8(code);
        } else if code >= 0x80 {
            s.u8(0x80);
        } else {
            if code > 2 {
                s.fail(format!("reason code 0x{code:02X} has no 3.1.1 equivalent").into());
            }
            s.u8(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::{AckProperties, Packet};
    use proptest::prelude::*;

    fn suback(packet_id: u16, reasons: &[u8]) -> Packet {
        let reasons = reasons.to_vec();
        Packet::SubAck(SubAck { packet_id, properties: AckProperties::default(), reasons })
    }

    #[test]
    fn vectors() {
        assert_vector(b"\x90\x06\x00\x01\x00\x01\x02\x80", V3, &suback(1, &[0, 1, 2, 0x80]));
        assert_vector(b"\x90\x05\x00\x01\x00\x01\x87", V5, &suback(1, &[1, 0x87]));
        // 3.1.1 has one failure code.
        assert_eq!(enc(&suback(1, &[0x87, 0xA2, 2]), V3), b"\x90\x05\x00\x01\x80\x80\x02");
        let with_reason = Packet::SubAck(SubAck {
            packet_id: 7,
            properties: AckProperties { reason_string: Some("no".into()), user_properties: vec![] },
            reasons: vec![0x9E],
        });
        assert_vector(b"\x90\x09\x00\x07\x05\x1F\x00\x02no\x9E", V5, &with_reason);
    }

    #[test]
    fn errors() {
        assert_err(b"\x90\x02\x00\x01", V3, "SUBACK: no reason codes", 0x82);
        assert_err(b"\x90\x03\x00\x01\x00", V5, "SUBACK: no reason codes", 0x82);
        assert_err(b"\x90\x03\x00\x01\x03", V3, "SUBACK: reason code 0x03 is invalid", 0x81);
        assert_err(b"\x90\x03\x00\x01\x87", V3, "SUBACK: reason code 0x87 is invalid", 0x81);
        assert_err(b"\x90\x04\x00\x01\x00\x03", V5, "SUBACK: reason code 0x03 is invalid", 0x82);
        assert_err(b"\x90\x03\x00\x00\x00", V3, "SUBACK: packet identifier is 0", 0x82);
        let flags = "SUBACK: fixed header flags are 0b0010, must be 0b0000";
        assert_err(b"\x92\x03\x00\x01\x00", V3, flags, 0x81);
    }

    fn any_suback(v5: bool) -> impl Strategy<Value = SubAck> {
        let codes: &'static [u8] = if v5 { SUBACK_REASONS } else { V3_RETURN_CODES };
        let reasons = proptest::collection::vec(reason_of(codes), 1..5);
        (packet_id(), proptest::option::of(text()), users(), reasons).prop_map(
            move |(packet_id, reason_string, user_properties, reasons)| {
                let properties =
                    if v5 { AckProperties { reason_string, user_properties } } else { AckProperties::default() };
                SubAck { packet_id, properties, reasons }
            },
        )
    }

    proptest! {
        #[test]
        fn round_trips_v5(p in any_suback(true)) {
            round_trip(&Packet::SubAck(p), V5)?;
        }

        #[test]
        fn round_trips_v3(p in any_suback(false)) {
            round_trip(&Packet::SubAck(p), V3)?;
        }
    }
}
