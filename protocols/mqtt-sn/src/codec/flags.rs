//! Codec layer: the MQTT-SN 1.2 Flags field (§5.3.4) and its QoS / topic id type parts.

use super::DecodeError;

/// QoS as MQTT-SN carries it: the three MQTT levels plus -1 (publish without connection,
/// §6.8), which is only legal on PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnQos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
    /// QoS -1 (the bits `0b11`).
    MinusOne,
}

impl SnQos {
    fn bits(self) -> u8 {
        match self {
            SnQos::AtMostOnce => 0b00,
            SnQos::AtLeastOnce => 0b01,
            SnQos::ExactlyOnce => 0b10,
            SnQos::MinusOne => 0b11,
        }
    }
    fn from_bits(b: u8) -> SnQos {
        match b & 0b11 {
            0b00 => SnQos::AtMostOnce,
            0b01 => SnQos::AtLeastOnce,
            0b10 => SnQos::ExactlyOnce,
            _ => SnQos::MinusOne,
        }
    }
}

/// How the topic of a PUBLISH, SUBSCRIBE or UNSUBSCRIBE is given (§5.3.4 TopicIdType).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicIdType {
    /// A topic id registered with REGISTER (or, in SUBSCRIBE, a topic name).
    Normal,
    /// A topic id both sides know from configuration.
    Predefined,
    /// A two-character topic name carried in the topic id field.
    Short,
}

/// The Flags byte: DUP, QoS, Retain, Will, CleanSession, TopicIdType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flags {
    pub dup: bool,
    pub qos: SnQos,
    pub retain: bool,
    pub will: bool,
    pub clean_session: bool,
    pub topic_id_type: TopicIdType,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            dup: false,
            qos: SnQos::AtMostOnce,
            retain: false,
            will: false,
            clean_session: false,
            topic_id_type: TopicIdType::Normal,
        }
    }
}

impl Flags {
    pub fn encode(self) -> u8 {
        let tid = match self.topic_id_type {
            TopicIdType::Normal => 0b00,
            TopicIdType::Predefined => 0b01,
            TopicIdType::Short => 0b10,
        };
        (u8::from(self.dup) << 7)
            | (self.qos.bits() << 5)
            | (u8::from(self.retain) << 4)
            | (u8::from(self.will) << 3)
            | (u8::from(self.clean_session) << 2)
            | tid
    }

    pub fn decode(b: u8, what: &'static str) -> Result<Flags, DecodeError> {
        let topic_id_type = match b & 0b11 {
            0b00 => TopicIdType::Normal,
            0b01 => TopicIdType::Predefined,
            0b10 => TopicIdType::Short,
            _ => return Err(DecodeError::ReservedTopicIdType(what)),
        };
        Ok(Flags {
            dup: b & 0x80 != 0,
            qos: SnQos::from_bits(b >> 5),
            retain: b & 0x10 != 0,
            will: b & 0x08 != 0,
            clean_session: b & 0x04 != 0,
            topic_id_type,
        })
    }
}
