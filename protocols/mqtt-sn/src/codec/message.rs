//! Codec layer: the MQTT-SN 1.2 message types (§5.3, §5.4); bodies are read in `decode`
//! and written in `encode`.

use bytes::Bytes;

use super::Flags;

/// Message type bytes (§5.3.2, table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    Advertise = 0x00,
    SearchGw = 0x01,
    GwInfo = 0x02,
    Connect = 0x04,
    ConnAck = 0x05,
    WillTopicReq = 0x06,
    WillTopic = 0x07,
    WillMsgReq = 0x08,
    WillMsg = 0x09,
    Register = 0x0A,
    RegAck = 0x0B,
    Publish = 0x0C,
    PubAck = 0x0D,
    PubComp = 0x0E,
    PubRec = 0x0F,
    PubRel = 0x10,
    Subscribe = 0x12,
    SubAck = 0x13,
    Unsubscribe = 0x14,
    UnsubAck = 0x15,
    PingReq = 0x16,
    PingResp = 0x17,
    Disconnect = 0x18,
    WillTopicUpd = 0x1A,
    WillTopicResp = 0x1B,
    WillMsgUpd = 0x1C,
    WillMsgResp = 0x1D,
}

/// ReturnCode (§5.3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnCode {
    Accepted,
    Congestion,
    InvalidTopicId,
    NotSupported,
    /// 0x04-0xFF are reserved; kept as read.
    Reserved(u8),
}

impl ReturnCode {
    pub fn to_u8(self) -> u8 {
        match self {
            ReturnCode::Accepted => 0,
            ReturnCode::Congestion => 1,
            ReturnCode::InvalidTopicId => 2,
            ReturnCode::NotSupported => 3,
            ReturnCode::Reserved(b) => b,
        }
    }
    pub fn from_u8(b: u8) -> Self {
        match b {
            0 => ReturnCode::Accepted,
            1 => ReturnCode::Congestion,
            2 => ReturnCode::InvalidTopicId,
            3 => ReturnCode::NotSupported,
            b => ReturnCode::Reserved(b),
        }
    }
}

/// CONNECT (§5.4.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connect {
    pub flags: Flags,
    /// Keep alive, seconds.
    pub duration: u16,
    pub client_id: String,
}

/// A topic id (MQTT-SN 1.2 §5.3.11): one registered for a client (normal type), a predefined
/// one, or a short topic name's two bytes, as the message's TopicIdType flag says. A
/// registered or predefined id is never 0x0000 or 0xFFFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub u16);

/// A message id (MQTT-SN 1.2 §5.3.12): pairs an acknowledgement with the message it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MsgId(pub u16);

/// PUBLISH (§5.4.12). `topic_id` is read as `flags.topic_id_type` says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Publish {
    pub flags: Flags,
    pub topic_id: TopicId,
    pub msg_id: MsgId,
    pub data: Bytes,
}

/// WILLTOPIC / WILLTOPICUPD body (§5.4.7, §5.4.21); absent when the message is empty
/// (which deletes the will).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WillTopic {
    pub flags: Flags,
    pub topic: String,
}

/// The topic of SUBSCRIBE / UNSUBSCRIBE (§5.4.15): a name (filter), a predefined id or a
/// short name, as the TopicIdType flag says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicRef {
    Name(String),
    Predefined(TopicId),
    Short([u8; 2]),
}

/// One MQTT-SN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Advertise { gw_id: u8, duration: u16 },
    SearchGw { radius: u8 },
    GwInfo { gw_id: u8, gw_addr: Bytes },
    Connect(Connect),
    ConnAck { rc: ReturnCode },
    WillTopicReq,
    WillTopic(Option<WillTopic>),
    WillMsgReq,
    WillMsg(Bytes),
    Register { topic_id: TopicId, msg_id: MsgId, topic_name: String },
    RegAck { topic_id: TopicId, msg_id: MsgId, rc: ReturnCode },
    Publish(Publish),
    PubAck { topic_id: TopicId, msg_id: MsgId, rc: ReturnCode },
    PubComp { msg_id: MsgId },
    PubRec { msg_id: MsgId },
    PubRel { msg_id: MsgId },
    Subscribe { flags: Flags, msg_id: MsgId, topic: TopicRef },
    SubAck { flags: Flags, topic_id: TopicId, msg_id: MsgId, rc: ReturnCode },
    Unsubscribe { flags: Flags, msg_id: MsgId, topic: TopicRef },
    UnsubAck { msg_id: MsgId },
    PingReq { client_id: Option<String> },
    PingResp,
    Disconnect { duration: Option<u16> },
    WillTopicUpd(Option<WillTopic>),
    WillTopicResp { rc: ReturnCode },
    WillMsgUpd(Bytes),
    WillMsgResp { rc: ReturnCode },
}

impl Message {
    /// The type byte this message is sent with (§5.2.2).
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Advertise { .. } => MsgType::Advertise,
            Message::SearchGw { .. } => MsgType::SearchGw,
            Message::GwInfo { .. } => MsgType::GwInfo,
            Message::Connect(_) => MsgType::Connect,
            Message::ConnAck { .. } => MsgType::ConnAck,
            Message::WillTopicReq => MsgType::WillTopicReq,
            Message::WillTopic(_) => MsgType::WillTopic,
            Message::WillMsgReq => MsgType::WillMsgReq,
            Message::WillMsg(_) => MsgType::WillMsg,
            Message::Register { .. } => MsgType::Register,
            Message::RegAck { .. } => MsgType::RegAck,
            Message::Publish(_) => MsgType::Publish,
            Message::PubAck { .. } => MsgType::PubAck,
            Message::PubComp { .. } => MsgType::PubComp,
            Message::PubRec { .. } => MsgType::PubRec,
            Message::PubRel { .. } => MsgType::PubRel,
            Message::Subscribe { .. } => MsgType::Subscribe,
            Message::SubAck { .. } => MsgType::SubAck,
            Message::Unsubscribe { .. } => MsgType::Unsubscribe,
            Message::UnsubAck { .. } => MsgType::UnsubAck,
            Message::PingReq { .. } => MsgType::PingReq,
            Message::PingResp => MsgType::PingResp,
            Message::Disconnect { .. } => MsgType::Disconnect,
            Message::WillTopicUpd(_) => MsgType::WillTopicUpd,
            Message::WillTopicResp { .. } => MsgType::WillTopicResp,
            Message::WillMsgUpd(_) => MsgType::WillMsgUpd,
            Message::WillMsgResp { .. } => MsgType::WillMsgResp,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Message::Advertise { .. } => "ADVERTISE",
            Message::SearchGw { .. } => "SEARCHGW",
            Message::GwInfo { .. } => "GWINFO",
            Message::Connect(_) => "CONNECT",
            Message::ConnAck { .. } => "CONNACK",
            Message::WillTopicReq => "WILLTOPICREQ",
            Message::WillTopic(_) => "WILLTOPIC",
            Message::WillMsgReq => "WILLMSGREQ",
            Message::WillMsg(_) => "WILLMSG",
            Message::Register { .. } => "REGISTER",
            Message::RegAck { .. } => "REGACK",
            Message::Publish(_) => "PUBLISH",
            Message::PubAck { .. } => "PUBACK",
            Message::PubComp { .. } => "PUBCOMP",
            Message::PubRec { .. } => "PUBREC",
            Message::PubRel { .. } => "PUBREL",
            Message::Subscribe { .. } => "SUBSCRIBE",
            Message::SubAck { .. } => "SUBACK",
            Message::Unsubscribe { .. } => "UNSUBSCRIBE",
            Message::UnsubAck { .. } => "UNSUBACK",
            Message::PingReq { .. } => "PINGREQ",
            Message::PingResp => "PINGRESP",
            Message::Disconnect { .. } => "DISCONNECT",
            Message::WillTopicUpd(_) => "WILLTOPICUPD",
            Message::WillTopicResp { .. } => "WILLTOPICRESP",
            Message::WillMsgUpd(_) => "WILLMSGUPD",
            Message::WillMsgResp { .. } => "WILLMSGRESP",
        }
    }
}
