//! Observe (RFC 7641), server side: one observer per (token, filter), notifications with a
//! rising sequence number, and §4.5 flow control: at most one confirmable notification in
//! flight per observer, a bounded queue behind it that keeps the newest messages and counts
//! what it drops, and an observer whose notification is reset or times out is removed (its
//! subscription with it).

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use coap_lite::{CoapOption, ResponseType};
use roost_core::{Pending, QoS};

use super::{Context, Counters, Session, reply};
use crate::block;
use crate::codec::{self, Block};
use crate::message::Tag;
use crate::resource;
use crate::settings::NotifyType;

pub(crate) struct Observer {
    pub token: Vec<u8>,
    pub tag: Tag,
    /// The core filter (mountpoint included).
    pub filter: String,
    /// The path the device observes (`ps/...`), for Block2 follow-ups.
    pub path: String,
    queue: VecDeque<Pending>,
    pub dropped: u64,
    /// When the observer was last sent a CON (or registered): RFC 7641 §4.5 wants one at
    /// least every 24 hours, so a vanished device is found out even with NON notifications.
    last_con: Instant,
}

const CON_AT_LEAST_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Default)]
pub struct Observers {
    list: Vec<Observer>,
    next_tag: Tag,
    /// The Observe sequence number (24 bits, §3.4), shared by the session's observers so a
    /// re-registration always sees a larger one.
    seq: u32,
}

impl Observers {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = (self.seq + 1) & 0x00FF_FFFF;
        self.seq
    }

    /// Adds an observer; one on the same filter or token is replaced (returned).
    pub(crate) fn add(&mut self, now: Instant, token: Vec<u8>, filter: String, path: String) -> (Tag, Vec<Observer>) {
        let (old, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.list).into_iter().partition(|o| o.filter == filter || o.token == token);
        self.list = keep;
        self.next_tag += 1;
        let tag = self.next_tag;
        self.list.push(Observer { token, tag, filter, path, queue: VecDeque::new(), dropped: 0, last_con: now });
        (tag, old)
    }

    pub(crate) fn remove_tag(&mut self, tag: Tag) -> Option<Observer> {
        let i = self.list.iter().position(|o| o.tag == tag)?;
        Some(self.list.swap_remove(i))
    }

    pub(crate) fn remove_token(&mut self, token: &[u8], filter: &str) -> Option<Observer> {
        let i = self.list.iter().position(|o| o.token == token || o.filter == filter)?;
        Some(self.list.swap_remove(i))
    }

    /// The observations, for the session's registry view.
    pub(crate) fn views(&self) -> Vec<super::ObservationView> {
        self.list.iter().map(|o| super::ObservationView { path: o.path.clone(), filter: o.filter.clone() }).collect()
    }

    pub(crate) fn has_filter(&self, filter: &str) -> bool {
        self.list.iter().any(|o| o.filter == filter)
    }

    /// Queues a delivery for every observer whose filter matches its topic.
    pub(crate) fn enqueue(&mut self, ctx: &Context, pending: Pending) {
        let limit = ctx.settings.notify_queue.max(1);
        for o in &mut self.list {
            if !roost_core::topic::matches(&o.filter, &pending.message.topic) {
                continue;
            }
            if o.queue.len() >= limit {
                o.queue.pop_front();
                o.dropped += 1;
                Counters::bump(&ctx.counters.notify_dropped);
            }
            o.queue.push_back(pending.clone());
        }
    }
}

impl Session {
    /// Sends what the observers' queues hold, as flow control allows.
    pub(crate) fn pump(&mut self, now: Instant) {
        for i in 0..self.observers.list.len() {
            loop {
                let o = &self.observers.list[i];
                let Some(front) = o.queue.front() else { break };
                let confirmable = match self.ctx.settings.notify_type {
                    NotifyType::Non => false,
                    NotifyType::Con => true,
                    NotifyType::Qos => front.qos != QoS::AtMostOnce,
                } || now.saturating_duration_since(o.last_con) >= CON_AT_LEAST_EVERY;
                if confirmable && self.layer.is_pending(o.tag) {
                    break;
                }
                let tag = o.tag;
                let Some(pending) = self.observers.list[i].queue.pop_front() else { break };
                let seq = self.observers.next_seq();
                let packet = self.notification(i, seq, &pending);
                if confirmable {
                    self.observers.list[i].last_con = now;
                    self.layer.send_confirmable(now, tag, self.peer, packet);
                } else {
                    self.layer.send_non(tag, self.peer, packet);
                }
            }
        }
    }

    /// A 2.05 notification of `pending` for observer `i`; a body larger than the block size
    /// goes as its first block (RFC 7959 §3.4), the rest on the device's request.
    fn notification(&mut self, i: usize, seq: u32, pending: &Pending) -> coap_lite::Packet {
        let o = &self.observers.list[i];
        let mut p = reply(ResponseType::Content);
        p.set_token(o.token.clone());
        p.add_option(CoapOption::Observe, codec::encode_uint(seq));
        let format = pending.message.properties.content_type.as_deref().and_then(resource::format_of);
        if let Some(f) = format {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(f));
        }
        let body = &pending.message.payload;
        let szx = Block::szx_for(self.ctx.settings.block_size);
        if body.len() > (Block { num: 0, more: false, szx }).size() {
            if let Some((first, b)) = block::slice(body, 0, szx) {
                p.payload = first.to_vec();
                p.add_option(CoapOption::Block2, codec::encode_uint(b.encode()));
                p.add_option(CoapOption::Size2, codec::encode_uint(u32::try_from(body.len()).unwrap_or(u32::MAX)));
            }
            self.block2 = Some((o.path.clone(), Bytes::clone(body), format));
        } else {
            p.payload = body.to_vec();
        }
        p
    }

    /// Removes the observer tagged `tag` and, when no other observer shares its filter,
    /// the core subscription.
    pub(crate) async fn drop_observer(&mut self, now: Instant, tag: Tag) {
        let Some(o) = self.observers.remove_tag(tag) else { return };
        self.forget(now, o).await;
    }

    pub(crate) async fn forget(&mut self, now: Instant, o: Observer) {
        self.layer.cancel(now, o.tag);
        self.ctx.counters.observers.fetch_sub(1, Relaxed);
        if o.dropped > 0 {
            tracing::debug!(client_id = %self.client_id, filter = %o.filter, dropped = o.dropped, "CoAP observer removed after dropping notifications");
        }
        if !self.observers.has_filter(&o.filter)
            && let Some(conn) = &self.conn
            && let Err(e) = conn.unsubscribe(&o.filter).await
        {
            tracing::debug!(client_id = %self.client_id, "CoAP unsubscribe: {e}");
        }
    }

    /// Ends every observation with a 5.03 notification (RFC 7641 §3.2: a non-2.xx
    /// notification ends it at the client) when the core closed the session.
    pub(crate) fn end_observations(&mut self, now: Instant) {
        for o in std::mem::take(&mut self.observers.list) {
            self.layer.cancel(now, o.tag);
            let mut p = super::diag(ResponseType::ServiceUnavailable, "session closed");
            p.set_token(o.token);
            self.layer.send_non(o.tag, self.peer, p);
            self.ctx.counters.observers.fetch_sub(1, Relaxed);
        }
    }

    /// Forgets every observer (the core connection was replaced, its subscriptions gone).
    pub(crate) async fn observers_reset(&mut self, now: Instant) {
        let all = std::mem::take(&mut self.observers.list);
        for o in all {
            self.layer.cancel(now, o.tag);
            self.ctx.counters.observers.fetch_sub(1, Relaxed);
        }
    }
}
