//! Codec layer: MQTT 3.1.1 (OASIS, 2014) and MQTT 5.0 (OASIS, 2019) control packets <-> bytes.
//! MQTT 3.1 (`MQIsdp`, level 3) is accepted in CONNECT and handled with 3.1.1 rules.
//!
//! Written here rather than taken from `mqttbytes`: that crate is abandoned (0.6.0, October
//! 2021, folded into `rumqttc`) and 0.6.0 prints to stderr for every v5 UNSUBSCRIBE it parses.
//! One module per packet type, each with its own encode/decode and byte-vector tests;
//! `rumqttc`'s packet modules serve as an independent cross-check in tests.
//!
//! The decoder checks the declared Remaining Length against the configured maximum packet
//! size *before* buffering the body, so a peer claiming 256 MiB costs us nothing. Every
//! malformed input is a [`DecodeError`] naming what was wrong; nothing here panics on input.
//!
//! Layout: [`decode`] / [`encode`] / [`encoded_len`] frame packets (`frame.rs`, which also
//! holds PINGREQ/PINGRESP); one module per packet type does its variable header, properties
//! and payload; `primitives.rs` and `properties.rs` are the shared data representations;
//! [`MqttCodec`] is the `tokio_util` framing. Validation stops at what one packet can tell:
//! state (a second CONNECT, topic alias ranges, packet ids in flight) and topic syntax beyond
//! "no wildcards in topic names" belong to the session.
//!
//! Fuzzing (`fuzz/` at the repository root, outside the workspace; needs
//! `cargo install cargo-fuzz`), from the repository root:
//!
//! ```text
//! mkdir -p fuzz/corpus/mqtt_decode
//! RUSTC_BOOTSTRAP=1 cargo fuzz run mqtt_decode fuzz/corpus/mqtt_decode fuzz/seeds/mqtt_decode \
//!     -- -max_total_time=600
//! ```
//!
//! The first directory receives new inputs (git-ignored); `fuzz/seeds/mqtt_decode` holds the
//! committed spec vectors and is only read.

// Tests may unwrap: a panic there is a failed test, not a crashed gateway.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use bytes::Bytes;

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod error;
mod frame;
mod framed;
mod primitives;
mod properties;
mod publish;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

#[cfg(test)]
mod rumqttc_v4;
#[cfg(test)]
mod rumqttc_v5;
#[cfg(test)]
mod testutil;

pub use error::{DecodeError, EncodeError};
pub use frame::{decode, encode, encoded_len};
pub use framed::MqttCodec;

/// MQTT protocol level negotiated in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1 (`MQIsdp`, level 3): handled with 3.1.1 semantics.
    V31,
    /// MQTT 3.1.1 (`MQTT`, level 4).
    #[default]
    V311,
    /// MQTT 5.0 (`MQTT`, level 5).
    V5,
}

impl ProtocolVersion {
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

/// Quality of service: the core's type, so deliveries need no conversion.
pub use roost_core::QoS;

/// A v5 user property: an ordered name/value pair; repeats are allowed.
pub type UserProperty = (String, String);

/// Reason codes (MQTT 5.0 §2.4) used by this crate. In 3.1.1 CONNACK carries a return code
/// instead; see [`connack_code_v3`].
pub mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const GRANTED_QOS_1: u8 = 0x01;
    pub const GRANTED_QOS_2: u8 = 0x02;
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    pub const SERVER_BUSY: u8 = 0x89;
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const PACKET_IDENTIFIER_IN_USE: u8 = 0x91;
    pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
    pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
    pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
    pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
    pub const USE_ANOTHER_SERVER: u8 = 0x9C;
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    pub const SERVER_MOVED: u8 = 0x9D;
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
    pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
    pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;
}

/// Maps a v5 CONNACK reason code to the closest 3.1.1 CONNACK return code (§3.2.2.3).
pub fn connack_code_v3(v5: u8) -> u8 {
    match v5 {
        reason::SUCCESS => 0,
        reason::UNSUPPORTED_PROTOCOL_VERSION => 1,
        reason::CLIENT_IDENTIFIER_NOT_VALID => 2,
        reason::SERVER_UNAVAILABLE | reason::SERVER_BUSY | reason::SERVER_SHUTTING_DOWN => 3,
        reason::BAD_USER_NAME_OR_PASSWORD => 4,
        reason::NOT_AUTHORIZED => 5,
        _ => 3,
    }
}

/// Will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastWill {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    pub delay_interval: Option<u32>,
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub properties: ConnectProperties,
    /// May be empty (the server then assigns one, or refuses, per version rules).
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<u8>,
    pub request_problem_information: Option<u8>,
    pub user_properties: Vec<UserProperty>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// v5 reason code; in 3.1.1 encoded through [`connack_code_v3`] and decoded back
    /// to the v5 code (0 -> 0x00, 1 -> 0x84, 2 -> 0x85, 3 -> 0x88, 4 -> 0x86, 5 -> 0x87).
    pub code: u8,
    pub properties: ConnAckProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifiers_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when a v5 topic alias stands in for the name.
    pub topic: String,
    /// 0 for QoS 0 (not on the wire); non-zero otherwise.
    pub packet_id: u16,
    pub properties: PublishProperties,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    /// Several may be present on a delivery that matched several subscriptions.
    pub subscription_identifiers: Vec<u32>,
    pub content_type: Option<String>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape (§3.4-§3.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    pub packet_id: u16,
    /// v5 reason code; always 0 in 3.1.1. Omitted on the wire when 0 with no properties.
    pub reason: u8,
    pub properties: AckProperties,
}

/// Properties of PUBACK/PUBREC/PUBREL/PUBCOMP/SUBACK/UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

/// Whether retained messages are sent when a subscription is made (MQTT 5 §3.8.3.1, the
/// Retain Handling option; 3.1.1 subscriptions are always [`RetainHandling::SendAtSubscribe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: at every subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: never.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The option's two bits; 3 is no value (a protocol error).
    pub fn from_u8(v: u8) -> Option<RetainHandling> {
        match v {
            0 => Some(RetainHandling::SendAtSubscribe),
            1 => Some(RetainHandling::SendIfNew),
            2 => Some(RetainHandling::DoNotSend),
            _ => None,
        }
    }

    /// The option's value on the wire (and in the core's subscription options).
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeFilter {
    pub filter: String,
    pub options: SubscriptionOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscribe {
    pub packet_id: u16,
    pub subscription_identifier: Option<u32>,
    pub user_properties: Vec<UserProperty>,
    pub filters: Vec<SubscribeFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: AckProperties,
    /// v5 reason codes; in 3.1.1 0x00-0x02 are granted QoS and any code >= 0x80 is sent as 0x80.
    pub reasons: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub user_properties: Vec<UserProperty>,
    pub filters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: AckProperties,
    /// v5 only; not on the wire in 3.1.1.
    pub reasons: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub properties: DisconnectProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub server_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason: u8,
    pub properties: AuthProperties,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}
