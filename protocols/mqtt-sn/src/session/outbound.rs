//! Session layer: what the gateway sends on its own — deliveries from the core as PUBLISH
//! (§6.7, after a gateway REGISTER when the client has no id for the topic), PUBREL, the
//! retransmission of unanswered messages with Tretry / Nretry (§6.13), and the drain of a
//! woken sleeper's buffer ending in PINGRESP (§6.14).

use std::time::Instant;

use roost_core::metrics::DropReason;
use roost_core::{Delivery, QoS};

use super::{Counters, End, Kind, Outstanding, Session, State};
use crate::codec::{Flags, MAX_MESSAGE_LEN, Message, MsgId, Publish, SnQos, TopicId, TopicIdType};

fn sn_qos(q: QoS) -> SnQos {
    match q {
        QoS::AtMostOnce => SnQos::AtMostOnce,
        QoS::AtLeastOnce => SnQos::AtLeastOnce,
        QoS::ExactlyOnce => SnQos::ExactlyOnce,
    }
}

impl Session {
    /// Pulls and sends what the core has for the client while it may take it; a woken
    /// sleeper whose buffer is empty and acknowledged gets PINGRESP and sleeps again.
    /// Returns a [`Delivery::Close`] reason if the core closed the connection.
    pub fn pump(&mut self, now: Instant, out: &mut Vec<Message>) -> Option<roost_core::DisconnectReason> {
        while self.wants_deliveries() {
            let Some(conn) = self.conn_arc() else { break };
            match conn.try_next_delivery() {
                Some(Delivery::Close(reason)) => return Some(reason),
                Some(d) => self.handle_delivery(now, d, out),
                None => break,
            }
        }
        self.maybe_back_to_sleep(now, out);
        None
    }

    fn maybe_back_to_sleep(&mut self, now: Instant, out: &mut Vec<Message>) {
        if self.state == State::Awake && self.outstanding.is_empty() {
            // Nothing in flight; if the core has nothing either, the drain is over.
            let Some(conn) = self.conn_arc() else { return };
            match conn.try_next_delivery() {
                None => {
                    out.push(Message::PingResp);
                    self.state = State::Asleep;
                    self.sleep_deadline = Some(now + self.sleep_duration * 3 / 2);
                }
                Some(d) => {
                    self.handle_delivery(now, d, out);
                    if self.outstanding.is_empty() {
                        self.maybe_back_to_sleep(now, out);
                    }
                }
            }
        }
    }

    /// Sends one core delivery (the driver calls this with what `next_delivery` returned).
    pub fn handle_delivery(&mut self, now: Instant, d: Delivery, out: &mut Vec<Message>) {
        match d {
            Delivery::Publish { id, dup, pending } => {
                let Some(name) = self.ctx.topics.mountpoint.unmount(&pending.message.topic).map(str::to_string) else {
                    self.discard(Delivery::Publish { id, dup, pending });
                    return;
                };
                if pending.message.payload.len() + 7 > MAX_MESSAGE_LEN {
                    if let Some(conn) = &self.conn {
                        conn.drop_delivery(id, DropReason::TooLarge);
                    }
                    return;
                }
                let (topic_id_type, topic_id) = if let Some(pid) = self.ctx.topics.predefined.id(&name) {
                    (TopicIdType::Predefined, pid)
                } else if name.len() == 2 {
                    let b = name.as_bytes();
                    (TopicIdType::Short, TopicId(u16::from_be_bytes([b[0], b[1]])))
                } else if let Some(t) = self.topics.id(&name) {
                    (TopicIdType::Normal, t)
                } else {
                    // §6.7: REGISTER first; the delivery waits for REGACK.
                    match self.topics.register(&name) {
                        Ok(t) => {
                            let msg_id = self.next_msg_id();
                            let msg = Message::Register { topic_id: t, msg_id, topic_name: name };
                            out.push(msg.clone());
                            self.outstanding.push_back(Outstanding {
                                msg,
                                kind: Kind::Register {
                                    msg_id,
                                    topic_id: t,
                                    held: Some(Delivery::Publish { id, dup, pending }),
                                },
                                deadline: now + self.ctx.settings.retry_interval,
                                tries: 0,
                            });
                        }
                        Err(e) => {
                            tracing::debug!(client_id = ?self.client_id, "{e}: delivery dropped");
                            self.discard(Delivery::Publish { id, dup, pending });
                        }
                    }
                    return;
                };
                let flags =
                    Flags { dup, qos: sn_qos(pending.qos), retain: pending.retain, topic_id_type, ..Flags::default() };
                let msg = Message::Publish(Publish {
                    flags,
                    topic_id,
                    msg_id: MsgId(id),
                    data: pending.message.payload.clone(),
                });
                out.push(msg.clone());
                if pending.qos != QoS::AtMostOnce {
                    self.outstanding.push_back(Outstanding {
                        msg,
                        kind: Kind::Publish { id: MsgId(id) },
                        deadline: now + self.ctx.settings.retry_interval,
                        tries: 0,
                    });
                }
            }
            Delivery::Release { id } => {
                let msg = Message::PubRel { msg_id: MsgId(id) };
                out.push(msg.clone());
                self.outstanding.push_back(Outstanding {
                    msg,
                    kind: Kind::Release { id: MsgId(id) },
                    deadline: now + self.ctx.settings.retry_interval,
                    tries: 0,
                });
            }
            Delivery::Close(_) => {}
        }
    }

    /// A delivery that cannot reach the client (no topic id for it): counted, its in-flight
    /// slot released.
    pub(super) fn discard(&mut self, d: Delivery) {
        Counters::bump(&self.ctx.counters.topic_drops);
        if let (Delivery::Publish { id, .. }, Some(conn)) = (d, &self.conn)
            && id != 0
        {
            conn.ack(id);
        }
    }

    /// Tretry / Nretry: resends what is overdue; past Nretry the client is lost.
    pub(super) async fn retransmit(&mut self, now: Instant, out: &mut Vec<Message>) -> Result<(), End> {
        let retry = self.ctx.settings.retry_interval;
        let max = self.ctx.settings.max_retries;
        let mut lost = false;
        for o in self.outstanding.iter_mut().filter(|o| now >= o.deadline) {
            if o.tries >= max {
                lost = true;
                break;
            }
            o.tries += 1;
            o.deadline = now + retry;
            if let Message::Publish(p) = &mut o.msg {
                p.flags.dup = true;
            }
            Counters::bump(&self.ctx.counters.retransmits);
            out.push(o.msg.clone());
        }
        if lost {
            return Err(self.lost("no reply after Nretry retransmissions").await);
        }
        Ok(())
    }

    /// On waking or reconnecting: what was in flight goes out again at once.
    pub(super) fn resend_outstanding(&mut self, now: Instant, out: &mut Vec<Message>) {
        let retry = self.ctx.settings.retry_interval;
        for o in &mut self.outstanding {
            if let Message::Publish(p) = &mut o.msg {
                p.flags.dup = true;
            }
            o.deadline = now + retry;
            out.push(o.msg.clone());
        }
    }

    /// subs_resume: REGISTER the names of the resumed subscriptions (those without
    /// wildcards, not predefined, not short) so the client's table is rebuilt.
    pub(super) fn reregister_subscriptions(&mut self, now: Instant, out: &mut Vec<Message>) {
        let names: Vec<String> = self
            .subscriptions
            .iter()
            .filter_map(|f| self.ctx.topics.mountpoint.unmount(f).map(str::to_string))
            .filter(|n| !n.contains(['+', '#']) && n.len() != 2 && self.ctx.topics.predefined.id(n).is_none())
            .collect();
        for name in names {
            let Ok(t) = self.topics.register(&name) else {
                break;
            };
            let msg_id = self.next_msg_id();
            let msg = Message::Register { topic_id: t, msg_id, topic_name: name };
            out.push(msg.clone());
            self.outstanding.push_back(Outstanding {
                msg,
                kind: Kind::Register { msg_id, topic_id: t, held: None },
                deadline: now + self.ctx.settings.retry_interval,
                tries: 0,
            });
        }
    }
}
