//! Codec layer: AUTH (5.0 §3.15), which exists only in MQTT 5.0.
//!
//! Remaining Length 0 means reason 0 (success) without properties. A reason code without a
//! property length is accepted as well (as for DISCONNECT, and as Mosquitto does), but we
//! always send the property length after a non-zero reason code, as §3.15.2 describes.

use super::error::DecodeError;
use super::primitives::{Reader, Sink};
use super::properties::{self as props, Property, WriteProperties, id, not_allowed, set_once};
use super::{Auth, AuthProperties, ProtocolVersion};

/// Reason codes of AUTH (5.0 §3.15.2.1).
pub(crate) const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];

pub(crate) fn decode(mut r: Reader) -> Result<Auth, DecodeError> {
    let mut a = Auth::default();
    if !r.is_empty() {
        a.reason = r.reason(AUTH_REASONS)?;
        if !r.is_empty() {
            a.properties = read_properties(&mut r)?;
        }
    }
    r.finish()?;
    Ok(a)
}

fn read_properties(r: &mut Reader) -> Result<AuthProperties, DecodeError> {
    let packet = r.packet();
    let mut p = AuthProperties::default();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::AuthenticationMethod(v) => set_once(packet, &mut p.authentication_method, id, v),
            Property::AuthenticationData(v) => set_once(packet, &mut p.authentication_data, id, v),
            Property::ReasonString(v) => set_once(packet, &mut p.reason_string, id, v),
            Property::User(k, v) => {
                p.user_properties.push((k, v));
                Ok(())
            }
            other => Err(not_allowed(packet, &other)),
        }
    })?;
    Ok(p)
}

pub(crate) fn write<S: Sink>(a: &Auth, v: ProtocolVersion, s: &mut S) {
    if !v.is_v5() {
        s.fail("packet exists only in MQTT 5.0".into());
    }
    if a.reason == 0 && a.properties == AuthProperties::default() {
        return;
    }
    s.u8(a.reason);
    props::put_properties(s, &a.properties);
}

impl WriteProperties for AuthProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        props::put_string(s, id::AUTHENTICATION_METHOD, self.authentication_method.as_deref());
        props::put_binary(s, id::AUTHENTICATION_DATA, self.authentication_data.as_deref());
        props::put_string(s, id::REASON_STRING, self.reason_string.as_deref());
        props::put_user_properties(s, &self.user_properties);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::{Packet, encode};
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        assert_vector(b"\xF0\x00", V5, &Packet::Auth(Auth::default()));
        let cont = Auth { reason: 0x18, properties: AuthProperties::default() };
        assert_vector(b"\xF0\x02\x18\x00", V5, &Packet::Auth(cont.clone()));
        assert_eq!(dec(b"\xF0\x01\x18", V5).ok(), Some(Packet::Auth(cont)));
        let full = Auth {
            reason: 0x19,
            properties: AuthProperties {
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                reason_string: Some("again".into()),
                user_properties: vec![],
            },
        };
        let bytes = b"\xF0\x17\x19\x15\x15\x00\x05SCRAM\x16\x00\x02\x01\x02\x1F\x00\x05again";
        assert_vector(bytes, V5, &Packet::Auth(full));
    }

    #[test]
    fn errors() {
        assert_err(b"\xF0\x00", V3, "AUTH: packet exists only in MQTT 5.0", 0x81);
        assert_err(b"\xF0\x01\x01", V5, "AUTH: reason code 0x01 is invalid", 0x82);
        let flags = "AUTH: fixed header flags are 0b0010, must be 0b0000";
        assert_err(b"\xF2\x00", V5, flags, 0x81);
        let prop = "AUTH: property Session Expiry Interval (0x11) is not allowed";
        assert_err(b"\xF0\x07\x18\x05\x11\x00\x00\x00\x01", V5, prop, 0x81);
        let mut buf = BytesMut::new();
        let err = encode(&Packet::Auth(Auth::default()), V3, &mut buf).unwrap_err();
        assert_eq!(err.to_string(), "AUTH: packet exists only in MQTT 5.0");
        assert!(buf.is_empty());
    }

    proptest! {
        #[test]
        fn round_trips(
            reason in reason_of(AUTH_REASONS),
            method in proptest::option::of(text()),
            data in proptest::option::of(bytes()),
            reason_string in proptest::option::of(text()),
            user_properties in users(),
        ) {
            let properties = AuthProperties {
                authentication_method: method,
                authentication_data: data,
                reason_string,
                user_properties,
            };
            round_trip(&Packet::Auth(Auth { reason, properties }), V5)?;
        }
    }
}
