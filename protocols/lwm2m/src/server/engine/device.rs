//! One registered device: the requests we send it (token per request, retransmission by
//! the message layer, a deadline for a separate response, large bodies in blocks), its
//! observations ([`observe`]) and the commands held while it sleeps (queue mode) or while
//! a block-wise upload is in flight.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::block::Assemblies;
use roost_coap::codec;
use roost_coap::message::{MessageLayer, Received, Tag};
use roost_coap::settings::Transmission;
use serde_json::json;

use super::blockwise::{self, MAX_BODY, Upload};
use super::{Counters, RegInfo, ReplyTo, Sink};
use observe::{MAX_OBSERVATIONS, Observation};

mod blocks;
mod observe;
use crate::server::mqtt::{self, Command, CommandKind};
use crate::server::settings::{AutoObserve, Lwm2mSettings};
use crate::types::{Kind, Path};

/// A request sent, waiting for its response.
struct Exchange {
    token: Vec<u8>,
    cmd: Command,
    reply: ReplyTo,
    /// Set once an empty ACK came: the separate response must come by then.
    deadline: Option<Instant>,
    /// A response in Block2 blocks, so far (RFC 7959 §2.4).
    body: Vec<u8>,
    /// The request body going out in Block1 blocks (RFC 7959 §2.5).
    upload: Option<Upload>,
    /// The first block of a Block2 response: its options (Observe, Content-Format) are the
    /// whole response's; later blocks answer plain GETs.
    first: Option<Box<Packet>>,
    /// The token the request went out with, when Block2 requests moved on to new ones: an
    /// observation lives under it.
    first_token: Option<Vec<u8>>,
    /// Fetching the rest of a notification (RFC 7959 §3.4): its sequence number; the result
    /// is published as that notification.
    notify_seq: Option<u32>,
}

impl Exchange {
    /// One that never went out (answered at once, or failed while waiting).
    fn unsent(cmd: Command, reply: ReplyTo) -> Exchange {
        Exchange::new(Vec::new(), cmd, reply, None)
    }

    fn new(token: Vec<u8>, cmd: Command, reply: ReplyTo, upload: Option<Upload>) -> Exchange {
        Exchange {
            token,
            cmd,
            reply,
            deadline: None,
            body: Vec::new(),
            upload,
            first: None,
            first_token: None,
            notify_seq: None,
        }
    }
}

pub struct Device {
    pub id: String,
    pub info: RegInfo,
    pub peer: SocketAddr,
    pub last_update: Instant,
    /// Last datagram from the device (queue mode: it listens for a window after).
    pub last_heard: Instant,
    pub(super) layer: MessageLayer,
    exchanges: HashMap<Tag, Exchange>,
    observations: Vec<Observation>,
    pub(super) queue: VecDeque<(Command, ReplyTo)>,
    /// A Send report coming in Block1 blocks.
    pub(super) send_blocks: Assemblies,
    /// Commands behind a block-wise upload in flight: they go out, in order, when it ends,
    /// so its blocks are not interleaved with other requests.
    held: VecDeque<(Command, ReplyTo)>,
    /// Tokens of exchanges just completed: a repeated CON response is ACKed, not reset.
    done_tokens: VecDeque<Vec<u8>>,
    next_tag: Tag,
    separate_timeout: Duration,
    /// The block size the device asked for with a 4.13 (RFC 7959 §2.9.3), if smaller than
    /// the configured one: its later requests go in blocks of it.
    block_limit: Option<usize>,
}

impl Device {
    /// Paths the server observes on the device.
    pub fn observed(&self) -> usize {
        self.observations.len()
    }
}

impl Device {
    pub(super) fn new(id: String, info: RegInfo, peer: SocketAddr, now: Instant, tx: Transmission, seed: u64) -> Self {
        Device {
            id,
            info,
            peer,
            last_update: now,
            last_heard: now,
            layer: MessageLayer::new(tx, seed, 64),
            exchanges: HashMap::new(),
            observations: Vec::new(),
            queue: VecDeque::new(),
            held: VecDeque::new(),
            send_blocks: Assemblies::default(),
            done_tokens: VecDeque::new(),
            next_tag: seed.rotate_left(32) | 1,
            separate_timeout: tx.max_transmit_span() * 2,
            block_limit: None,
        }
    }

    pub fn expires_at(&self) -> Instant {
        self.last_update + self.info.lifetime
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn observations(&self) -> usize {
        self.observations.len()
    }

    fn awake(&self, now: Instant, s: &Lwm2mSettings) -> bool {
        !self.info.queue || now < self.last_heard + s.qmode_time_window
    }

    pub(super) fn poll_timeout(&self, _s: &Lwm2mSettings) -> Option<Instant> {
        let mut t = self.expires_at();
        if let Some(r) = self.layer.poll_timeout() {
            t = t.min(r);
        }
        for e in self.exchanges.values() {
            if let Some(d) = e.deadline {
                t = t.min(d);
            }
        }
        Some(t)
    }

    pub(super) fn handle_timeout(&mut self, now: Instant, s: &Lwm2mSettings, c: &Counters, out: &mut Sink) {
        for lost in self.layer.handle_timeout(now) {
            if let Some(e) = self.exchanges.remove(&lost.0) {
                Counters::bump(&c.timeouts);
                fail(out, e, "coap_timeout");
            }
        }
        let late: Vec<Tag> =
            self.exchanges.iter().filter(|(_, e)| e.deadline.is_some_and(|d| d <= now)).map(|(t, _)| *t).collect();
        for t in late {
            if let Some(e) = self.exchanges.remove(&t) {
                Counters::bump(&c.timeouts);
                fail(out, e, "coap_timeout");
            }
        }
        if self.awake(now, s) {
            self.release(now, s);
        } else {
            // Asleep now: what was held waits, first in line, for the device to wake.
            while let Some(h) = self.held.pop_back() {
                self.queue.push_front(h);
            }
        }
    }

    fn uploading(&self) -> bool {
        self.exchanges.values().any(|e| e.upload.is_some())
    }

    /// Sends what was held behind an upload, until another upload starts.
    fn release(&mut self, now: Instant, s: &Lwm2mSettings) {
        while !self.uploading()
            && let Some((cmd, reply)) = self.held.pop_front()
        {
            self.transmit(now, cmd, reply, s);
        }
    }

    /// The device was heard from: a queue-mode device gets what waited for it.
    pub(super) fn heard(&mut self, now: Instant, s: &Lwm2mSettings, c: &Counters, out: &mut Sink) {
        self.last_heard = now;
        self.release(now, s);
        while let Some((cmd, reply)) = self.queue.pop_front() {
            self.send(now, cmd, reply, s, c, out);
        }
    }

    /// Answers everything waiting (the registration ends); `queued` too when it is gone
    /// for good.
    pub(super) fn fail_all(&mut self, out: &mut Sink, queued: bool) {
        let mut tags: Vec<Tag> = self.exchanges.keys().copied().collect();
        tags.sort_unstable();
        for t in tags {
            if let Some(e) = self.exchanges.remove(&t) {
                fail(out, e, "coap_timeout");
            }
        }
        for (cmd, reply) in self.held.drain(..) {
            fail(out, Exchange::unsent(cmd, reply), "coap_timeout");
        }
        if queued {
            for (cmd, reply) in self.queue.drain(..) {
                fail(out, Exchange::unsent(cmd, reply), "coap_timeout");
            }
        }
        self.observations.clear();
    }

    pub(super) fn auto_observe(&mut self, now: Instant, s: &Lwm2mSettings, out: &mut Sink) {
        let paths: Vec<String> = match &s.auto_observe {
            AutoObserve::Off => return,
            AutoObserve::All => self.info.objects.clone(),
            AutoObserve::List(l) => l
                .iter()
                .filter(|p| {
                    let obj = p.trim_start_matches('/').split('/').next().unwrap_or_default();
                    self.info.objects.iter().any(|o| o.trim_start_matches('/').split('/').next() == Some(obj))
                })
                .cloned()
                .collect(),
        };
        let counters = Counters::default();
        for p in paths {
            let body = json!({"msgType": "observe", "data": {"path": p}}).to_string();
            if let Ok(cmd) = mqtt::parse_command(body.as_bytes(), &self.info.root) {
                self.submit(now, cmd, None, s, &counters, out);
            }
        }
    }

    pub(super) fn handle_command(
        &mut self,
        now: Instant,
        payload: &[u8],
        reply: ReplyTo,
        s: &Lwm2mSettings,
        c: &Counters,
        out: &mut Sink,
    ) {
        match mqtt::parse_command(payload, &self.info.root) {
            Ok(cmd) => self.submit(now, cmd, reply, s, c, out),
            Err(bad) => {
                Counters::bump(&c.bad_commands);
                out.publish.push((s.translators.response.clone(), bad.to_json(), reply));
            }
        }
    }

    fn submit(&mut self, now: Instant, cmd: Command, reply: ReplyTo, s: &Lwm2mSettings, c: &Counters, out: &mut Sink) {
        // Bounded: requests in flight (and waiting for an NSTART slot) count against the
        // same limit as the sleep queue, so an MQTT flood cannot grow memory without end.
        if self.exchanges.len() + self.held.len() >= s.max_queued {
            Counters::bump(&c.queue_full);
            fail(out, Exchange::unsent(cmd, reply), "queue_full");
            return;
        }
        if cmd.request.payload.len() > MAX_BODY {
            Counters::bump(&c.bad_commands);
            fail(out, Exchange::unsent(cmd, reply), "payload_too_large");
            return;
        }
        if cmd.kind == CommandKind::Observe
            && self.observations.len() >= MAX_OBSERVATIONS
            && !self.observations.iter().any(|o| o.path == cmd.path)
        {
            fail(out, Exchange::unsent(cmd, reply), "too_many_observations");
            return;
        }
        if self.awake(now, s) {
            return self.send(now, cmd, reply, s, c, out);
        }
        if self.queue.len() >= s.max_queued {
            Counters::bump(&c.queue_full);
            fail(out, Exchange::unsent(cmd, reply), "queue_full");
            return;
        }
        Counters::bump(&c.queued);
        self.queue.push_back((cmd, reply));
    }

    fn send(&mut self, now: Instant, cmd: Command, reply: ReplyTo, s: &Lwm2mSettings, _c: &Counters, _out: &mut Sink) {
        if self.uploading() || !self.held.is_empty() {
            self.held.push_back((cmd, reply));
            return;
        }
        self.transmit(now, cmd, reply, s);
    }

    /// Sends `cmd` now; a payload larger than a block goes in Block1 blocks, the first now.
    fn transmit(&mut self, now: Instant, mut cmd: Command, reply: ReplyTo, s: &Lwm2mSettings) {
        self.next_tag = self.next_tag.wrapping_add(1);
        let tag = self.next_tag;
        let mut token = tag.to_be_bytes().to_vec();
        if cmd.kind == CommandKind::CancelObserve
            && let Some(i) = self.observations.iter().position(|o| o.path == cmd.path)
        {
            token = self.observations.remove(i).token;
        }
        cmd.request.set_token(token.clone());
        if matches!(cmd.kind, CommandKind::Plain | CommandKind::Observe)
            && cmd.request.header.code == MessageClass::Request(RequestType::Get)
        {
            self.accept_for(&mut cmd.request, &s.content_formats);
        }
        let block_size = self.block_limit.map_or(s.block_size, |l| l.min(s.block_size));
        let upload = if cmd.request.payload.len() > block_size {
            Upload::new(std::mem::take(&mut cmd.request.payload), block_size)
        } else {
            None
        };
        let first = match &upload {
            Some(u) => {
                tracing::debug!(ep = %self.info.ep, path = %cmd.path, bytes = u.total(), "LwM2M request sent in Block1 blocks");
                u.request(&cmd.request)
            }
            None => cmd.request.clone(),
        };
        self.layer.send_confirmable(now, tag, self.peer, first);
        self.exchanges.insert(tag, Exchange::new(token, cmd, reply, upload));
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_packet(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        packet: Packet,
        s: &Lwm2mSettings,
        kind_of: &(dyn Fn(&Path) -> Option<Kind> + Send + Sync),
        c: &Counters,
        out: &mut Sink,
    ) {
        let kind = packet.header.get_type();
        let is_response = matches!(packet.header.code, MessageClass::Response(_));
        match kind {
            MessageType::Acknowledgement | MessageType::Reset => {
                let received = self.layer.receive(now, peer, packet.clone());
                match received {
                    Received::Acked(tag) if is_response => {
                        if let Some(e) = self.exchanges.remove(&tag) {
                            self.complete(now, e, &packet, s, kind_of, out);
                        }
                    }
                    Received::Acked(tag) => {
                        // Empty ACK: the response comes separately.
                        if let Some(e) = self.exchanges.get_mut(&tag) {
                            e.deadline = Some(now + self.separate_timeout);
                            let data = json!({"reqPath": e.cmd.path});
                            out.publish.push((
                                s.translators.response.clone(),
                                json!({"reqID": e.cmd.req_id, "msgType": "ack", "data": data}),
                                None,
                            ));
                        }
                    }
                    Received::Reset(tag) => {
                        if let Some(e) = self.exchanges.remove(&tag) {
                            Counters::bump(&c.resets);
                            fail(out, e, "coap_reset");
                        }
                    }
                    _ => {}
                }
            }
            _ if is_response => {
                let token = packet.get_token().to_vec();
                let exchange = self.exchanges.iter().find(|(_, e)| e.token == token).map(|(t, _)| *t);
                if let Some(tag) = exchange {
                    self.layer.acknowledge(peer, &packet);
                    // The CON request may still be retransmitting (its ACK was lost).
                    self.layer.cancel(now, tag);
                    if let Some(e) = self.exchanges.remove(&tag) {
                        self.complete(now, e, &packet, s, kind_of, out);
                    }
                } else if let Some(i) = self.observations.iter().position(|o| o.token == token) {
                    self.layer.acknowledge(peer, &packet);
                    self.notify(now, i, &packet, s, kind_of, c, out);
                } else if kind == MessageType::Confirmable && self.done_tokens.contains(&token) {
                    Counters::bump(&c.duplicates);
                    self.layer.acknowledge(peer, &packet);
                } else if kind == MessageType::Confirmable {
                    self.layer.reset(peer, packet.header.message_id);
                } else {
                    // A NON notification for an observation we no longer hold: RST stops it.
                    self.layer.reset(peer, packet.header.message_id);
                }
            }
            _ => {}
        }
        self.heard(now, s, c, out);
    }

    /// A response to one of our requests: published on the response topic.
    fn complete(
        &mut self,
        now: Instant,
        mut e: Exchange,
        resp: &Packet,
        s: &Lwm2mSettings,
        kind_of: &dyn Fn(&Path) -> Option<Kind>,
        out: &mut Sink,
    ) {
        if resp.header.code == MessageClass::Response(ResponseType::RequestEntityTooLarge) {
            match self.retry_smaller(now, e, resp) {
                None => return,
                Some(back) => e = back,
            }
        }
        if let Some(up) = e.upload.as_mut() {
            if resp.header.code == MessageClass::Response(ResponseType::Continue) {
                // The device took the block: the next one goes, under the same token.
                let advanced = match codec::Block::of(resp, CoapOption::Block1) {
                    Some(Ok(b)) => up.advance(b).is_ok(),
                    _ => false,
                };
                if !advanced {
                    roost_core::peer_log!(WARN, "lwm2m.block1_abandoned", self.peer, ep = %self.info.ep, path = %e.cmd.path, "LwM2M 2.31 Continue that fits no block sent; the write is abandoned");
                    return fail(out, e, "bad_block");
                }
                let next = up.request(&e.cmd.request);
                e.deadline = None;
                self.next_tag = self.next_tag.wrapping_add(1);
                let tag = self.next_tag;
                self.layer.send_confirmable(now, tag, self.peer, next);
                self.exchanges.insert(tag, e);
                return;
            }
            // Any other code answers the whole request (4.13, 4.08 included).
            e.upload = None;
        }
        let mut whole;
        let mut resp = resp;
        match codec::Block::of(resp, CoapOption::Block2) {
            None => {}
            Some(Ok(b))
                if b.num as usize * b.size() == e.body.len() && e.body.len() + resp.payload.len() <= MAX_BODY =>
            {
                if let Some(first) = e.first.as_deref()
                    && b.num > 0
                    && let Err(why) = blockwise::same_representation(first, resp)
                {
                    roost_core::peer_log!(WARN, "lwm2m.block2_changed", self.peer, ep = %self.info.ep, path = %e.cmd.path, block = b.num, "LwM2M Block2 response changed representation mid-way ({why}): not published");
                    return fail(out, e, why);
                }
                e.body.extend_from_slice(&resp.payload);
                if b.num == 0 {
                    e.first = Some(Box::new(resp.clone()));
                }
                if b.more {
                    self.next_block(now, e, b);
                    return;
                }
                whole = e.first.take().map_or_else(|| resp.clone(), |f| *f);
                whole.clear_option(CoapOption::Block2);
                whole.payload = std::mem::take(&mut e.body);
                resp = &whole;
            }
            Some(_) => return fail(out, e, "bad_block"),
        }
        if self.done_tokens.len() >= 8 {
            self.done_tokens.pop_front();
        }
        self.done_tokens.push_back(e.token.clone());
        let data = mqtt::response_data(&e.cmd.path, e.cmd.kind, resp, kind_of);
        if let Some(seq) = e.notify_seq {
            let msg = json!({"reqID": e.cmd.req_id, "msgType": "notify", "seqNum": seq, "data": data});
            out.publish.push((s.translators.notify.clone(), msg, None));
            return;
        }
        if e.cmd.kind == CommandKind::Observe {
            let token = e.first_token.take().unwrap_or_else(|| e.token.clone());
            self.observe_answered(now, &token, &e.cmd, resp);
        }
        out.publish.push((
            s.translators.response.clone(),
            json!({"reqID": e.cmd.req_id, "msgType": e.cmd.msg_type, "data": data}),
            e.reply,
        ));
    }
}

fn success(c: MessageClass) -> bool {
    matches!(c, MessageClass::Response(_)) && u8::from(c) >> 5 == 2
}

fn fail(out: &mut Sink, e: Exchange, code: &str) {
    let data = mqtt::failure_data(&e.cmd.path, code);
    // Published on the response topic by the caller's settings: the topic is filled in
    // by `Server::flush` through this marker.
    out.publish.push((
        RESPONSE.to_string(),
        json!({"reqID": e.cmd.req_id, "msgType": e.cmd.msg_type, "data": data}),
        e.reply,
    ));
}

/// Stands for the configured response topic in a [`Sink`] (replaced when flushed).
pub(super) const RESPONSE: &str = "\u{0}response";
