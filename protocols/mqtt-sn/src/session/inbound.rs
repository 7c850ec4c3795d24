//! Session layer: messages from a connected client — REGISTER (§6.5), PUBLISH at QoS -1 to 2
//! (§6.6, §6.8), SUBSCRIBE / UNSUBSCRIBE (§6.9), will updates (§6.4) — and the client's
//! replies to the gateway's own REGISTER, PUBLISH and PUBREL.

use std::sync::Arc;
use std::time::Instant;

use roost_core::{PublishError, QoS, SubOptions, SubscribeError, Will};

use super::{Counters, End, Kind, Session};
use crate::codec::{Flags, Message, MsgId, Publish, ReturnCode, SnQos, TopicId, TopicIdType, TopicRef};
use crate::topics::short_name;

fn core_qos(q: SnQos) -> QoS {
    match q {
        SnQos::AtLeastOnce => QoS::AtLeastOnce,
        SnQos::ExactlyOnce => QoS::ExactlyOnce,
        SnQos::AtMostOnce | SnQos::MinusOne => QoS::AtMostOnce,
    }
}

fn publish_rc(e: &PublishError) -> ReturnCode {
    match e {
        // Not durable yet: "congestion" tells the client to retry later.
        PublishError::QuotaExceeded(_) | PublishError::Store(_) => ReturnCode::Congestion,
        PublishError::InvalidTopic(_) | PublishError::NotAuthorized => ReturnCode::NotSupported,
    }
}

fn subscribe_rc(e: &SubscribeError) -> ReturnCode {
    match e {
        SubscribeError::QuotaExceeded(_) => ReturnCode::Congestion,
        _ => ReturnCode::NotSupported,
    }
}

impl Session {
    pub(super) async fn handle_connected(
        &mut self,
        now: Instant,
        msg: Message,
        out: &mut Vec<Message>,
    ) -> Result<(), End> {
        match msg {
            Message::Register { msg_id, topic_name, .. } => {
                let rc_id = self.register_from_client(&topic_name);
                let (topic_id, rc) = match rc_id {
                    Ok(id) => (id, ReturnCode::Accepted),
                    Err(rc) => (TopicId(0), rc),
                };
                out.push(Message::RegAck { topic_id, msg_id, rc });
            }
            Message::Publish(p) => self.handle_publish(p, out).await,
            Message::PubRel { msg_id } => {
                if let Some(conn) = &self.conn {
                    conn.release(msg_id.0);
                }
                out.push(Message::PubComp { msg_id });
            }
            Message::RegAck { msg_id, rc, .. } => self.handle_regack(now, msg_id, rc, out),
            Message::PubAck { topic_id, msg_id, rc } => self.handle_puback(topic_id, msg_id, rc),
            Message::PubRec { msg_id } => self.handle_pubrec(now, msg_id, out),
            Message::PubComp { msg_id } => self.finish(msg_id),
            Message::Subscribe { flags, msg_id, topic } => self.handle_subscribe(flags, msg_id, topic, out).await,
            Message::Unsubscribe { msg_id, topic, .. } => {
                if let Some(filter) = self.filter_of(&topic) {
                    self.subscriptions.remove(&filter);
                    if let Some(conn) = &self.conn {
                        let _ = conn.unsubscribe(&filter).await;
                    }
                }
                out.push(Message::UnsubAck { msg_id });
            }
            Message::WillTopicUpd(w) => {
                let rc = self.update_will_topic(w);
                out.push(Message::WillTopicResp { rc });
            }
            Message::WillMsgUpd(payload) => {
                let rc = match self.conn.as_ref().and_then(|c| c.will().map(|w| (c, w))) {
                    Some((conn, mut w)) => {
                        w.message.payload = payload;
                        conn.set_will(Some(w));
                        ReturnCode::Accepted
                    }
                    None => ReturnCode::NotSupported,
                };
                out.push(Message::WillMsgResp { rc });
            }
            other => {
                Counters::bump(&self.ctx.counters.unexpected);
                tracing::debug!(client_id = ?self.client_id, msg = other.name(), "unexpected MQTT-SN message dropped");
            }
        }
        Ok(())
    }

    fn register_from_client(&mut self, name: &str) -> Result<TopicId, ReturnCode> {
        let mounted = self.ctx.topics.mountpoint.mount(name);
        if roost_core::topic::validate_name(&mounted, self.ctx.broker.settings()).is_err() {
            return Err(ReturnCode::NotSupported);
        }
        self.topics.register(name).map_err(|_| ReturnCode::Congestion)
    }

    /// The client-side topic name a PUBLISH refers to.
    fn topic_of(&self, flags: Flags, topic_id: TopicId) -> Option<String> {
        match flags.topic_id_type {
            TopicIdType::Normal => self.topics.name(topic_id).map(|n| n.to_string()),
            TopicIdType::Predefined => self.ctx.topics.predefined.name(topic_id).map(|n| n.to_string()),
            TopicIdType::Short => short_name(topic_id.0.to_be_bytes()),
        }
    }

    async fn handle_publish(&mut self, p: Publish, out: &mut Vec<Message>) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let reject = |rc| Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc };
        let Some(name) = self.topic_of(p.flags, p.topic_id) else {
            tracing::debug!(client_id = ?self.client_id, topic_id = p.topic_id.0, "MQTT-SN PUBLISH: unknown topic id");
            out.push(reject(ReturnCode::InvalidTopicId));
            return;
        };
        let topic = self.ctx.topics.mountpoint.mount(&name);
        let qos = core_qos(p.flags.qos);
        let msg = roost_core::Message::new(topic, p.data.clone(), qos, p.flags.retain);
        match p.flags.qos {
            SnQos::AtMostOnce | SnQos::MinusOne => {
                if let Err(e) = conn.publish(msg).await {
                    out.push(reject(publish_rc(&e)));
                }
            }
            SnQos::AtLeastOnce => {
                if p.flags.dup && self.recent_qos1.contains(&p.msg_id) {
                    out.push(Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc: ReturnCode::Accepted });
                    return;
                }
                let rc = match conn.publish(msg).await {
                    Ok(_) => {
                        if self.recent_qos1.len() >= super::RECENT_IDS {
                            self.recent_qos1.pop_front();
                        }
                        self.recent_qos1.push_back(p.msg_id);
                        ReturnCode::Accepted
                    }
                    Err(e) => publish_rc(&e),
                };
                out.push(Message::PubAck { topic_id: p.topic_id, msg_id: p.msg_id, rc });
            }
            SnQos::ExactlyOnce => match conn.begin_exactly_once(p.msg_id.0) {
                Ok(true) => match conn.publish(msg).await {
                    Ok(_) => out.push(Message::PubRec { msg_id: p.msg_id }),
                    Err(e) => {
                        conn.abort_exactly_once(p.msg_id.0);
                        out.push(reject(publish_rc(&e)));
                    }
                },
                // A duplicate: already routed, acknowledge again.
                Ok(false) => out.push(Message::PubRec { msg_id: p.msg_id }),
                Err(e) => out.push(reject(publish_rc(&e))),
            },
        }
    }

    fn handle_regack(&mut self, now: Instant, msg_id: MsgId, rc: ReturnCode, out: &mut Vec<Message>) {
        let Some(i) =
            self.outstanding.iter().position(|o| matches!(o.kind, Kind::Register { msg_id: m, .. } if m == msg_id))
        else {
            return;
        };
        let Some(o) = self.outstanding.remove(i) else {
            return;
        };
        let Kind::Register { topic_id, held, .. } = o.kind else {
            return;
        };
        if rc != ReturnCode::Accepted {
            tracing::debug!(client_id = ?self.client_id, topic_id = topic_id.0, ?rc, "client refused a gateway REGISTER");
            self.topics.remove(topic_id);
            if let Some(d) = held {
                self.discard(d);
            }
            return;
        }
        if let Some(d) = held {
            self.handle_delivery(now, d, out);
        }
    }

    fn handle_puback(&mut self, topic_id: TopicId, msg_id: MsgId, rc: ReturnCode) {
        if rc == ReturnCode::InvalidTopicId {
            // The client lost this registration: forget it so the next delivery registers
            // the name again. This message is dropped (§6.7).
            self.topics.remove(topic_id);
            Counters::bump(&self.ctx.counters.topic_drops);
        }
        self.finish(msg_id);
    }

    fn handle_pubrec(&mut self, now: Instant, msg_id: MsgId, out: &mut Vec<Message>) {
        let known = self.conn.as_ref().is_some_and(|c| c.received(msg_id.0));
        if let Some(o) = self
            .outstanding
            .iter_mut()
            .find(|o| matches!(o.kind, Kind::Publish { id } | Kind::Release { id } if id == msg_id))
        {
            o.kind = Kind::Release { id: msg_id };
            o.msg = Message::PubRel { msg_id };
            o.deadline = now + self.ctx.settings.retry_interval;
            o.tries = 0;
        } else if !known {
            return;
        }
        out.push(Message::PubRel { msg_id });
    }

    /// PUBACK / PUBCOMP: our QoS 1/2 delivery is done.
    pub(super) fn finish(&mut self, msg_id: MsgId) {
        self.outstanding.retain(|o| !matches!(o.kind, Kind::Publish { id } | Kind::Release { id } if id == msg_id));
        if let Some(conn) = &self.conn {
            conn.ack(msg_id.0);
        }
    }

    /// The broker filter for a SUBSCRIBE / UNSUBSCRIBE topic.
    fn filter_of(&self, topic: &TopicRef) -> Option<String> {
        let name = match topic {
            TopicRef::Name(n) => n.clone(),
            TopicRef::Predefined(id) => self.ctx.topics.predefined.name(*id)?.to_string(),
            TopicRef::Short(s) => short_name(*s)?,
        };
        Some(self.ctx.topics.mountpoint.mount(&name))
    }

    async fn handle_subscribe(&mut self, flags: Flags, msg_id: MsgId, topic: TopicRef, out: &mut Vec<Message>) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let granted = Flags { qos: flags.qos, ..Flags::default() };
        let suback = |topic_id, rc| Message::SubAck { flags: granted, topic_id, msg_id, rc };
        if flags.qos == SnQos::MinusOne {
            out.push(suback(TopicId(0), ReturnCode::NotSupported));
            return;
        }
        let Some(filter) = self.filter_of(&topic) else {
            out.push(suback(TopicId(0), ReturnCode::InvalidTopicId));
            return;
        };
        let options = SubOptions { qos: core_qos(flags.qos), ..Default::default() };
        match conn.subscribe(&filter, options).await {
            Ok(_) => {
                self.subscriptions.insert(filter);
                let topic_id = match &topic {
                    TopicRef::Predefined(id) => *id,
                    TopicRef::Short(_) => TopicId(0),
                    // §6.9: a name without wildcards gets its topic id in SUBACK.
                    TopicRef::Name(n) if !n.contains(['+', '#']) => self.topics.register(n).unwrap_or_default(),
                    TopicRef::Name(_) => TopicId(0),
                };
                out.push(suback(topic_id, ReturnCode::Accepted));
            }
            Err(e) => out.push(suback(TopicId(0), subscribe_rc(&e))),
        }
    }

    fn update_will_topic(&mut self, w: Option<crate::codec::WillTopic>) -> ReturnCode {
        let Some(conn) = &self.conn else {
            return ReturnCode::NotSupported;
        };
        match w {
            None => conn.set_will(None),
            Some(w) if !self.will_topic_ok(&w.topic) => return ReturnCode::NotSupported,
            Some(w) => {
                let payload = conn.will().map(|old| old.message.payload).unwrap_or_default();
                let Will { message, delay } = self.will(&w, payload);
                conn.set_will(Some(Will { message, delay }));
            }
        }
        ReturnCode::Accepted
    }

    pub(super) fn conn_arc(&self) -> Option<Arc<roost_core::Connection>> {
        self.conn.clone()
    }
}
