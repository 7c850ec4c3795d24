//! Message layer (RFC 7252 §4), sans-IO: deduplication of incoming CON/NON by message id
//! within EXCHANGE_LIFETIME (a duplicate CON gets the cached response, §4.5), piggybacked
//! (ACK) or NON responses, our confirmable messages retransmitted with exponential back-off
//! from a random ACK_TIMEOUT..ACK_TIMEOUT*ACK_RANDOM_FACTOR (§4.2) under NSTART (§4.7), and
//! RST for what matches no exchange. Time is a parameter; datagrams go out through
//! [`MessageLayer::poll_transmit`].
//!
//! One instance serves one session, whose peer address may change (NAT rebinding): every
//! entry remembers the address it belongs to.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use coap_lite::{MessageClass, MessageType, Packet};

use crate::codec;
use crate::settings::Transmission;

/// What the caller attaches to a confirmable message to recognise its fate.
pub type Tag = u64;

/// What an incoming datagram means to the layer above.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// A new request: handle it, then answer with [`MessageLayer::respond`].
    Request(Packet),
    /// A duplicate (answered from the cache if a response was made), nothing to do.
    Duplicate,
    /// Our confirmable message `tag` was acknowledged.
    Acked(Tag),
    /// Our message `tag` was reset by the peer (a CON, or a NON we remembered).
    Reset(Tag),
    /// Nothing for the layer above (a ping answered, a stray ACK, an RST for an unknown id).
    Nothing,
}

/// Why a confirmable message ended without an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut(pub Tag);

struct Recent {
    expires: Instant,
    /// The encoded response, once the request was answered.
    response: Option<Bytes>,
}

struct Outstanding {
    tag: Tag,
    peer: SocketAddr,
    message_id: u16,
    bytes: Bytes,
    deadline: Instant,
    timeout: Duration,
    tries: u32,
}

/// Notifications sent as NON are remembered briefly so an RST to them can cancel the
/// observation (RFC 7641 §3.6); bounded.
const RECENT_NON: usize = 32;

pub struct MessageLayer {
    params: Transmission,
    /// Incoming message ids seen, per sender, with their response.
    recent: HashMap<(SocketAddr, u16), Recent>,
    recent_order: VecDeque<(Instant, SocketAddr, u16)>,
    max_recent: usize,
    outstanding: Vec<Outstanding>,
    /// Confirmable messages waiting for an NSTART slot.
    waiting: VecDeque<(Tag, SocketAddr, Packet)>,
    non_sent: VecDeque<(u16, Tag)>,
    next_mid: u16,
    transmit: VecDeque<(SocketAddr, Bytes)>,
    rng: u64,
    /// Retransmissions made (for metrics).
    pub retransmits: u64,
}

impl MessageLayer {
    /// `seed` picks the first message id and the retransmission jitter (random in
    /// production, fixed in tests); `max_recent` bounds the deduplication cache.
    pub fn new(params: Transmission, seed: u64, max_recent: usize) -> Self {
        MessageLayer {
            params,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            max_recent,
            outstanding: Vec::new(),
            waiting: VecDeque::new(),
            non_sent: VecDeque::new(),
            next_mid: seed as u16,
            transmit: VecDeque::new(),
            rng: seed | 1,
            retransmits: 0,
        }
    }

    pub fn receive(&mut self, now: Instant, peer: SocketAddr, packet: Packet) -> Received {
        self.expire(now);
        let mid = packet.header.message_id;
        let kind = packet.header.get_type();
        match (kind, packet.header.code) {
            (MessageType::Acknowledgement, _) => {
                let done = self.finish(mid);
                // The NSTART slot is free: the next waiting message leaves now.
                self.fill(now);
                done.map_or(Received::Nothing, Received::Acked)
            }
            (MessageType::Reset, _) => {
                if let Some(tag) = self.finish(mid) {
                    self.fill(now);
                    return Received::Reset(tag);
                }
                match self.non_sent.iter().position(|(m, _)| *m == mid) {
                    Some(i) => Received::Reset(self.non_sent.remove(i).map_or(0, |(_, t)| t)),
                    None => Received::Nothing,
                }
            }
            // CoAP ping (§4.3): an empty CON is answered with RST.
            (MessageType::Confirmable, MessageClass::Empty) => {
                self.send_empty(peer, MessageType::Reset, mid);
                Received::Nothing
            }
            (MessageType::NonConfirmable, MessageClass::Empty) => Received::Nothing,
            (_, MessageClass::Request(_)) => {
                if let Some(r) = self.recent.get(&(peer, mid)) {
                    if kind == MessageType::Confirmable
                        && let Some(resp) = &r.response
                    {
                        self.transmit.push_back((peer, resp.clone()));
                    }
                    return Received::Duplicate;
                }
                self.remember(now, peer, mid);
                Received::Request(packet)
            }
            // A response to a request we never sent: reject a CON, drop the rest (§4.2, §4.3).
            (t, _) => {
                if t == MessageType::Confirmable {
                    self.send_empty(peer, MessageType::Reset, mid);
                }
                Received::Nothing
            }
        }
    }

    /// Answers `request` (from `peer`) with `response`: piggybacked in an ACK for a CON, a
    /// NON for a NON (§5.2). The code, options and payload come from `response`; type, id
    /// and token are set here. The bytes are cached for duplicates.
    pub fn respond(&mut self, peer: SocketAddr, request: &Packet, mut response: Packet) {
        response.set_token(request.get_token().to_vec());
        if request.header.get_type() == MessageType::Confirmable {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = request.header.message_id;
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            response.header.message_id = self.next_message_id();
        }
        let Some(bytes) = self.encode(&response) else { return };
        if let Some(r) = self.recent.get_mut(&(peer, request.header.message_id)) {
            r.response = Some(bytes.clone());
        }
        self.transmit.push_back((peer, bytes));
    }

    /// Answers a CON request with an empty ACK now (the response follows separately).
    pub fn acknowledge(&mut self, peer: SocketAddr, request: &Packet) {
        if request.header.get_type() == MessageType::Confirmable {
            self.send_empty(peer, MessageType::Acknowledgement, request.header.message_id);
        }
    }

    /// Rejects a message with RST.
    pub fn reset(&mut self, peer: SocketAddr, message_id: u16) {
        self.send_empty(peer, MessageType::Reset, message_id);
    }

    /// Sends `packet` as a CON (id assigned here), retransmitted until ACK or RST. Waits
    /// for a slot when NSTART messages are outstanding.
    pub fn send_confirmable(&mut self, now: Instant, tag: Tag, peer: SocketAddr, packet: Packet) {
        if self.outstanding.len() >= self.params.nstart {
            self.waiting.push_back((tag, peer, packet));
            return;
        }
        self.start(now, tag, peer, packet);
    }

    /// Sends `packet` as a NON (id assigned here); an RST to it reports `tag`.
    pub fn send_non(&mut self, tag: Tag, peer: SocketAddr, mut packet: Packet) {
        packet.header.set_type(MessageType::NonConfirmable);
        let mid = self.next_message_id();
        packet.header.message_id = mid;
        if let Some(bytes) = self.encode(&packet) {
            if self.non_sent.len() >= RECENT_NON {
                self.non_sent.pop_front();
            }
            self.non_sent.push_back((mid, tag));
            self.transmit.push_back((peer, bytes));
        }
    }

    /// Whether a confirmable message tagged `tag` is outstanding or waiting.
    pub fn is_pending(&self, tag: Tag) -> bool {
        self.outstanding.iter().any(|o| o.tag == tag) || self.waiting.iter().any(|w| w.0 == tag)
    }

    /// Forgets every message tagged `tag` (its observation was cancelled).
    pub fn cancel(&mut self, now: Instant, tag: Tag) {
        self.outstanding.retain(|o| o.tag != tag);
        self.waiting.retain(|w| w.0 != tag);
        self.fill(now);
    }

    /// Moves what is outstanding or waiting for the session's old address to `peer`.
    pub fn rebind(&mut self, peer: SocketAddr) {
        for o in &mut self.outstanding {
            o.peer = peer;
        }
        for w in &mut self.waiting {
            w.1 = peer;
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding.iter().map(|o| o.deadline).min()
    }

    /// Retransmits what is due; returns the messages that ran out of retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<TimedOut> {
        let mut failed = Vec::new();
        let max = self.params.max_retransmit;
        let mut i = 0;
        while i < self.outstanding.len() {
            let o = &mut self.outstanding[i];
            if o.deadline > now {
                i += 1;
                continue;
            }
            if o.tries >= max {
                failed.push(TimedOut(o.tag));
                self.outstanding.swap_remove(i);
                continue;
            }
            o.tries += 1;
            o.timeout *= 2;
            o.deadline = now + o.timeout;
            self.retransmits += 1;
            self.transmit.push_back((o.peer, o.bytes.clone()));
            i += 1;
        }
        self.fill(now);
        self.expire(now);
        failed
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.transmit.pop_front()
    }

    fn start(&mut self, now: Instant, tag: Tag, peer: SocketAddr, mut packet: Packet) {
        packet.header.set_type(MessageType::Confirmable);
        let mid = self.next_message_id();
        packet.header.message_id = mid;
        let Some(bytes) = self.encode(&packet) else { return };
        let timeout = self.initial_timeout();
        self.outstanding.push(Outstanding {
            tag,
            peer,
            message_id: mid,
            bytes: bytes.clone(),
            deadline: now + timeout,
            timeout,
            tries: 0,
        });
        self.transmit.push_back((peer, bytes));
    }

    fn fill(&mut self, now: Instant) {
        while self.outstanding.len() < self.params.nstart {
            let Some((tag, peer, packet)) = self.waiting.pop_front() else { break };
            self.start(now, tag, peer, packet);
        }
    }

    /// Ends the outstanding CON with id `mid`; frees its NSTART slot.
    fn finish(&mut self, mid: u16) -> Option<Tag> {
        let i = self.outstanding.iter().position(|o| o.message_id == mid)?;
        Some(self.outstanding.swap_remove(i).tag)
    }

    fn remember(&mut self, now: Instant, peer: SocketAddr, mid: u16) {
        if self.recent.len() >= self.max_recent
            && let Some((_, p, m)) = self.recent_order.pop_front()
        {
            self.recent.remove(&(p, m));
        }
        let expires = now + self.params.exchange_lifetime();
        self.recent.insert((peer, mid), Recent { expires, response: None });
        self.recent_order.push_back((expires, peer, mid));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, p, m)) = self.recent_order.front().copied() {
            if at > now {
                break;
            }
            self.recent_order.pop_front();
            if self.recent.get(&(p, m)).is_some_and(|r| r.expires <= now) {
                self.recent.remove(&(p, m));
            }
        }
    }

    fn send_empty(&mut self, peer: SocketAddr, kind: MessageType, mid: u16) {
        if let Some(b) = self.encode(&codec::empty(kind, mid)) {
            self.transmit.push_back((peer, b));
        }
    }

    fn encode(&self, p: &Packet) -> Option<Bytes> {
        match codec::encode(p) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) => {
                tracing::warn!("{e}: not sent");
                None
            }
        }
    }

    fn next_message_id(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    /// ACK_TIMEOUT * random(1, ACK_RANDOM_FACTOR) (§4.2), from a small xorshift.
    fn initial_timeout(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + unit * (self.params.ack_random_factor() - 1.0).max(0.0);
        self.params.ack_timeout.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests;
