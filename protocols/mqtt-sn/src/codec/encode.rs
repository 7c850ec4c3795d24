//! Codec layer: encoding MQTT-SN 1.2 message bodies (§5.4).

use bytes::{BufMut, BytesMut};

use super::message::{Message, TopicRef, WillTopic};

fn put_will_topic(out: &mut BytesMut, w: &Option<WillTopic>) {
    if let Some(w) = w {
        out.put_u8(w.flags.encode());
        out.put_slice(w.topic.as_bytes());
    }
}

fn put_topic_ref(out: &mut BytesMut, t: &TopicRef) {
    match t {
        TopicRef::Name(n) => out.put_slice(n.as_bytes()),
        TopicRef::Predefined(id) => out.put_u16(id.0),
        TopicRef::Short(s) => out.put_slice(s),
    }
}

/// Writes the body of `msg`; returns its type byte.
pub(super) fn encode_body(msg: &Message, out: &mut BytesMut) -> u8 {
    match msg {
        Message::Advertise { gw_id, duration } => {
            out.put_u8(*gw_id);
            out.put_u16(*duration);
        }
        Message::SearchGw { radius } => out.put_u8(*radius),
        Message::GwInfo { gw_id, gw_addr } => {
            out.put_u8(*gw_id);
            out.put_slice(gw_addr);
        }
        Message::Connect(c) => {
            out.put_u8(c.flags.encode());
            out.put_u8(0x01);
            out.put_u16(c.duration);
            out.put_slice(c.client_id.as_bytes());
        }
        Message::ConnAck { rc } | Message::WillTopicResp { rc } | Message::WillMsgResp { rc } => out.put_u8(rc.to_u8()),
        Message::WillTopicReq | Message::WillMsgReq | Message::PingResp => {}
        Message::WillTopic(w) | Message::WillTopicUpd(w) => put_will_topic(out, w),
        Message::WillMsg(m) | Message::WillMsgUpd(m) => out.put_slice(m),
        Message::Register { topic_id, msg_id, topic_name } => {
            out.put_u16(topic_id.0);
            out.put_u16(msg_id.0);
            out.put_slice(topic_name.as_bytes());
        }
        Message::RegAck { topic_id, msg_id, rc } | Message::PubAck { topic_id, msg_id, rc } => {
            out.put_u16(topic_id.0);
            out.put_u16(msg_id.0);
            out.put_u8(rc.to_u8());
        }
        Message::Publish(p) => {
            out.put_u8(p.flags.encode());
            out.put_u16(p.topic_id.0);
            out.put_u16(p.msg_id.0);
            out.put_slice(&p.data);
        }
        Message::PubComp { msg_id }
        | Message::PubRec { msg_id }
        | Message::PubRel { msg_id }
        | Message::UnsubAck { msg_id } => out.put_u16(msg_id.0),
        Message::Subscribe { flags, msg_id, topic } | Message::Unsubscribe { flags, msg_id, topic } => {
            out.put_u8(flags.encode());
            out.put_u16(msg_id.0);
            put_topic_ref(out, topic);
        }
        Message::SubAck { flags, topic_id, msg_id, rc } => {
            out.put_u8(flags.encode());
            out.put_u16(topic_id.0);
            out.put_u16(msg_id.0);
            out.put_u8(rc.to_u8());
        }
        Message::PingReq { client_id } => {
            if let Some(id) = client_id {
                out.put_slice(id.as_bytes());
            }
        }
        Message::Disconnect { duration } => {
            if let Some(d) = duration {
                out.put_u16(*d);
            }
        }
    }
    msg.msg_type() as u8
}
