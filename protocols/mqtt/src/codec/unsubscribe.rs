//! Codec layer: UNSUBSCRIBE (3.1.1 §3.10, 5.0 §3.10).

use super::error::DecodeError;
use super::frame::{put_packet_id, read_packet_id};
use super::primitives::{Reader, Sink};
use super::properties::{put_properties, read_user_properties};
use super::{ProtocolVersion, Unsubscribe};

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = read_packet_id(&mut r)?;
    let user_properties = if v.is_v5() { read_user_properties(&mut r)? } else { Vec::new() };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string("topic filter")?);
    }
    if filters.is_empty() {
        return Err(DecodeError::protocol("UNSUBSCRIBE", "no topic filters"));
    }
    Ok(Unsubscribe { packet_id, user_properties, filters })
}

pub(crate) fn write<S: Sink>(p: &Unsubscribe, v: ProtocolVersion, s: &mut S) {
    put_packet_id(s, p.packet_id);
    if v.is_v5() {
        put_properties(s, &p.user_properties);
    }
    if p.filters.is_empty() {
        s.fail("no topic filters".into());
    }
    for filter in &p.filters {
        s.string("topic filter", filter);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::Packet;
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        let u = Unsubscribe { packet_id: 2, user_properties: vec![], filters: vec!["a/b".into(), "#".into()] };
        assert_vector(b"\xA2\x0A\x00\x02\x00\x03a/b\x00\x01#", V3, &Packet::Unsubscribe(u.clone()));
        assert_vector(b"\xA2\x0B\x00\x02\x00\x00\x03a/b\x00\x01#", V5, &Packet::Unsubscribe(u));
        let with_user =
            Unsubscribe { packet_id: 2, user_properties: vec![("k".into(), "".into())], filters: vec!["x".into()] };
        let bytes = b"\xA2\x0C\x00\x02\x06\x26\x00\x01k\x00\x00\x00\x01x";
        assert_vector(bytes, V5, &Packet::Unsubscribe(with_user));
    }

    #[test]
    fn errors() {
        assert_err(b"\xA2\x02\x00\x02", V3, "UNSUBSCRIBE: no topic filters", 0x82);
        assert_err(b"\xA2\x03\x00\x02\x00", V5, "UNSUBSCRIBE: no topic filters", 0x82);
        let flags = "UNSUBSCRIBE: fixed header flags are 0b0000, must be 0b0010";
        assert_err(b"\xA0\x05\x00\x02\x00\x01a", V3, flags, 0x81);
        assert_err(b"\xA2\x05\x00\x00\x00\x01a", V3, "UNSUBSCRIBE: packet identifier is 0", 0x82);
        assert_err(b"\xA2\x05\x00\x02\x00\x02a", V3, "UNSUBSCRIBE: topic filter is truncated", 0x81);
        let prop = "UNSUBSCRIBE: property Subscription Identifier (0x0B) is not allowed";
        assert_err(b"\xA2\x08\x00\x02\x02\x0B\x01\x00\x01a", V5, prop, 0x81);
    }

    fn any_unsubscribe(v5: bool) -> impl Strategy<Value = Unsubscribe> {
        let filters = proptest::collection::vec(text(), 1..4);
        (packet_id(), users(), filters).prop_map(move |(packet_id, users, filters)| Unsubscribe {
            packet_id,
            user_properties: if v5 { users } else { Vec::new() },
            filters,
        })
    }

    proptest! {
        #[test]
        fn round_trips_v5(p in any_unsubscribe(true)) {
            round_trip(&Packet::Unsubscribe(p), V5)?;
        }

        #[test]
        fn round_trips_v3(p in any_unsubscribe(false)) {
            round_trip(&Packet::Unsubscribe(p), V3)?;
        }
    }
}
