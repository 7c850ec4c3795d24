//! `/ps/{topic}` (EMQX): POST/PUT publish (query `qos`, `retain`, `expiry`; Block1 for
//! large bodies), GET with Observe 0 subscribes (query `qos`, `nl`, `rh`), Observe 1
//! cancels, a plain GET reads the retained message (Block2 for large ones).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, Packet, RequestType, ResponseType};
use roost_core::{Message, PublishError, QoS, SubOptions, SubscribeError};

use super::{Session, diag, reply};
use crate::block::{self, Block1Outcome};
use crate::codec::{self, Block};
use crate::resource::{self, Query};

impl Session {
    pub(super) async fn ps(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        method: RequestType,
        topic: &str,
        q: &Query,
        req: &Packet,
    ) -> Packet {
        match method {
            RequestType::Post | RequestType::Put => self.publish(now, peer, method, topic, q, req).await,
            RequestType::Get => match codec::uint_option(req, CoapOption::Observe) {
                Some(Ok(0)) => self.observe(now, topic, q, req).await,
                Some(Ok(1)) => self.cancel(now, topic, req).await,
                Some(_) => diag(ResponseType::BadRequest, "Observe must be 0 or 1"),
                None => self.read(now, topic, req),
            },
            _ => reply(ResponseType::MethodNotAllowed),
        }
    }

    async fn publish(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        method: RequestType,
        topic: &str,
        q: &Query,
        req: &Packet,
    ) -> Packet {
        let max = self.ctx.settings.max_body_size;
        if let Some(Ok(size1)) = codec::uint_option(req, CoapOption::Size1)
            && size1 as usize > max
        {
            return too_large(max);
        }
        let (body, block1) = match Block::of(req, CoapOption::Block1) {
            None => (req.payload.clone(), None),
            Some(Err(_)) => return diag(ResponseType::BadOption, "Block1 value invalid"),
            Some(Ok(b)) => {
                let key = format!("{peer} {method:?} {topic} {:?}", codec::uri_query(req));
                match self.assemblies.feed(now, &key, b, &req.payload, max) {
                    Block1Outcome::Continue(b) => {
                        let mut p = reply(ResponseType::Continue);
                        p.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
                        return p;
                    }
                    Block1Outcome::Complete(body, b) => (body, Some(b)),
                    Block1Outcome::Incomplete => {
                        return diag(ResponseType::RequestEntityIncomplete, "Block1 block out of order");
                    }
                    Block1Outcome::TooLarge => return too_large(max),
                }
            }
        };
        if body.len() > max {
            return too_large(max);
        }
        let qos = match q.qos.as_deref() {
            None => self.ctx.settings.publish_qos,
            Some(v) => match v.parse::<u8>().ok().and_then(QoS::from_u8) {
                Some(q) => q,
                None => return diag(ResponseType::BadRequest, "qos must be 0, 1 or 2"),
            },
        };
        let retain = match resource::flag(&q.retain) {
            Ok(r) => r,
            Err(e) => return diag(ResponseType::BadRequest, &format!("retain: {e}")),
        };
        let expiry = match q.expiry.as_deref().map(str::parse::<u32>) {
            None => None,
            Some(Ok(s)) => Some(Duration::from_secs(u64::from(s))),
            Some(Err(_)) => return diag(ResponseType::BadRequest, "expiry must be seconds"),
        };
        if topic.contains(['+', '#']) {
            return diag(ResponseType::BadRequest, "a publish topic has no wildcards");
        }
        let mut msg = Message::new(self.ctx.mount(topic), body, qos, retain);
        msg.expiry = expiry;
        if let Some(Ok(f)) = codec::uint_option(req, CoapOption::ContentFormat) {
            msg.properties.content_type = Some(resource::content_type_of(f));
        }
        let Some(conn) = &self.conn else {
            return diag(ResponseType::Unauthorized, "not connected");
        };
        let mut p = match conn.publish(msg).await {
            Ok(_) => reply(ResponseType::Changed),
            Err(PublishError::NotAuthorized) => diag(ResponseType::Forbidden, "publish denied by ACL"),
            Err(e @ PublishError::InvalidTopic(_)) => diag(ResponseType::BadRequest, &e.to_string()),
            Err(e @ PublishError::QuotaExceeded(_)) => diag(ResponseType::ServiceUnavailable, &e.to_string()),
            Err(e @ PublishError::Store(_)) => diag(ResponseType::InternalServerError, &e.to_string()),
        };
        if let Some(b) = block1 {
            p.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
        }
        p
    }

    async fn observe(&mut self, now: Instant, topic: &str, q: &Query, req: &Packet) -> Packet {
        if req.get_token().is_empty() {
            return diag(ResponseType::BadRequest, "an observe needs a token");
        }
        let qos = match q.qos.as_deref() {
            None => self.ctx.settings.subscribe_qos,
            Some(v) => match v.parse::<u8>().ok().and_then(QoS::from_u8) {
                Some(q) => q,
                None => return diag(ResponseType::BadRequest, "qos must be 0, 1 or 2"),
            },
        };
        let (nl, rh) = match (resource::flag(&q.nl), q.rh.as_deref().map(str::parse::<u8>)) {
            (Ok(nl), None) => (nl, 0),
            (Ok(nl), Some(Ok(rh))) if rh <= 2 => (nl, rh),
            _ => return diag(ResponseType::BadRequest, "nl must be 0/1 and rh 0..2"),
        };
        let filter = self.ctx.mount(topic);
        let replaces = self.observers.has_filter(&filter);
        if !replaces && self.observers.len() >= self.ctx.settings.max_observations_per_session {
            return diag(ResponseType::ServiceUnavailable, "too many observations for this device");
        }
        let Some(conn) = &self.conn else {
            return diag(ResponseType::Unauthorized, "not connected");
        };
        // QoS 2 is carried as 1: the CoAP side has one acknowledgement, and our message
        // layer already removes duplicates.
        let options = SubOptions {
            qos: qos.min(QoS::AtLeastOnce),
            no_local: nl,
            retain_as_published: false,
            retain_handling: rh,
            subscription_id: None,
        };
        // Register the observer first: the retained message comes as a delivery right after.
        let (_, replaced) = self.observers.add(now, req.get_token().to_vec(), filter.clone(), format!("ps/{topic}"));
        self.ctx.counters.observers.fetch_add(1, Relaxed);
        for o in replaced {
            self.layer.cancel(now, o.tag);
            self.ctx.counters.observers.fetch_sub(1, Relaxed);
        }
        let conn = conn.clone();
        match conn.subscribe(&filter, options).await {
            Ok(_) => {
                let mut p = reply(ResponseType::Content);
                let seq = self.observers.next_seq();
                p.add_option(CoapOption::Observe, codec::encode_uint(seq));
                p
            }
            Err(e) => {
                if let Some(o) = self.observers.remove_token(req.get_token(), &filter) {
                    self.layer.cancel(now, o.tag);
                    self.ctx.counters.observers.fetch_sub(1, Relaxed);
                }
                match e {
                    SubscribeError::NotAuthorized => diag(ResponseType::Forbidden, "subscribe denied by ACL"),
                    SubscribeError::QuotaExceeded(_) => diag(ResponseType::ServiceUnavailable, &e.to_string()),
                    _ => diag(ResponseType::BadRequest, &e.to_string()),
                }
            }
        }
    }

    async fn cancel(&mut self, now: Instant, topic: &str, req: &Packet) -> Packet {
        let filter = self.ctx.mount(topic);
        if let Some(o) = self.observers.remove_token(req.get_token(), &filter) {
            self.forget(now, o).await;
        }
        reply(ResponseType::Content)
    }

    /// Plain GET: the retained message, or a further block of the last large body.
    fn read(&mut self, _now: Instant, topic: &str, req: &Packet) -> Packet {
        let block2 = match Block::of(req, CoapOption::Block2) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return diag(ResponseType::BadOption, "Block2 value invalid"),
        };
        let path = format!("ps/{topic}");
        let our_szx = Block::szx_for(self.ctx.settings.block_size);
        let szx = block2.map_or(our_szx, |b| b.szx.min(our_szx));
        let num = block2.map_or(0, |b| b.num);
        let (body, format) = match &self.block2 {
            Some((p, body, format)) if num > 0 && *p == path => (body.clone(), *format),
            _ => {
                if topic.contains(['+', '#']) {
                    return diag(ResponseType::BadRequest, "read a topic name, observe a filter");
                }
                let Some(conn) = &self.conn else {
                    return diag(ResponseType::Unauthorized, "not connected");
                };
                match conn.retained(&self.ctx.mount(topic)) {
                    Ok(Some(m)) => {
                        let format = m.properties.content_type.as_deref().and_then(resource::format_of);
                        (m.payload.clone(), format)
                    }
                    Ok(None) => return reply(ResponseType::NotFound),
                    Err(SubscribeError::NotAuthorized) => return diag(ResponseType::Forbidden, "read denied by ACL"),
                    Err(e) => return diag(ResponseType::BadRequest, &e.to_string()),
                }
            }
        };
        let mut p = reply(ResponseType::Content);
        if let Some(f) = format {
            p.add_option(CoapOption::ContentFormat, codec::encode_uint(f));
        }
        let size = 1usize << (szx + 4);
        if body.len() <= size && block2.is_none() {
            p.payload = body.to_vec();
            return p;
        }
        let Some((slice, b)) = block::slice(&body, num, szx) else {
            return diag(ResponseType::BadOption, "Block2 past the end of the body");
        };
        p.payload = slice.to_vec();
        p.add_option(CoapOption::Block2, codec::encode_uint(b.encode()));
        if num == 0 {
            p.add_option(CoapOption::Size2, codec::encode_uint(u32::try_from(body.len()).unwrap_or(u32::MAX)));
        }
        if b.more || num > 0 {
            self.block2 = Some((path, body, format));
        }
        p
    }
}

fn too_large(max: usize) -> Packet {
    let mut p = diag(ResponseType::RequestEntityTooLarge, "body larger than coap.max_body_size");
    p.add_option(CoapOption::Size1, codec::encode_uint(u32::try_from(max).unwrap_or(u32::MAX)));
    p
}
