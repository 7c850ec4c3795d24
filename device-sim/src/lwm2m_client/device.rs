//! A simulated LwM2M client as a sans-IO state machine (OMA LwM2M 1.1 Core §6.2
//! registration, §6.4 information reporting, §6.5 queue mode): datagrams and time in
//! ([`Device::handle`], [`Device::handle_timeout`]), datagrams and events out
//! ([`Device::poll_transmit`], [`Device::poll_event`]), the next deadline from
//! [`Device::poll_timeout`]. The server's requests are answered by [`super::serve`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_coap::codec;

use super::blockwise::{self, Incoming, Received};
pub use super::observe::{Attrs, Observation};
use super::serve::{self, Answer};
use super::store::{Exec, Store};
use roost_lwm2m::types::Path;

#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub endpoint: String,
    /// Registration lifetime; an Update goes out at 3/4 of it.
    pub lifetime: Duration,
    /// Binding UQ: after sending, reachable for `queue_window`, then deaf until the next
    /// Update.
    pub queue_mode: bool,
    pub queue_window: Duration,
    /// Notification period of an observation without pmax.
    pub report_period: Duration,
    /// Varies the simulated temperature between devices.
    pub seed: u32,
    /// The device's buffer: a request payload larger than this must come in Block1 blocks
    /// (else 4.13), blocks are asked for in this size, and larger responses go in Block2
    /// blocks of it. 16..=1024, a power of two.
    pub block_size: usize,
    /// Reports the temperature every `report_period` with the 1.1 Send operation
    /// (`POST /dp`, SenML CBOR), besides answering observations.
    pub send: bool,
}

impl DeviceConfig {
    pub fn new(endpoint: impl Into<String>) -> DeviceConfig {
        DeviceConfig {
            endpoint: endpoint.into(),
            lifetime: Duration::from_secs(300),
            queue_mode: false,
            queue_window: Duration::from_secs(20),
            report_period: Duration::from_secs(10),
            seed: 0,
            block_size: 1024,
            send: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// 2.01 to the Register, with the Location-Path segments.
    Registered(Vec<String>),
    /// The Register was refused (the code) or went unanswered (`None`).
    RegisterFailed(Option<String>),
    Updated,
    /// The Update was refused or unanswered: the device registers again.
    UpdateFailed,
    Deregistered,
    /// A server request answered, with the response code (e.g. `2.05`).
    Answered(String),
    Notified(Path),
    /// A Send report was answered 2.04.
    Sent,
    /// A Send report was refused (the code) or went unanswered (`None`).
    SendFailed(Option<String>),
    /// An incoming datagram dropped: asleep in queue mode, or malformed.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Register,
    Update,
    Deregister,
    /// The 1.1 Send operation: `POST /dp` with readings.
    Send,
}

struct Outstanding {
    ask: Ask,
    message_id: u16,
    token: Vec<u8>,
    bytes: Vec<u8>,
    retry_at: Instant,
    retries: u32,
    /// A request body larger than `block_size`, going out in Block1 blocks (RFC 7959
    /// §2.5): the request without its body, the body, and the block in flight.
    blocks: Option<(Packet, Vec<u8>, u32)>,
}

const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_RETRANSMIT: u32 = 4;
const RECENT: usize = 8;
const SEPARATE_WAIT: Duration = Duration::from_secs(60);

pub struct Device {
    pub(super) cfg: DeviceConfig,
    pub(super) store: Store,
    pub(super) observations: Vec<Observation>,
    pub(super) attrs: BTreeMap<Path, Attrs>,
    location: Option<Vec<String>>,
    outstanding: Option<Outstanding>,
    /// Wanted after the outstanding exchange: an Update (trigger, object list change), a new
    /// Register (reboot) or the De-register.
    want: Option<Ask>,
    pub(super) objects_changed: bool,
    next_update: Option<Instant>,
    /// The next Send report (with `send`, while registered).
    next_send: Option<Instant>,
    awake_until: Option<Instant>,
    pub(super) started: Instant,
    message_id: u16,
    token: u32,
    /// Responses to the server's last CON requests, by message id, resent to duplicates.
    recent: VecDeque<(u16, Vec<u8>)>,
    /// A request coming in Block1 blocks.
    incoming: Option<Incoming>,
    transmit: VecDeque<Vec<u8>>,
    pub(super) events: VecDeque<Event>,
}

impl Device {
    pub fn new(cfg: DeviceConfig, now: Instant) -> Device {
        let lifetime = u32::try_from(cfg.lifetime.as_secs()).unwrap_or(u32::MAX);
        let store = Store::new(&cfg.endpoint, lifetime, if cfg.queue_mode { "UQ" } else { "U" });
        let message_id = (cfg.seed as u16).wrapping_mul(7919);
        Device {
            cfg,
            store,
            observations: Vec::new(),
            attrs: BTreeMap::new(),
            location: None,
            outstanding: None,
            want: None,
            objects_changed: false,
            next_update: None,
            next_send: None,
            awake_until: None,
            started: now,
            message_id,
            token: 0,
            recent: VecDeque::new(),
            incoming: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.cfg.endpoint
    }

    pub fn is_registered(&self) -> bool {
        self.location.is_some()
    }

    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    pub fn attrs(&self, path: &Path) -> Attrs {
        self.attrs.get(path).copied().unwrap_or_default()
    }

    /// Sends the Register (`POST /rd?ep=..&lt=..&lwm2m=1.1&b=U|UQ` with the object links).
    pub fn register(&mut self, now: Instant) {
        self.ask(Ask::Register, now);
    }

    /// Sends an Update now (or once the outstanding exchange is over): in queue mode this is
    /// how the device wakes up and collects what the server held for it.
    pub fn update(&mut self, now: Instant) {
        self.ask(Ask::Update, now);
    }

    /// Sends the De-register once the outstanding exchange (if any) is over.
    pub fn deregister(&mut self, now: Instant) {
        self.ask(Ask::Deregister, now);
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Device::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.outstanding.as_ref().map(|o| o.retry_at);
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.outstanding.is_none()
            && let Some(t) = self.next_update
        {
            at(t);
        }
        if self.is_registered() {
            for o in &self.observations {
                at(o.last_sent + self.period_of(&o.path));
            }
            if let Some(t) = self.next_send {
                at(t);
            }
        }
        next
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(o) = self.outstanding.as_mut()
            && now >= o.retry_at
        {
            if o.retries < MAX_RETRANSMIT {
                o.retries += 1;
                o.retry_at = now + ACK_TIMEOUT * 2u32.pow(o.retries);
                self.transmit.push_back(o.bytes.clone());
            } else {
                let ask = o.ask;
                self.outstanding = None;
                self.failed(ask, None, now);
            }
        }
        if self.outstanding.is_none() && self.next_update.is_some_and(|t| now >= t) {
            self.next_update = None;
            self.ask(Ask::Update, now);
        }
        if self.is_registered() {
            self.notify_due(now);
            if self.next_send.is_some_and(|t| now >= t) {
                // One exchange at a time: a Send due meanwhile goes when it is over.
                if self.outstanding.is_none() {
                    self.ask(Ask::Send, now);
                    self.next_send = Some(now + self.cfg.report_period);
                } else {
                    self.next_send = Some(now + ACK_TIMEOUT);
                }
            }
        }
    }

    /// One datagram from the server.
    pub fn handle(&mut self, datagram: &[u8], now: Instant) {
        if self.cfg.queue_mode && self.awake_until.is_some_and(|t| now > t) {
            self.events.push_back(Event::Ignored);
            return;
        }
        let Ok(p) = codec::decode(datagram) else {
            self.events.push_back(Event::Ignored);
            return;
        };
        match (p.header.get_type(), p.header.code) {
            (MessageType::Reset, _) => self.reset(p.header.message_id),
            (_, MessageClass::Request(_)) => self.serve(&p, now),
            (MessageType::Acknowledgement, MessageClass::Empty) => {
                // The server will answer separately (RFC 7252 §5.2.2): stop retransmitting
                // and give it EXCHANGE_LIFETIME-ish to do so.
                if let Some(o) = self.outstanding.as_mut().filter(|o| o.message_id == p.header.message_id) {
                    o.retries = MAX_RETRANSMIT;
                    o.retry_at = now + SEPARATE_WAIT;
                }
            }
            (t, MessageClass::Response(code)) => {
                if t == MessageType::Confirmable {
                    self.send(&codec::empty(MessageType::Acknowledgement, p.header.message_id), now);
                }
                self.response(&p, code, now);
            }
            _ => self.events.push_back(Event::Ignored),
        }
    }

    pub(super) fn next_message_id(&mut self) -> u16 {
        self.message_id = self.message_id.wrapping_add(1);
        self.message_id
    }

    pub(super) fn send(&mut self, p: &Packet, now: Instant) {
        if let Ok(bytes) = codec::encode(p) {
            self.transmit.push_back(bytes);
            if self.cfg.queue_mode {
                let until = now + self.cfg.queue_window;
                self.awake_until = Some(self.awake_until.map_or(until, |t| t.max(until)));
            }
        }
    }

    fn ask(&mut self, ask: Ask, now: Instant) {
        if self.outstanding.is_some() {
            // Register and De-register outrank an Update.
            if self.want.is_none() || ask != Ask::Update {
                self.want = Some(ask);
            }
            return;
        }
        let ask = match ask {
            Ask::Send if self.location.is_none() => return,
            Ask::Update | Ask::Deregister if self.location.is_none() => {
                if ask == Ask::Deregister {
                    self.events.push_back(Event::Deregistered);
                    return;
                }
                Ask::Register
            }
            a => a,
        };
        let mut p = Packet::new();
        p.header.set_version(1);
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = self.next_message_id();
        self.token = self.token.wrapping_add(1);
        let token = (self.token ^ self.cfg.seed.rotate_left(16)).to_be_bytes().to_vec();
        p.set_token(token.clone());
        match ask {
            Ask::Register => {
                p.header.code = MessageClass::Request(RequestType::Post);
                p.add_option(CoapOption::UriPath, b"rd".to_vec());
                let b = if self.cfg.queue_mode { "UQ" } else { "U" };
                for q in [
                    format!("ep={}", self.cfg.endpoint),
                    format!("lt={}", self.cfg.lifetime.as_secs()),
                    "lwm2m=1.1".to_string(),
                    format!("b={b}"),
                ] {
                    p.add_option(CoapOption::UriQuery, q.into_bytes());
                }
                p.add_option(
                    CoapOption::ContentFormat,
                    codec::encode_uint(u32::from(roost_lwm2m::types::format::LINK)),
                );
                p.payload = self.store.object_links().into_bytes();
                self.objects_changed = false;
            }
            Ask::Update | Ask::Deregister => {
                p.header.code =
                    MessageClass::Request(if ask == Ask::Update { RequestType::Post } else { RequestType::Delete });
                for seg in self.location.iter().flatten() {
                    p.add_option(CoapOption::UriPath, seg.clone().into_bytes());
                }
                if ask == Ask::Update && self.objects_changed {
                    p.add_option(
                        CoapOption::ContentFormat,
                        codec::encode_uint(u32::from(roost_lwm2m::types::format::LINK)),
                    );
                    p.payload = self.store.object_links().into_bytes();
                    self.objects_changed = false;
                }
            }
            Ask::Send => {
                p.header.code = MessageClass::Request(RequestType::Post);
                p.add_option(CoapOption::UriPath, b"dp".to_vec());
                p.add_option(
                    CoapOption::ContentFormat,
                    codec::encode_uint(u32::from(roost_lwm2m::types::format::SENML_CBOR)),
                );
                p.payload = self.report(now);
            }
        }
        // A body larger than the device's buffer goes in Block1 blocks of it.
        let blocks = (p.payload.len() > self.cfg.block_size).then(|| {
            let body = std::mem::take(&mut p.payload);
            (p.clone(), body, 0)
        });
        if let Some((base, body, _)) = &blocks {
            p = block1_request(base, body, 0, self.cfg.block_size);
        }
        self.go(ask, p, token, blocks, now);
    }

    fn go(&mut self, ask: Ask, p: Packet, token: Vec<u8>, blocks: Option<(Packet, Vec<u8>, u32)>, now: Instant) {
        let Ok(bytes) = codec::encode(&p) else { return };
        self.outstanding = Some(Outstanding {
            ask,
            message_id: p.header.message_id,
            token,
            bytes,
            retry_at: now + ACK_TIMEOUT,
            retries: 0,
            blocks,
        });
        self.send(&p, now);
    }

    /// A 2.31 Continue to a block of the outstanding request: the next block goes, same
    /// token, new message id. `false` if there is no next block.
    fn next_block1(&mut self, now: Instant) -> bool {
        let Some(o) = self.outstanding.take() else { return false };
        let Some((base, body, num)) = o.blocks else {
            self.outstanding = Some(o);
            return false;
        };
        let num = num + 1;
        if num as usize * self.cfg.block_size >= body.len() {
            return false;
        }
        let mut p = block1_request(&base, &body, num, self.cfg.block_size);
        p.header.message_id = self.next_message_id();
        self.go(o.ask, p, o.token, Some((base, body, num)), now);
        true
    }

    fn response(&mut self, p: &Packet, code: ResponseType, now: Instant) {
        let Some(o) = self.outstanding.as_ref() else { return };
        if p.get_token() != o.token.as_slice() && p.header.message_id != o.message_id {
            return;
        }
        let ask = o.ask;
        if code == ResponseType::Continue {
            if !self.next_block1(now) {
                self.outstanding = None;
                self.failed(ask, Some("2.31".into()), now);
            }
            return;
        }
        self.outstanding = None;
        let ok = matches!(code, ResponseType::Created | ResponseType::Changed | ResponseType::Deleted);
        if !ok {
            self.failed(ask, Some(serve::code_string(MessageClass::Response(code))), now);
        } else {
            match ask {
                Ask::Register => {
                    let location: Vec<String> = p
                        .get_option(CoapOption::LocationPath)
                        .map(|l| l.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
                        .unwrap_or_default();
                    self.location = Some(location.clone());
                    self.events.push_back(Event::Registered(location));
                    self.schedule_update(now);
                    if self.cfg.send {
                        self.next_send = Some(now + self.cfg.report_period);
                    }
                }
                Ask::Update => {
                    self.events.push_back(Event::Updated);
                    self.schedule_update(now);
                }
                Ask::Deregister => {
                    self.location = None;
                    self.next_update = None;
                    self.next_send = None;
                    self.observations.clear();
                    self.events.push_back(Event::Deregistered);
                }
                Ask::Send => self.events.push_back(Event::Sent),
            }
        }
        if let Some(next) = self.want.take() {
            self.ask(next, now);
        }
    }

    fn failed(&mut self, ask: Ask, code: Option<String>, now: Instant) {
        match ask {
            Ask::Register => self.events.push_back(Event::RegisterFailed(code)),
            Ask::Update => {
                self.events.push_back(Event::UpdateFailed);
                self.location = None;
                self.observations.clear();
                if self.want.is_none() {
                    self.want = Some(Ask::Register);
                }
            }
            Ask::Deregister => {
                self.location = None;
                self.events.push_back(Event::Deregistered);
            }
            Ask::Send => self.events.push_back(Event::SendFailed(code)),
        }
        if ask != Ask::Update {
            return;
        }
        if let Some(next) = self.want.take() {
            self.ask(next, now);
        }
    }

    fn schedule_update(&mut self, now: Instant) {
        self.next_update = Some(now + (self.cfg.lifetime * 3 / 4).max(Duration::from_secs(1)));
    }

    /// A server request: answered (or its cached answer resent, for a duplicate CON).
    fn serve(&mut self, p: &Packet, now: Instant) {
        let confirmable = p.header.get_type() == MessageType::Confirmable;
        if confirmable && let Some((_, bytes)) = self.recent.iter().find(|(mid, _)| *mid == p.header.message_id) {
            self.transmit.push_back(bytes.clone());
            return;
        }
        self.sample(now);
        let (mut response, exec) = match blockwise::receive(&mut self.incoming, p, self.cfg.block_size) {
            Received::Reply(r) => (r, None),
            Received::Whole(request, last_block) => {
                let Answer { mut response, exec } = serve::answer(self, &request, now);
                if let Some(b) = last_block {
                    response.add_option(CoapOption::Block1, codec::encode_uint(b.encode()));
                }
                (blockwise::respond_in_blocks(&request, response, self.cfg.block_size), exec)
            }
        };
        response.header.set_version(1);
        response.set_token(p.get_token().to_vec());
        if confirmable {
            response.header.set_type(MessageType::Acknowledgement);
            response.header.message_id = p.header.message_id;
        } else {
            response.header.set_type(MessageType::NonConfirmable);
            response.header.message_id = self.next_message_id();
        }
        self.events.push_back(Event::Answered(serve::code_string(response.header.code)));
        self.send(&response, now);
        if confirmable && let Some(bytes) = self.transmit.back() {
            self.recent.push_back((p.header.message_id, bytes.clone()));
            if self.recent.len() > RECENT {
                self.recent.pop_front();
            }
        }
        match exec {
            Some(Exec::Reboot) => {
                self.observations.clear();
                self.attrs.clear();
                self.ask(Ask::Register, now);
            }
            Some(Exec::UpdateTrigger) => self.ask(Ask::Update, now),
            _ if self.objects_changed => self.ask(Ask::Update, now),
            _ => {}
        }
    }
}

/// Block `num` of `body` as a request like `base`, in blocks of `size` bytes (16..=1024).
fn block1_request(base: &Packet, body: &[u8], num: u32, size: usize) -> Packet {
    let szx = codec::Block::szx_for(size);
    let mut p = base.clone();
    let (chunk, block) = roost_coap::block::slice(body, num, szx)
        .map(|(c, b)| (c.to_vec(), b))
        .unwrap_or((Vec::new(), codec::Block { num, more: false, szx }));
    p.add_option(CoapOption::Block1, codec::encode_uint(block.encode()));
    p.payload = chunk;
    p
}
