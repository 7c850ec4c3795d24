//! Codec layer: CONNECT (3.1 `MQIsdp`, 3.1.1 §3.1, 5.0 §3.1), including the Will and the v5
//! CONNECT and Will properties.
//!
//! CONNECT names its own protocol, so it is decoded by the level it carries, not by the
//! connection's version. Checks here are those on the packet alone; client identifier rules
//! (length, characters, empty with clean session) are the session's.

use super::error::DecodeError;
use super::primitives::{Reader, Sink, check_topic_name};
use super::properties::{self as props, Property, WriteProperties, id, not_allowed, set_once};
use super::{Connect, ConnectProperties, LastWill, ProtocolVersion, QoS, WillProperties};

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

pub(crate) fn decode(mut r: Reader) -> Result<Connect, DecodeError> {
    let protocol = read_protocol(&mut r)?;
    let v5 = protocol.is_v5();
    let flags = r.u8("connect flags")?;
    if flags & RESERVED != 0 {
        return Err(DecodeError::malformed("CONNECT", "reserved connect flag is set"));
    }
    let Some(will_qos) = QoS::from_u8((flags >> 3) & 0b11) else {
        return Err(DecodeError::malformed("CONNECT", "Will QoS 3 is invalid"));
    };
    let will_retain = flags & WILL_RETAIN != 0;
    if flags & WILL == 0 && (will_qos != QoS::AtMostOnce || will_retain) {
        let what = "Will QoS or Will Retain is set without the Will Flag";
        return Err(DecodeError::protocol("CONNECT", what));
    }
    if flags & PASSWORD != 0 && flags & USERNAME == 0 && !v5 {
        let what = "password flag is set without the user name flag";
        return Err(DecodeError::malformed("CONNECT", what));
    }
    let keep_alive = r.u16("keep alive")?;
    let properties = if v5 { read_connect_properties(&mut r)? } else { Default::default() };
    let client_id = r.string("client identifier")?;
    let will = if flags & WILL != 0 {
        let properties = if v5 { read_will_properties(&mut r)? } else { Default::default() };
        let topic = check_topic_name("CONNECT", r.string("Will Topic")?)?;
        let payload = r.binary("Will Payload")?;
        Some(LastWill { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };
    let username = if flags & USERNAME != 0 { Some(r.string("user name")?) } else { None };
    let password = if flags & PASSWORD != 0 { Some(r.binary("password")?) } else { None };
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        properties,
        client_id,
        will,
        username,
        password,
    })
}

/// Protocol name and level: `MQIsdp` 3, `MQTT` 4 or `MQTT` 5.
fn read_protocol(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    match (&name[..], level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V31),
        (b"MQTT", 4) => Ok(ProtocolVersion::V311),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQIsdp" | b"MQTT", level) => Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => Err(DecodeError::UnknownProtocolName(String::from_utf8_lossy(&name).into_owned())),
    }
}

fn read_connect_properties(r: &mut Reader) -> Result<ConnectProperties, DecodeError> {
    let packet = r.packet();
    let mut p = ConnectProperties::default();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::SessionExpiryInterval(v) => set_once(packet, &mut p.session_expiry_interval, id, v),
            Property::ReceiveMaximum(v) => set_once(packet, &mut p.receive_maximum, id, v),
            Property::MaximumPacketSize(v) => set_once(packet, &mut p.maximum_packet_size, id, v),
            Property::TopicAliasMaximum(v) => set_once(packet, &mut p.topic_alias_maximum, id, v),
            Property::RequestResponseInformation(v) => set_once(packet, &mut p.request_response_information, id, v),
            Property::RequestProblemInformation(v) => set_once(packet, &mut p.request_problem_information, id, v),
            Property::User(k, v) => {
                p.user_properties.push((k, v));
                Ok(())
            }
            Property::AuthenticationMethod(v) => set_once(packet, &mut p.authentication_method, id, v),
            Property::AuthenticationData(v) => set_once(packet, &mut p.authentication_data, id, v),
            other => Err(not_allowed(packet, &other)),
        }
    })?;
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        let what = "Authentication Data without Authentication Method";
        return Err(DecodeError::protocol("CONNECT", what));
    }
    Ok(p)
}

fn read_will_properties(r: &mut Reader) -> Result<WillProperties, DecodeError> {
    let packet = r.packet();
    let mut p = WillProperties::default();
    props::read_properties(r, |prop| {
        let id = prop.id();
        match prop {
            Property::WillDelayInterval(v) => set_once(packet, &mut p.delay_interval, id, v),
            Property::PayloadFormatIndicator(v) => set_once(packet, &mut p.payload_format_indicator, id, v),
            Property::MessageExpiryInterval(v) => set_once(packet, &mut p.message_expiry_interval, id, v),
            Property::ContentType(v) => set_once(packet, &mut p.content_type, id, v),
            Property::ResponseTopic(v) => set_once(packet, &mut p.response_topic, id, check_topic_name(packet, v)?),
            Property::CorrelationData(v) => set_once(packet, &mut p.correlation_data, id, v),
            Property::User(k, v) => {
                p.user_properties.push((k, v));
                Ok(())
            }
            other => Err(not_allowed(packet, &other)),
        }
    })?;
    Ok(p)
}

pub(crate) fn write<S: Sink>(c: &Connect, s: &mut S) {
    let v5 = c.protocol.is_v5();
    let name = if c.protocol == ProtocolVersion::V31 { "MQIsdp" } else { "MQTT" };
    s.string("protocol name", name);
    s.u8(c.protocol.level());
    let mut flags = if c.clean_start { CLEAN_START } else { 0 };
    if let Some(will) = &c.will {
        flags |= WILL | ((will.qos as u8) << 3) | if will.retain { WILL_RETAIN } else { 0 };
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
        if c.username.is_none() && !v5 {
            s.fail("a password without a user name needs MQTT 5.0".into());
        }
    }
    s.u8(flags);
    s.u16(c.keep_alive);
    if v5 {
        props::put_properties(s, &c.properties);
    }
    s.string("client identifier", &c.client_id);
    if let Some(will) = &c.will {
        if v5 {
            props::put_properties(s, &will.properties);
        }
        s.topic_name("Will Topic", &will.topic);
        s.binary("Will Payload", &will.payload);
    }
    if let Some(username) = &c.username {
        s.string("user name", username);
    }
    if let Some(password) = &c.password {
        s.binary("password", password);
    }
}

impl WriteProperties for ConnectProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        props::put_u32(s, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        props::put_u16(s, id::RECEIVE_MAXIMUM, self.receive_maximum);
        props::put_u32(s, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        props::put_u16(s, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        props::put_u8(s, id::REQUEST_RESPONSE_INFORMATION, self.request_response_information);
        props::put_u8(s, id::REQUEST_PROBLEM_INFORMATION, self.request_problem_information);
        props::put_user_properties(s, &self.user_properties);
        props::put_string(s, id::AUTHENTICATION_METHOD, self.authentication_method.as_deref());
        props::put_binary(s, id::AUTHENTICATION_DATA, self.authentication_data.as_deref());
    }
}

impl WriteProperties for WillProperties {
    fn write_properties<S: Sink>(&self, s: &mut S) {
        props::put_u32(s, id::WILL_DELAY_INTERVAL, self.delay_interval);
        props::put_u8(s, id::PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        props::put_u32(s, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        props::put_string(s, id::CONTENT_TYPE, self.content_type.as_deref());
        if let Some(topic) = &self.response_topic {
            s.u8(id::RESPONSE_TOPIC);
            s.topic_name("Response Topic", topic);
        }
        props::put_binary(s, id::CORRELATION_DATA, self.correlation_data.as_deref());
        props::put_user_properties(s, &self.user_properties);
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
