//! Codec layer: SUBSCRIBE (3.1.1 §3.8, 5.0 §3.8).
//!
//! Topic filters are read as strings; their syntax (levels, wildcard placement, shared
//! subscriptions and the No Local rule for them) is checked by the session.

use super::error::DecodeError;
use super::frame::{put_packet_id, read_packet_id};
use super::primitives::{Reader, Sink};
use super::properties::{self as props, Property, id, not_allowed, set_once};
use super::{ProtocolVersion, QoS, RetainHandling, Subscribe, SubscribeFilter, SubscriptionOptions, UserProperty};

/// The properties of SUBSCRIBE are two fields of [`Subscribe`]; this borrows them to write.
struct SubscribeProperties<'a> {
    sub_id: Option<u32>,
    users: &'a [UserProperty],
}

pub(crate) fn decode(mut r: Reader, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = read_packet_id(&mut r)?;
    let (subscription_identifier, user_properties) =
        if v.is_v5() { read_properties(&mut r)? } else { (None, Vec::new()) };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string("topic filter")?;
        let options = read_options(r.u8("subscription options")?, v)?;
        filters.push(SubscribeFilter { filter, options });
    }
    if filters.is_empty() {
        return Err(DecodeError::protocol("SUBSCRIBE", "no topic filters"));
    }
    Ok(Subscribe { packet_id, subscription_identifier, user_properties, filters })
}

fn read_properties(r: &mut Reader) -> Result<(Option<u32>, Vec<UserProperty>), DecodeError> {
    let mut sub_id = None;
    let mut users = Vec::new();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::SubscriptionIdentifier(v) => set_once("SUBSCRIBE", &mut sub_id, id, v),
            Property::User(k, v) => {
                users.push((k, v));
                Ok(())
            }
            other => Err(not_allowed("SUBSCRIBE", &other)),
        }
    })?;
    Ok((sub_id, users))
}

/// Subscription options byte (5.0 §3.8.3.1); in 3.1.1 only the QoS bits exist.
fn read_options(byte: u8, v: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v.is_v5() { 0xC0 } else { 0xFC };
    if byte & reserved != 0 {
        let what = format!("subscription options 0x{byte:02X} have reserved bits set");
        return Err(DecodeError::malformed("SUBSCRIBE", what));
    }
    let Some(qos) = QoS::from_u8(byte & 0b11) else {
        return Err(DecodeError::protocol_v5("SUBSCRIBE", v.is_v5(), "QoS 3 is invalid"));
    };
    let Some(retain_handling) = RetainHandling::from_u8((byte >> 4) & 0b11) else {
        return Err(DecodeError::protocol("SUBSCRIBE", "Retain Handling 3 is invalid"));
    };
    Ok(SubscriptionOptions { qos, no_local: byte & 0x04 != 0, retain_as_published: byte & 0x08 != 0, retain_handling })
}

pub(crate) fn write<S: Sink>(p: &Subscribe, v: ProtocolVersion, s: &mut S) {
    put_packet_id(s, p.packet_id);
    if v.is_v5() {
        let sub_id = p.subscription_identifier;
        props::put_properties(s, &SubscribeProperties { sub_id, users: &p.user_properties });
    }
    if p.filters.is_empty() {
        s.fail("no topic filters".into());
    }
    for f in &p.filters {
        s.string("topic filter", &f.filter);
        let o = f.options;
        let mut byte = o.qos as u8;
        if v.is_v5() {
            byte |=
                (u8::from(o.no_local) << 2) | (u8::from(o.retain_as_published) << 3) | (o.retain_handling.as_u8() << 4);
        }
        s.u8(byte);
    }
}

impl props::WriteProperties for SubscribeProperties<'_> {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        if let Some(sub_id) = self.sub_id {
            props::put_varint(s, id::SUBSCRIPTION_IDENTIFIER, sub_id);
        }
        props::put_user_properties(s, self.users);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::codec::Packet;
    use proptest::prelude::*;

    fn filter(filter: &str, qos: QoS) -> SubscribeFilter {
        let options = SubscriptionOptions { qos, ..SubscriptionOptions::default() };
        SubscribeFilter { filter: filter.into(), options }
    }

    #[test]
    fn v3_vector() {
        let bytes = b"\x82\x0C\x00\x01\x00\x03a/b\x01\x00\x01c\x02";
        let s = Subscribe {
            packet_id: 1,
            filters: vec![filter("a/b", QoS::AtLeastOnce), filter("c", QoS::ExactlyOnce)],
            ..Subscribe::default()
        };
        assert_vector(bytes, V3, &Packet::Subscribe(s));
    }

    #[test]
    fn v5_vector() {
        let bytes = b"\x82\x17\x00\x0A\x0A\x0B\xAC\x02\x26\x00\x01k\x00\x01v\
            \x00\x03a/+\x2D\x00\x01#\x00";
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        let s = Subscribe {
            packet_id: 10,
            subscription_identifier: Some(300),
            user_properties: vec![("k".into(), "v".into())],
            filters: vec![SubscribeFilter { filter: "a/+".into(), options }, filter("#", QoS::AtMostOnce)],
        };
        assert_vector(bytes, V5, &Packet::Subscribe(s.clone()));
        // For 3.1.1 only the QoS of the options and no properties are sent.
        assert_eq!(enc(&Packet::Subscribe(s), V3), b"\x82\x0C\x00\x0A\x00\x03a/+\x01\x00\x01#\x00");
    }

    #[test]
    fn errors() {
        let flags = "SUBSCRIBE: fixed header flags are 0b0000, must be 0b0010";
        assert_err(b"\x80\x06\x00\x01\x00\x01a\x00", V3, flags, 0x81);
        assert_err(b"\x82\x02\x00\x01", V3, "SUBSCRIBE: no topic filters", 0x82);
        assert_err(b"\x82\x03\x00\x01\x00", V5, "SUBSCRIBE: no topic filters", 0x82);
        assert_err(b"\x82\x06\x00\x00\x00\x01a\x00", V3, "SUBSCRIBE: packet identifier is 0", 0x82);
        let truncated = "SUBSCRIBE: subscription options is truncated";
        assert_err(b"\x82\x05\x00\x01\x00\x01a", V3, truncated, 0x81);
        let v3_cases: [(u8, &str, u8); 3] = [
            (0x04, "subscription options 0x04 have reserved bits set", 0x81),
            (0x80, "subscription options 0x80 have reserved bits set", 0x81),
            (0x03, "QoS 3 is invalid", 0x81),
        ];
        for (options, msg, code) in v3_cases {
            let bytes = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', options];
            assert_err(&bytes, V3, &format!("SUBSCRIBE: {msg}"), code);
        }
        let v5_cases: [(u8, &str, u8); 4] = [
            (0x40, "subscription options 0x40 have reserved bits set", 0x81),
            (0xC0, "subscription options 0xC0 have reserved bits set", 0x81),
            (0x03, "QoS 3 is invalid", 0x82),
            (0x30, "Retain Handling 3 is invalid", 0x82),
        ];
        for (options, msg, code) in v5_cases {
            let bytes = [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', options];
            assert_err(&bytes, V5, &format!("SUBSCRIBE: {msg}"), code);
        }
    }

    #[test]
    fn property_errors() {
        let dup = "SUBSCRIBE: property Subscription Identifier appears more than once";
        assert_err(b"\x82\x0B\x00\x01\x04\x0B\x01\x0B\x02\x00\x01a\x00", V5, dup, 0x82);
        let zero = "SUBSCRIBE: Subscription Identifier must not be 0";
        assert_err(b"\x82\x09\x00\x01\x02\x0B\x00\x00\x01a\x00", V5, zero, 0x82);
        let reason = "SUBSCRIBE: property Reason String (0x1F) is not allowed";
        assert_err(b"\x82\x0A\x00\x01\x03\x1F\x00\x00\x00\x01a\x00", V5, reason, 0x81);
    }

    fn any_filter(v5: bool) -> impl Strategy<Value = SubscribeFilter> {
        (text(), qos(), any::<(bool, bool)>(), 0u8..=2).prop_map(move |(filter, qos, (no_local, rap), rh)| {
            let rh = RetainHandling::from_u8(rh).unwrap_or_default();
            let options = if v5 {
                SubscriptionOptions { qos, no_local, retain_as_published: rap, retain_handling: rh }
            } else {
                SubscriptionOptions { qos, ..SubscriptionOptions::default() }
            };
            SubscribeFilter { filter, options }
        })
    }

    fn any_subscribe(v5: bool) -> impl Strategy<Value = Subscribe> {
        let sub_id = proptest::option::of(1u32..=268_435_455);
        let filters = proptest::collection::vec(any_filter(v5), 1..4);
        (packet_id(), sub_id, users(), filters).prop_map(move |(packet_id, sub_id, users, filters)| Subscribe {
            packet_id,
            subscription_identifier: sub_id.filter(|_| v5),
            user_properties: if v5 { users } else { Vec::new() },
            filters,
        })
    }

    proptest! {
        #[test]
        fn round_trips_v5(s in any_subscribe(true)) {
            round_trip(&Packet::Subscribe(s), V5)?;
        }

        #[test]
        fn round_trips_v3(s in any_subscribe(false)) {
            round_trip(&Packet::Subscribe(s), V3)?;
        }
    }
}
