//! Codec layer: decoding MQTT-SN 1.2 message bodies (§5.4), every read bounds-checked.

use bytes::Bytes;

use super::message::{Connect, Message, MsgId, Publish, ReturnCode, TopicId, TopicRef, WillTopic};
use super::{DecodeError, Flags};

/// Reads a body front to back; every read checks what is left.
struct Reader {
    msg: &'static str,
    body: Bytes,
    pos: usize,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.body.len() - self.pos < n {
            return Err(DecodeError::Truncated { msg: self.msg, len: self.body.len(), need: self.pos + n });
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
        Ok(u16::from_be_bytes([self.body[self.pos - 2], self.body[self.pos - 1]]))
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
        if self.is_empty() { Ok(()) } else { Err(DecodeError::TrailingBytes(self.msg)) }
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
        Predefined => TopicRef::Predefined(TopicId(r.u16()?)),
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
        0x00 => Message::Advertise { gw_id: r.u8()?, duration: r.u16()? },
        0x01 => Message::SearchGw { radius: r.u8()? },
        0x02 => Message::GwInfo { gw_id: r.u8()?, gw_addr: r.rest() },
        0x04 => {
            let flags = r.flags()?;
            let protocol = r.u8()?;
            if protocol != 0x01 {
                return Err(DecodeError::ProtocolId(protocol));
            }
            let duration = r.u16()?;
            let client_id = r.rest_text()?;
            Message::Connect(Connect { flags, duration, client_id })
        }
        0x05 => Message::ConnAck { rc: r.rc()? },
        0x06 => Message::WillTopicReq,
        0x07 => Message::WillTopic(will_topic(&mut r)?),
        0x08 => Message::WillMsgReq,
        0x09 => Message::WillMsg(r.rest()),
        0x0A => {
            let topic_id = TopicId(r.u16()?);
            let msg_id = MsgId(r.u16()?);
            let topic_name = r.rest_text()?;
            if topic_name.is_empty() {
                return Err(DecodeError::Empty(msg, "topic name"));
            }
            Message::Register { topic_id, msg_id, topic_name }
        }
        0x0B => Message::RegAck { topic_id: TopicId(r.u16()?), msg_id: MsgId(r.u16()?), rc: r.rc()? },
        0x0C => {
            let flags = r.flags()?;
            let topic_id = TopicId(r.u16()?);
            let msg_id = MsgId(r.u16()?);
            Message::Publish(Publish { flags, topic_id, msg_id, data: r.rest() })
        }
        0x0D => Message::PubAck { topic_id: TopicId(r.u16()?), msg_id: MsgId(r.u16()?), rc: r.rc()? },
        0x0E => Message::PubComp { msg_id: MsgId(r.u16()?) },
        0x0F => Message::PubRec { msg_id: MsgId(r.u16()?) },
        0x10 => Message::PubRel { msg_id: MsgId(r.u16()?) },
        0x12 | 0x14 => {
            let flags = r.flags()?;
            let msg_id = MsgId(r.u16()?);
            let topic = topic_ref(&mut r, flags)?;
            if ty == 0x12 {
                Message::Subscribe { flags, msg_id, topic }
            } else {
                Message::Unsubscribe { flags, msg_id, topic }
            }
        }
        0x13 => {
            Message::SubAck { flags: r.flags()?, topic_id: TopicId(r.u16()?), msg_id: MsgId(r.u16()?), rc: r.rc()? }
        }
        0x15 => Message::UnsubAck { msg_id: MsgId(r.u16()?) },
        0x16 => {
            let id = r.rest_text()?;
            Message::PingReq { client_id: (!id.is_empty()).then_some(id) }
        }
        0x17 => Message::PingResp,
        0x18 => Message::Disconnect { duration: if r.is_empty() { None } else { Some(r.u16()?) } },
        0x1A => Message::WillTopicUpd(will_topic(&mut r)?),
        0x1B => Message::WillTopicResp { rc: r.rc()? },
        0x1C => Message::WillMsgUpd(r.rest()),
        0x1D => Message::WillMsgResp { rc: r.rc()? },
        _ => return Err(DecodeError::UnknownType(ty)),
    };
    r.end()?;
    Ok(m)
}
