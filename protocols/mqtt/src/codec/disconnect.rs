//! Codec layer: DISCONNECT (3.1.1 §3.14, 5.0 §3.14).
//!
//! Empty in 3.1.1. In v5 the reason code and properties may be left out: Remaining Length 0
//! means reason 0 (normal disconnection), 1 means a reason code without properties. We
//! encode the shortest form.

use super::error::DecodeError;
use super::primitives::{Reader, Sink};
use super::properties::{self as props, Property, WriteProperties, id, not_allowed, set_once};
use super::{Disconnect, DisconnectProperties, ProtocolVersion};

/// Reason codes of DISCONNECT (5.0 §3.14.2.1).
pub(crate) const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    let mut d = Disconnect::default();
    if v.is_v5() && !r.is_empty() {
        d.reason = r.reason(DISCONNECT_REASONS)?;
        if !r.is_empty() {
            d.properties = read_properties(&mut r)?;
        }
    }
    r.finish()?;
    Ok(d)
}

fn read_properties(r: &mut Reader) -> Result<DisconnectProperties, DecodeError> {
    let packet = r.packet();
    let mut p = DisconnectProperties::default();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::SessionExpiryInterval(v) => set_once(packet, &mut p.session_expiry_interval, id, v),
            Property::ReasonString(v) => set_once(packet, &mut p.reason_string, id, v),
            Property::User(k, v) => {
                p.user_properties.push((k, v));
                Ok(())
            }
            Property::ServerReference(v) => set_once(packet, &mut p.server_reference, id, v),
            other => Err(not_allowed(packet, &other)),
        }
    })?;
    Ok(p)
}

pub(crate) fn write<S: Sink>(d: &Disconnect, v: ProtocolVersion, s: &mut S) {
    if !v.is_v5() {
        return;
    }
    let no_properties = d.properties == DisconnectProperties::default();
    if d.reason == 0 && no_properties {
        return;
    }
    s.u8(d.reason);
    if !no_properties {
        props::put_properties(s, &d.properties);
    }
}

impl WriteProperties for DisconnectProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        props::put_u32(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        props::put_string(s, id::REASON_STRING, self.reason_string.as_deref());
        props::put_user_properties(s, &self.user_properties);
        props::put_string(s, id::SERVER_REFERENCE, self.server_reference.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::Packet;
    use proptest::prelude::*;

    fn disconnect(reason: u8) -> Packet {
        Packet::Disconnect(Disconnect { reason, ..Disconnect::default() })
    }

    #[test]
    fn vectors() {
        assert_vector(b"\xE0\x00", V3, &disconnect(0));
        assert_vector(b"\xE0\x00", V5, &disconnect(0));
        assert_vector(b"\xE0\x01\x04", V5, &disconnect(0x04));
        assert_eq!(enc(&disconnect(0x8E), V3), b"\xE0\x00");
        // Reason 0 with an empty property block: legal, sent back in the short form.
        assert_eq!(dec(b"\xE0\x02\x00\x00", V5).ok(), Some(disconnect(0)));
        let full = Disconnect {
            reason: 0x9C,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                reason_string: Some("bye".into()),
                user_properties: vec![("a".into(), "b".into())],
                server_reference: Some("h".into()),
            },
        };
        let bytes = b"\xE0\x18\x9C\x16\x11\x00\x00\x00\x00\x1F\x00\x03bye\
            \x26\x00\x01a\x00\x01b\x1C\x00\x01h";
        assert_vector(bytes, V5, &Packet::Disconnect(full));
    }

    #[test]
    fn errors() {
        let trailing = "DISCONNECT: 1 unexpected bytes at the end of the packet";
        assert_err(b"\xE0\x01\x00", V3, trailing, 0x81);
        let flags = "DISCONNECT: fixed header flags are 0b0001, must be 0b0000";
        assert_err(b"\xE1\x00", V5, flags, 0x81);
        assert_err(b"\xE0\x01\x01", V5, "DISCONNECT: reason code 0x01 is invalid", 0x82);
        let prop = "DISCONNECT: property Receive Maximum (0x21) is not allowed";
        assert_err(b"\xE0\x05\x00\x03\x21\x00\x01", V5, prop, 0x81);
    }

    fn any_disconnect() -> impl Strategy<Value = Disconnect> {
        (
            reason_of(DISCONNECT_REASONS),
            any::<Option<u32>>(),
            proptest::option::of(text()),
            users(),
            proptest::option::of(text()),
        )
            .prop_map(|(reason, expiry, reason_string, users, server)| Disconnect {
                reason,
                properties: DisconnectProperties {
                    session_expiry_interval: expiry,
                    reason_string,
                    user_properties: users,
                    server_reference: server,
                },
            })
    }

    proptest! {
        #[test]
        fn round_trips_v5(d in any_disconnect()) {
            round_trip(&Packet::Disconnect(d), V5)?;
        }
    }

    #[test]
    fn round_trips_v3() {
        assert_eq!(dec(&enc(&disconnect(0), V3), V3).ok(), Some(disconnect(0)));
    }
}
