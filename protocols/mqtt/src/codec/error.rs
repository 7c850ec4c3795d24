//! Codec layer: decode and encode errors, and their MQTT 5.0 reason codes (§2.4, §4.13).
//!
//! The spec sorts bad input into two kinds: a *Malformed Packet* cannot be parsed by the
//! rules of its packet type (0x81), a *Protocol Error* parses but breaks a rule about its
//! contents (0x82). Where the spec names the kind for a rule we follow it; the constructors
//! of each rule live next to the code that checks it.

use std::borrow::Cow;

use super::reason;

/// Why bytes from a peer could not be decoded into a packet.
///
/// Every message starts with the packet type it was found in, e.g.
/// `SUBSCRIBE: no topic filters`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The packet (fixed header included) is larger than the configured maximum. Reported as
    /// soon as the Remaining Length is known, before the body is buffered.
    #[error("{packet}: packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { packet: &'static str, size: usize, max: usize },
    /// The bytes cannot be parsed by the rules of the packet type (reason 0x81).
    #[error("{packet}: {what}")]
    Malformed { packet: &'static str, what: Cow<'static, str> },
    /// The packet parses but breaks a rule of the protocol (reason 0x82).
    #[error("{packet}: {what}")]
    Protocol { packet: &'static str, what: Cow<'static, str> },
    /// A topic name (PUBLISH, Will Topic, Response Topic) contains `+` or `#` (reason 0x90).
    #[error("{packet}: topic name {topic:?} contains a wildcard")]
    WildcardInTopicName { packet: &'static str, topic: String },
    /// CONNECT names a protocol other than `MQTT` / `MQIsdp` (reason 0x84). Nothing in the
    /// packet says which CONNACK format the peer would understand.
    #[error("CONNECT: protocol name {0:?} is unknown")]
    UnknownProtocolName(String),
    /// CONNECT asks for a protocol level we do not speak (reason 0x84). The server answers
    /// CONNACK return code 0x01 (3.1.1 format) or reason 0x84 (v5 format) and closes.
    #[error("CONNECT: protocol level {0} is not supported")]
    UnsupportedProtocolVersion(u8),
    /// Reading from the transport failed (only produced through `tokio_util` framing).
    #[error("MQTT transport: {0}")]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// The MQTT 5.0 reason code to put in the CONNACK or DISCONNECT that reports this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::Malformed { .. } => reason::MALFORMED_PACKET,
            DecodeError::Protocol { .. } => reason::PROTOCOL_ERROR,
            DecodeError::WildcardInTopicName { .. } => reason::TOPIC_NAME_INVALID,
            DecodeError::UnknownProtocolName(_) | DecodeError::UnsupportedProtocolVersion(_) => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
            DecodeError::Io(_) => reason::UNSPECIFIED_ERROR,
        }
    }

    /// The packet type the error was found in (`"CONNECT"`, `"PUBLISH"`, ...); `None` for
    /// transport errors. Bytes that do not name a packet type report `"fixed header"`.
    pub fn packet(&self) -> Option<&'static str> {
        match self {
            DecodeError::PacketTooLarge { packet, .. }
            | DecodeError::Malformed { packet, .. }
            | DecodeError::Protocol { packet, .. }
            | DecodeError::WildcardInTopicName { packet, .. } => Some(packet),
            DecodeError::UnknownProtocolName(_) | DecodeError::UnsupportedProtocolVersion(_) => Some("CONNECT"),
            DecodeError::Io(_) => None,
        }
    }

    pub(crate) fn malformed(packet: &'static str, what: impl Into<Cow<'static, str>>) -> Self {
        DecodeError::Malformed { packet, what: what.into() }
    }

    pub(crate) fn protocol(packet: &'static str, what: impl Into<Cow<'static, str>>) -> Self {
        DecodeError::Protocol { packet, what: what.into() }
    }

    /// A rule the v5 spec calls a Protocol Error but 3.1.1 treats as malformed input.
    pub(crate) fn protocol_v5(packet: &'static str, v5: bool, what: impl Into<Cow<'static, str>>) -> Self {
        if v5 { Self::protocol(packet, what) } else { Self::malformed(packet, what) }
    }
}

/// Why a packet could not be encoded. The output buffer is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A field cannot be represented on the wire (string over 65,535 bytes, packet id 0, ...).
    #[error("{packet}: {what}")]
    Invalid { packet: &'static str, what: Cow<'static, str> },
    /// The Remaining Length would exceed 268,435,455 bytes, the most MQTT can express.
    #[error("{packet}: remaining length of {len} bytes exceeds the MQTT maximum of 268435455")]
    TooLarge { packet: &'static str, len: usize },
    /// Writing to the transport failed (only produced through `tokio_util` framing).
    #[error("MQTT transport: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_follow_the_error_kind() {
        let too_large = DecodeError::PacketTooLarge { packet: "PUBLISH", size: 10, max: 5 };
        assert_eq!(too_large.reason_code(), 0x95);
        assert_eq!(DecodeError::malformed("PUBLISH", "x").reason_code(), 0x81);
        assert_eq!(DecodeError::protocol("PUBLISH", "x").reason_code(), 0x82);
        assert_eq!(DecodeError::protocol_v5("PUBLISH", false, "x").reason_code(), 0x81);
        assert_eq!(DecodeError::protocol_v5("PUBLISH", true, "x").reason_code(), 0x82);
        assert_eq!(DecodeError::UnsupportedProtocolVersion(6).reason_code(), 0x84);
        assert_eq!(DecodeError::UnknownProtocolName("MQTX".into()).reason_code(), 0x84);
        let io = DecodeError::from(std::io::Error::other("reset"));
        assert_eq!(io.reason_code(), 0x80);
        assert_eq!(io.packet(), None);
    }

    #[test]
    fn messages_name_the_packet() {
        assert_eq!(DecodeError::protocol("SUBSCRIBE", "no topic filters").to_string(), "SUBSCRIBE: no topic filters");
        assert_eq!(
            DecodeError::UnknownProtocolName("MQTX".into()).to_string(),
            "CONNECT: protocol name \"MQTX\" is unknown"
        );
        assert_eq!(DecodeError::UnsupportedProtocolVersion(6).packet(), Some("CONNECT"));
    }
}
