//! Codec layer: MQTT 5.0 properties (§2.2.2): identifiers, value types and range rules, and
//! generic read/write of a property block.
//!
//! Reading yields typed [`Property`] values; each packet module matches the ones its packet
//! type allows and rejects the rest, so the allow-list of §2.2.2.2 is written once, as the
//! match arms that fill the packet's properties struct.

use bytes::Bytes;

use super::error::DecodeError;
use super::primitives::{Counter, Reader, Sink};
use super::{AckProperties, UserProperty};

/// Property identifiers (§2.2.2.2).
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// The spec's name of a property, for error messages.
pub(crate) fn name(id: u8) -> &'static str {
    match id {
        id::PAYLOAD_FORMAT_INDICATOR => "Payload Format Indicator",
        id::MESSAGE_EXPIRY_INTERVAL => "Message Expiry Interval",
        id::CONTENT_TYPE => "Content Type",
        id::RESPONSE_TOPIC => "Response Topic",
        id::CORRELATION_DATA => "Correlation Data",
        id::SUBSCRIPTION_IDENTIFIER => "Subscription Identifier",
        id::SESSION_EXPIRY_INTERVAL => "Session Expiry Interval",
        id::ASSIGNED_CLIENT_IDENTIFIER => "Assigned Client Identifier",
        id::SERVER_KEEP_ALIVE => "Server Keep Alive",
        id::AUTHENTICATION_METHOD => "Authentication Method",
        id::AUTHENTICATION_DATA => "Authentication Data",
        id::REQUEST_PROBLEM_INFORMATION => "Request Problem Information",
        id::WILL_DELAY_INTERVAL => "Will Delay Interval",
        id::REQUEST_RESPONSE_INFORMATION => "Request Response Information",
        id::RESPONSE_INFORMATION => "Response Information",
        id::SERVER_REFERENCE => "Server Reference",
        id::REASON_STRING => "Reason String",
        id::RECEIVE_MAXIMUM => "Receive Maximum",
        id::TOPIC_ALIAS_MAXIMUM => "Topic Alias Maximum",
        id::TOPIC_ALIAS => "Topic Alias",
        id::MAXIMUM_QOS => "Maximum QoS",
        id::RETAIN_AVAILABLE => "Retain Available",
        id::USER_PROPERTY => "User Property",
        id::MAXIMUM_PACKET_SIZE => "Maximum Packet Size",
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => "Wildcard Subscription Available",
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => "Subscription Identifier Available",
        id::SHARED_SUBSCRIPTION_AVAILABLE => "Shared Subscription Available",
        _ => "unknown property",
    }
}

/// One decoded property, its value already checked against the range the spec allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Property {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(String),
    ResponseTopic(String),
    CorrelationData(Bytes),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(String),
    ServerKeepAlive(u16),
    AuthenticationMethod(String),
    AuthenticationData(Bytes),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(String),
    ServerReference(String),
    ReasonString(String),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(u8),
    RetainAvailable(u8),
    User(String, String),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

impl Property {
    pub(crate) fn id(&self) -> u8 {
        use Property as P;
        match self {
            P::PayloadFormatIndicator(_) => id::PAYLOAD_FORMAT_INDICATOR,
            P::MessageExpiryInterval(_) => id::MESSAGE_EXPIRY_INTERVAL,
            P::ContentType(_) => id::CONTENT_TYPE,
            P::ResponseTopic(_) => id::RESPONSE_TOPIC,
            P::CorrelationData(_) => id::CORRELATION_DATA,
            P::SubscriptionIdentifier(_) => id::SUBSCRIPTION_IDENTIFIER,
            P::SessionExpiryInterval(_) => id::SESSION_EXPIRY_INTERVAL,
            P::AssignedClientIdentifier(_) => id::ASSIGNED_CLIENT_IDENTIFIER,
            P::ServerKeepAlive(_) => id::SERVER_KEEP_ALIVE,
            P::AuthenticationMethod(_) => id::AUTHENTICATION_METHOD,
            P::AuthenticationData(_) => id::AUTHENTICATION_DATA,
            P::RequestProblemInformation(_) => id::REQUEST_PROBLEM_INFORMATION,
            P::WillDelayInterval(_) => id::WILL_DELAY_INTERVAL,
            P::RequestResponseInformation(_) => id::REQUEST_RESPONSE_INFORMATION,
            P::ResponseInformation(_) => id::RESPONSE_INFORMATION,
            P::ServerReference(_) => id::SERVER_REFERENCE,
            P::ReasonString(_) => id::REASON_STRING,
            P::ReceiveMaximum(_) => id::RECEIVE_MAXIMUM,
            P::TopicAliasMaximum(_) => id::TOPIC_ALIAS_MAXIMUM,
            P::TopicAlias(_) => id::TOPIC_ALIAS,
            P::MaximumQos(_) => id::MAXIMUM_QOS,
            P::RetainAvailable(_) => id::RETAIN_AVAILABLE,
            P::User(..) => id::USER_PROPERTY,
            P::MaximumPacketSize(_) => id::MAXIMUM_PACKET_SIZE,
            P::WildcardSubscriptionAvailable(_) => id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            P::SubscriptionIdentifierAvailable(_) => id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            P::SharedSubscriptionAvailable(_) => id::SHARED_SUBSCRIPTION_AVAILABLE,
        }
    }
}

/// Reads a property block (length, then properties filling exactly that length) and hands
/// each property to `each`, in wire order.
pub(crate) fn read_properties(
    r: &mut Reader,
    mut each: impl FnMut(Property) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let len = r.varint("property length")?;
    let mut block = r.sub(len as usize, "property block")?;
    while !block.is_empty() {
        each(read_one(&mut block)?)?;
    }
    Ok(())
}

fn read_one(r: &mut Reader) -> Result<Property, DecodeError> {
    use Property as P;
    let raw = r.varint("property identifier")?;
    let id = u8::try_from(raw).unwrap_or(0);
    let field = name(id);
    Ok(match id {
        id::PAYLOAD_FORMAT_INDICATOR => P::PayloadFormatIndicator(flag(r, id)?),
        id::MESSAGE_EXPIRY_INTERVAL => P::MessageExpiryInterval(r.u32(field)?),
        id::CONTENT_TYPE => P::ContentType(r.string(field)?),
        id::RESPONSE_TOPIC => P::ResponseTopic(r.string(field)?),
        id::CORRELATION_DATA => P::CorrelationData(r.binary(field)?),
        id::SUBSCRIPTION_IDENTIFIER => {
            let value = r.varint(field)?;
            P::SubscriptionIdentifier(non_zero(r, id, value)?)
        }
        id::SESSION_EXPIRY_INTERVAL => P::SessionExpiryInterval(r.u32(field)?),
        id::ASSIGNED_CLIENT_IDENTIFIER => P::AssignedClientIdentifier(r.string(field)?),
        id::SERVER_KEEP_ALIVE => P::ServerKeepAlive(r.u16(field)?),
        id::AUTHENTICATION_METHOD => P::AuthenticationMethod(r.string(field)?),
        id::AUTHENTICATION_DATA => P::AuthenticationData(r.binary(field)?),
        id::REQUEST_PROBLEM_INFORMATION => P::RequestProblemInformation(flag(r, id)?),
        id::WILL_DELAY_INTERVAL => P::WillDelayInterval(r.u32(field)?),
        id::REQUEST_RESPONSE_INFORMATION => P::RequestResponseInformation(flag(r, id)?),
        id::RESPONSE_INFORMATION => P::ResponseInformation(r.string(field)?),
        id::SERVER_REFERENCE => P::ServerReference(r.string(field)?),
        id::REASON_STRING => P::ReasonString(r.string(field)?),
        id::RECEIVE_MAXIMUM => {
            let value = r.u16(field)?;
            P::ReceiveMaximum(non_zero(r, id, value)?)
        }
        id::TOPIC_ALIAS_MAXIMUM => P::TopicAliasMaximum(r.u16(field)?),
        id::TOPIC_ALIAS => {
            let value = r.u16(field)?;
            P::TopicAlias(non_zero(r, id, value)?)
        }
        id::MAXIMUM_QOS => P::MaximumQos(flag(r, id)?),
        id::RETAIN_AVAILABLE => P::RetainAvailable(flag(r, id)?),
        id::USER_PROPERTY => {
            let key = r.string("User Property name")?;
            P::User(key, r.string("User Property value")?)
        }
        id::MAXIMUM_PACKET_SIZE => {
            let value = r.u32(field)?;
            P::MaximumPacketSize(non_zero(r, id, value)?)
        }
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => P::WildcardSubscriptionAvailable(flag(r, id)?),
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => P::SubscriptionIdentifierAvailable(flag(r, id)?),
        id::SHARED_SUBSCRIPTION_AVAILABLE => P::SharedSubscriptionAvailable(flag(r, id)?),
        _ => {
            let what = format!("property identifier 0x{raw:02X} is unknown");
            return Err(DecodeError::malformed(r.packet(), what));
        }
    })
}

/// A Byte property whose only values are 0 and 1 (anything else is a Protocol Error).
fn flag(r: &mut Reader, id: u8) -> Result<u8, DecodeError> {
    let value = r.u8(name(id))?;
    if value > 1 {
        let what = format!("{} must be 0 or 1, not {value}", name(id));
        return Err(DecodeError::protocol(r.packet(), what));
    }
    Ok(value)
}

/// A property for which 0 is a Protocol Error (Receive Maximum, Topic Alias, ...).
fn non_zero<T: PartialEq + Default>(r: &Reader, id: u8, value: T) -> Result<T, DecodeError> {
    if value == T::default() {
        let what = format!("{} must not be 0", name(id));
        return Err(DecodeError::protocol(r.packet(), what));
    }
    Ok(value)
}

/// Stores a non-repeatable property; a second occurrence is a Protocol Error (§2.2.2.2).
pub(crate) fn set_once<T>(packet: &'static str, slot: &mut Option<T>, id: u8, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        let what = format!("property {} appears more than once", name(id));
        return Err(DecodeError::protocol(packet, what));
    }
    *slot = Some(value);
    Ok(())
}

/// A property identifier not valid for the packet type makes it malformed (§2.2.2.2).
pub(crate) fn not_allowed(packet: &'static str, property: &Property) -> DecodeError {
    let id = property.id();
    DecodeError::malformed(packet, format!("property {} (0x{id:02X}) is not allowed", name(id)))
}

/// A packet's properties struct, written as the properties it holds (in a fixed order, user
/// properties in their own order).
pub(crate) trait WriteProperties {
    fn write_properties<S: Sink>(&self, s: &mut S);
}

/// Writes a property block: its length, then the properties.
pub(crate) fn put_properties<S: Sink, P: WriteProperties>(s: &mut S, props: &P) {
    let mut counter = Counter::new("");
    props.write_properties(&mut counter);
    s.varint("property length", u32::try_from(counter.len).unwrap_or(u32::MAX));
    props.write_properties(s);
}

pub(crate) fn put_u8<S: Sink>(s: &mut S, id: u8, value: Option<u8>) {
    if let Some(v) = value {
        s.u8(id);
        s.u8(v);
    }
}

pub(crate) fn put_u16<S: Sink>(s: &mut S, id: u8, value: Option<u16>) {
    if let Some(v) = value {
        s.u8(id);
        s.u16(v);
    }
}

pub(crate) fn put_u32<S: Sink>(s: &mut S, id: u8, value: Option<u32>) {
    if let Some(v) = value {
        s.u8(id);
        s.u32(v);
    }
}

pub(crate) fn put_varint<S: Sink>(s: &mut S, id: u8, value: u32) {
    if value == 0 {
        s.fail(format!("{} must not be 0", name(id)).into());
    }
    s.u8(id);
    s.varint(name(id), value);
}

pub(crate) fn put_string<S: Sink>(s: &mut S, id: u8, value: Option<&str>) {
    if let Some(v) = value {
        s.u8(id);
        s.string(name(id), v);
    }
}

pub(crate) fn put_binary<S: Sink>(s: &mut S, id: u8, value: Option<&[u8]>) {
    if let Some(v) = value {
        s.u8(id);
        s.binary(name(id), v);
    }
}

pub(crate) fn put_user_properties<S: Sink>(s: &mut S, users: &[UserProperty]) {
    for (key, value) in users {
        s.u8(id::USER_PROPERTY);
        s.string("User Property name", key);
        s.string("User Property value", value);
    }
}

impl WriteProperties for AckProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        put_string(s, id::REASON_STRING, self.reason_string.as_deref());
        put_user_properties(s, &self.user_properties);
    }
}

impl WriteProperties for Vec<UserProperty> {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        put_user_properties(s, self);
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: Reason String and
/// User Properties.
pub(crate) fn read_ack_properties(r: &mut Reader) -> Result<AckProperties, DecodeError> {
    let packet = r.packet();
    let mut props = AckProperties::default();
    read_properties(r, |p| {
        let id = p.id();
        match p {
            Property::ReasonString(v) => set_once(packet, &mut props.reason_string, id, v)?,
            Property::User(k, v) => props.user_properties.push((k, v)),
            other => return Err(not_allowed(packet, &other)),
        }
        Ok(())
    })?;
    Ok(props)
}

/// Properties that are only User Properties (SUBSCRIBE aside, UNSUBSCRIBE).
pub(crate) fn read_user_properties(r: &mut Reader) -> Result<Vec<UserProperty>, DecodeError> {
    let packet = r.packet();
    let mut users = Vec::new();
    read_properties(r, |p| match p {
        Property::User(k, v) => {
            users.push((k, v));
            Ok(())
        }
        other => Err(not_allowed(packet, &other)),
    })?;
    Ok(users)
}

#[cfg(test)]
#[path = "properties_tests.rs"]
mod tests;
