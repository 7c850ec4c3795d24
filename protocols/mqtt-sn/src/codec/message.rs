//! Codec layer: the MQTT-SN 1.2 message types and their bodies (§5.4.1-§5.4.22).

use bytes::{BufMut, Bytes, BytesMut};

use super::{DecodeError, Flags};

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

/// PUBLISH (§5.4.12). `topic_id` is read as `flags.topic_id_type` says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Publish {
    pub flags: Flags,
    pub topic_id: u16,
    pub msg_id: u16,
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
    Predefined(u16),
    Short([u8; 2]),
}

/// One MQTT-SN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Advertise {
        gw_id: u8,
        duration: u16,
    },
    SearchGw {
        radius: u8,
    },
    GwInfo {
        gw_id: u8,
        gw_addr: Bytes,
    },
    Connect(Connect),
    ConnAck {
        rc: ReturnCode,
    },
    WillTopicReq,
    WillTopic(Option<WillTopic>),
    WillMsgReq,
    WillMsg(Bytes),
    Register {
        topic_id: u16,
        msg_id: u16,
        topic_name: String,
    },
    RegAck {
        topic_id: u16,
        msg_id: u16,
        rc: ReturnCode,
    },
    Publish(Publish),
    PubAck {
        topic_id: u16,
        msg_id: u16,
        rc: ReturnCode,
    },
    PubComp {
        msg_id: u16,
    },
    PubRec {
        msg_id: u16,
    },
    PubRel {
        msg_id: u16,
    },
    Subscribe {
        flags: Flags,
        msg_id: u16,
        topic: TopicRef,
    },
    SubAck {
        flags: Flags,
        topic_id: u16,
        msg_id: u16,
        rc: ReturnCode,
    },
    Unsubscribe {
        flags: Flags,
        msg_id: u16,
        topic: TopicRef,
    },
    UnsubAck {
        msg_id: u16,
    },
    PingReq {
        client_id: Option<String>,
    },
    PingResp,
    Disconnect {
        duration: Option<u16>,
    },
    WillTopicUpd(Option<WillTopic>),
    WillTopicResp {
        rc: ReturnCode,
    },
    WillMsgUpd(Bytes),
    WillMsgResp {
        rc: ReturnCode,
    },
}

impl Message {
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

/// Reads a body front to back; every read checks what is left.
struct Reader {
    msg: &'static str,
    body: Bytes,
    pos: usize,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.body.len() - self.pos < n {
            return Err(DecodeError::Truncated {
                msg: self.msg,
                len: self.body.len(),
                need: self.pos + n,
            });
        }
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        self.pos += 1;
        Ok(self.body[self.pos - 1])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        self.pos += 2;
        Ok(u16::from_be_bytes([
            self.body[self.pos - 2],
            self.body[self.pos - 1],
        ]))
    }
    fn flags(&mut self) -> Result<Flags, DecodeError> {
        let b = self.u8()?;
        Flags::decode(b, self.msg)
    }
    fn rc(&mut self) -> Result<ReturnCode, DecodeError> {
        self.u8().map(ReturnCode::from_u8)
    }
    fn rest(&mut self) -> Bytes {
        let b = self.body.slice(self.pos..);
        self.pos = self.body.len();
        b
    }
    fn rest_text(&mut self) -> Result<String, DecodeError> {
        let b = self.rest();
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::NotUtf8(self.msg))
    }
    fn is_empty(&self) -> bool {
        self.pos == self.body.len()
    }
    fn end(self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.msg))
        }
    }
}

fn type_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        0x00 => "ADVERTISE",
        0x01 => "SEARCHGW",
        0x02 => "GWINFO",
        0x04 => "CONNECT",
        0x05 => "CONNACK",
        0x06 => "WILLTOPICREQ",
        0x07 => "WILLTOPIC",
        0x08 => "WILLMSGREQ",
        0x09 => "WILLMSG",
        0x0A => "REGISTER",
        0x0B => "REGACK",
        0x0C => "PUBLISH",
        0x0D => "PUBACK",
        0x0E => "PUBCOMP",
        0x0F => "PUBREC",
        0x10 => "PUBREL",
        0x12 => "SUBSCRIBE",
        0x13 => "SUBACK",
        0x14 => "UNSUBSCRIBE",
        0x15 => "UNSUBACK",
        0x16 => "PINGREQ",
        0x17 => "PINGRESP",
        0x18 => "DISCONNECT",
        0x1A => "WILLTOPICUPD",
        0x1B => "WILLTOPICRESP",
        0x1C => "WILLMSGUPD",
        0x1D => "WILLMSGRESP",
        _ => return None,
    })
}

fn will_topic(r: &mut Reader) -> Result<Option<WillTopic>, DecodeError> {
    if r.is_empty() {
        return Ok(None);
    }
    let flags = r.flags()?;
    let topic = r.rest_text()?;
    if topic.is_empty() {
        return Err(DecodeError::Empty(r.msg, "will topic"));
    }
    Ok(Some(WillTopic { flags, topic }))
}

fn topic_ref(r: &mut Reader, flags: Flags) -> Result<TopicRef, DecodeError> {
    use super::TopicIdType::*;
    Ok(match flags.topic_id_type {
        Normal => {
            let name = r.rest_text()?;
            if name.is_empty() {
                return Err(DecodeError::Empty(r.msg, "topic name"));
            }
            TopicRef::Name(name)
        }
        Predefined => TopicRef::Predefined(r.u16()?),
        Short => {
            let id = r.u16()?.to_be_bytes();
            TopicRef::Short(id)
        }
    })
}

/// Decodes the body of a message of type `ty` (everything after the type byte).
pub(super) fn decode_body(ty: u8, body: Bytes) -> Result<Message, DecodeError> {
    let msg = type_name(ty).ok_or(DecodeError::UnknownType(ty))?;
    let mut r = Reader { msg, body, pos: 0 };
    let m = match ty {
        0x00 => Message::Advertise {
            gw_id: r.u8()?,
            duration: r.u16()?,
        },
        0x01 => Message::SearchGw { radius: r.u8()? },
        0x02 => Message::GwInfo {
            gw_id: r.u8()?,
            gw_addr: r.rest(),
        },
        0x04 => {
            let flags = r.flags()?;
            let protocol = r.u8()?;
            if protocol != 0x01 {
                return Err(DecodeError::ProtocolId(protocol));
            }
            let duration = r.u16()?;
            let client_id = r.rest_text()?;
            Message::Connect(Connect {
                flags,
                duration,
                client_id,
            })
        }
        0x05 => Message::ConnAck { rc: r.rc()? },
        0x06 => Message::WillTopicReq,
        0x07 => Message::WillTopic(will_topic(&mut r)?),
        0x08 => Message::WillMsgReq,
        0x09 => Message::WillMsg(r.rest()),
        0x0A => {
            let topic_id = r.u16()?;
            let msg_id = r.u16()?;
            let topic_name = r.rest_text()?;
            if topic_name.is_empty() {
                return Err(DecodeError::Empty(msg, "topic name"));
            }
            Message::Register {
                topic_id,
                msg_id,
                topic_name,
            }
        }
        0x0B => Message::RegAck {
            topic_id: r.u16()?,
            msg_id: r.u16()?,
            rc: r.rc()?,
        },
        0x0C => {
            let flags = r.flags()?;
            let topic_id = r.u16()?;
            let msg_id = r.u16()?;
            Message::Publish(Publish {
                flags,
                topic_id,
                msg_id,
                data: r.rest(),
            })
        }
        0x0D => Message::PubAck {
            topic_id: r.u16()?,
            msg_id: r.u16()?,
            rc: r.rc()?,
        },
        0x0E => Message::PubComp { msg_id: r.u16()? },
        0x0F => Message::PubRec { msg_id: r.u16()? },
        0x10 => Message::PubRel { msg_id: r.u16()? },
        0x12 | 0x14 => {
            let flags = r.flags()?;
            let msg_id = r.u16()?;
            let topic = topic_ref(&mut r, flags)?;
            if ty == 0x12 {
                Message::Subscribe {
                    flags,
                    msg_id,
                    topic,
                }
            } else {
                Message::Unsubscribe {
                    flags,
                    msg_id,
                    topic,
                }
            }
        }
        0x13 => Message::SubAck {
            flags: r.flags()?,
            topic_id: r.u16()?,
            msg_id: r.u16()?,
            rc: r.rc()?,
        },
        0x15 => Message::UnsubAck { msg_id: r.u16()? },
        0x16 => {
            let id = r.rest_text()?;
            Message::PingReq {
                client_id: (!id.is_empty()).then_some(id),
            }
        }
        0x17 => Message::PingResp,
        0x18 => Message::Disconnect {
            duration: if r.is_empty() { None } else { Some(r.u16()?) },
        },
        0x1A => Message::WillTopicUpd(will_topic(&mut r)?),
        0x1B => Message::WillTopicResp { rc: r.rc()? },
        0x1C => Message::WillMsgUpd(r.rest()),
        0x1D => Message::WillMsgResp { rc: r.rc()? },
        _ => return Err(DecodeError::UnknownType(ty)),
    };
    r.end()?;
    Ok(m)
}

fn put_will_topic(out: &mut BytesMut, w: &Option<WillTopic>) {
    if let Some(w) = w {
        out.put_u8(w.flags.encode());
        out.put_slice(w.topic.as_bytes());
    }
}

fn put_topic_ref(out: &mut BytesMut, t: &TopicRef) {
    match t {
        TopicRef::Name(n) => out.put_slice(n.as_bytes()),
        TopicRef::Predefined(id) => out.put_u16(*id),
        TopicRef::Short(s) => out.put_slice(s),
    }
}

/// Writes the body of `msg`; returns its type byte.
pub(super) fn encode_body(msg: &Message, out: &mut BytesMut) -> u8 {
    let ty = match msg {
        Message::Advertise { gw_id, duration } => {
            out.put_u8(*gw_id);
            out.put_u16(*duration);
            MsgType::Advertise
        }
        Message::SearchGw { radius } => {
            out.put_u8(*radius);
            MsgType::SearchGw
        }
        Message::GwInfo { gw_id, gw_addr } => {
            out.put_u8(*gw_id);
            out.put_slice(gw_addr);
            MsgType::GwInfo
        }
        Message::Connect(c) => {
            out.put_u8(c.flags.encode());
            out.put_u8(0x01);
            out.put_u16(c.duration);
            out.put_slice(c.client_id.as_bytes());
            MsgType::Connect
        }
        Message::ConnAck { rc } => {
            out.put_u8(rc.to_u8());
            MsgType::ConnAck
        }
        Message::WillTopicReq => MsgType::WillTopicReq,
        Message::WillTopic(w) => {
            put_will_topic(out, w);
            MsgType::WillTopic
        }
        Message::WillMsgReq => MsgType::WillMsgReq,
        Message::WillMsg(m) => {
            out.put_slice(m);
            MsgType::WillMsg
        }
        Message::Register {
            topic_id,
            msg_id,
            topic_name,
        } => {
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_slice(topic_name.as_bytes());
            MsgType::Register
        }
        Message::RegAck {
            topic_id,
            msg_id,
            rc,
        } => {
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_u8(rc.to_u8());
            MsgType::RegAck
        }
        Message::Publish(p) => {
            out.put_u8(p.flags.encode());
            out.put_u16(p.topic_id);
            out.put_u16(p.msg_id);
            out.put_slice(&p.data);
            MsgType::Publish
        }
        Message::PubAck {
            topic_id,
            msg_id,
            rc,
        } => {
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_u8(rc.to_u8());
            MsgType::PubAck
        }
        Message::PubComp { msg_id } => {
            out.put_u16(*msg_id);
            MsgType::PubComp
        }
        Message::PubRec { msg_id } => {
            out.put_u16(*msg_id);
            MsgType::PubRec
        }
        Message::PubRel { msg_id } => {
            out.put_u16(*msg_id);
            MsgType::PubRel
        }
        Message::Subscribe {
            flags,
            msg_id,
            topic,
        }
        | Message::Unsubscribe {
            flags,
            msg_id,
            topic,
        } => {
            out.put_u8(flags.encode());
            out.put_u16(*msg_id);
            put_topic_ref(out, topic);
            if matches!(msg, Message::Subscribe { .. }) {
                MsgType::Subscribe
            } else {
                MsgType::Unsubscribe
            }
        }
        Message::SubAck {
            flags,
            topic_id,
            msg_id,
            rc,
        } => {
            out.put_u8(flags.encode());
            out.put_u16(*topic_id);
            out.put_u16(*msg_id);
            out.put_u8(rc.to_u8());
            MsgType::SubAck
        }
        Message::UnsubAck { msg_id } => {
            out.put_u16(*msg_id);
            MsgType::UnsubAck
        }
        Message::PingReq { client_id } => {
            if let Some(id) = client_id {
                out.put_slice(id.as_bytes());
            }
            MsgType::PingReq
        }
        Message::PingResp => MsgType::PingResp,
        Message::Disconnect { duration } => {
            if let Some(d) = duration {
                out.put_u16(*d);
            }
            MsgType::Disconnect
        }
        Message::WillTopicUpd(w) => {
            put_will_topic(out, w);
            MsgType::WillTopicUpd
        }
        Message::WillTopicResp { rc } => {
            out.put_u8(rc.to_u8());
            MsgType::WillTopicResp
        }
        Message::WillMsgUpd(m) => {
            out.put_slice(m);
            MsgType::WillMsgUpd
        }
        Message::WillMsgResp { rc } => {
            out.put_u8(rc.to_u8());
            MsgType::WillMsgResp
        }
    };
    ty as u8
}
