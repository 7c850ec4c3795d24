//! The LwM2M server, sans-IO: the registration table (Register, Update, De-register,
//! lifetime expiry), device management requests to the devices (tokens, retransmission by
//! roost-coap's message layer, timeouts), notifications, and the queue of commands for
//! sleeping devices. Time is a parameter; datagrams come out of [`Server::poll_transmit`]
//! and what needs the core (connect, publish, close) out of [`Server::poll_output`].
//!
//! Registration needs the core first: a Register emits [`Output::Connect`] and is answered
//! when the driver calls [`Server::connected`] with the outcome.

mod blockwise;
mod bootstrap;
mod device;
mod inbound;
mod registration;
mod send;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use bytes::Bytes;
use coap_lite::{MessageClass, MessageType, Packet};
use roost_coap::codec;
use roost_coap::message::{MessageLayer, Received};
use roost_core::DisconnectReason;
use serde_json::Value as Json;

use crate::server::settings::Lwm2mSettings;
use crate::types::{Kind, Path};

pub use device::Device;
pub use registration::RegInfo;

/// The resource type of a path, from the object definitions.
pub type KindOf = Arc<dyn Fn(&Path) -> Option<Kind> + Send + Sync>;

/// What the driver does with the core for the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Connect endpoint `ep` to the core as a client (protocol `lwm2m`) and subscribe its
    /// command topic `commands`; then call [`Server::connected`] with `ticket`.
    Connect { ticket: u64, ep: String, peer: SocketAddr, commands: String },
    /// Publish as `ep` (a full topic; `correlation` for an MQTT 5 response topic).
    Publish { ep: String, topic: String, payload: Bytes, correlation: Option<Bytes> },
    /// End the core connection of `ep` (de-registered, expired).
    Close { ep: String, reason: DisconnectReason },
}

/// Why the core refused a registering device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Authentication or authorisation: 4.03.
    Forbidden,
    /// Overloaded or shutting down: 5.03.
    Unavailable,
}

/// Where a result also goes: an MQTT 5 Response Topic with its Correlation Data.
pub type ReplyTo = Option<(String, Option<Bytes>)>;

/// LwM2M adapter counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub malformed: AtomicU64,
    pub duplicates: AtomicU64,
    pub registrations: AtomicU64,
    pub updates: AtomicU64,
    pub deregistrations: AtomicU64,
    pub expired: AtomicU64,
    pub refused: AtomicU64,
    pub commands: AtomicU64,
    pub bad_commands: AtomicU64,
    pub timeouts: AtomicU64,
    pub resets: AtomicU64,
    pub notifications: AtomicU64,
    /// 1.1 Send reports published, and refused (malformed, unregistered, not SenML).
    pub sends: AtomicU64,
    pub bad_sends: AtomicU64,
    /// Notifications dropped as stale (an older Observe sequence number).
    pub stale_notifications: AtomicU64,
    pub queued: AtomicU64,
    pub queue_full: AtomicU64,
    /// Registered devices now (a gauge).
    pub devices: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// A Register waiting for the core.
struct Registering {
    peer: SocketAddr,
    request: Packet,
    info: RegInfo,
    /// The last Block1 block of a Register that came in blocks: echoed in the answer.
    block1: Option<roost_coap::codec::Block>,
}

pub struct Server {
    settings: Arc<Lwm2mSettings>,
    kind_of: KindOf,
    /// Deduplicates and answers requests to the registration interface.
    rd: MessageLayer,
    devices: HashMap<String, Device>,
    by_ep: HashMap<String, String>,
    by_peer: HashMap<SocketAddr, String>,
    registering: HashMap<u64, Registering>,
    /// Register, Update and Bootstrap-Request bodies coming in Block1 blocks.
    rd_blocks: roost_coap::block::Assemblies,
    /// Each device's next deadline (retransmission, separate response, lifetime), indexed
    /// so that time costs O(log n) per device touched, not a scan of every registration.
    timers: BTreeSet<(Instant, String)>,
    scheduled: HashMap<String, Instant>,
    bootstraps: bootstrap::Bootstraps,
    next_ticket: u64,
    next_id: u64,
    seed: u64,
    /// Draws registration ids: unguessable, since an Update or De-register names its
    /// registration by id alone (over plain UDP nothing else identifies the device).
    ids: rand::rngs::StdRng,
    transmit: VecDeque<(SocketAddr, Bytes)>,
    outputs: VecDeque<Output>,
    counters: Arc<Counters>,
}

impl Server {
    pub fn new(settings: Arc<Lwm2mSettings>, kind_of: KindOf, counters: Arc<Counters>, seed: u64) -> Self {
        let rd = MessageLayer::new(settings.transmission, seed, 4096);
        Server {
            settings,
            kind_of,
            rd,
            devices: HashMap::new(),
            by_ep: HashMap::new(),
            by_peer: HashMap::new(),
            registering: HashMap::new(),
            rd_blocks: roost_coap::block::Assemblies::with_limit(inbound::MAX_REG_ASSEMBLIES),
            timers: BTreeSet::new(),
            scheduled: HashMap::new(),
            bootstraps: HashMap::new(),
            next_ticket: 1,
            next_id: seed & 0xffff,
            seed,
            // From the OS, not from `seed`: message ids and tokens on the wire derive from that.
            ids: rand::SeedableRng::from_os_rng(),
            transmit: VecDeque::new(),
            outputs: VecDeque::new(),
            counters,
        }
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The endpoint registered from `peer`, if any.
    pub fn endpoint_at(&self, peer: SocketAddr) -> Option<&str> {
        self.by_peer.get(&peer).and_then(|id| self.devices.get(id)).map(|d| d.info.ep.as_str())
    }

    /// Every registered device.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The registration of endpoint `ep`, if registered.
    pub fn device(&self, ep: &str) -> Option<&Device> {
        self.by_ep.get(ep).and_then(|id| self.devices.get(id))
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        if let Some(t) = self.rd.poll_transmit() {
            return Some(t);
        }
        self.transmit.pop_front()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let rd = self.rd.poll_timeout();
        self.timers.first().map(|(t, _)| *t).into_iter().chain(rd).chain(self.bootstrap_deadline()).min()
    }

    /// Retransmissions, request timeouts and lifetime expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.rd.handle_timeout(now);
        self.bootstrap_timeouts(now);
        let mut due = Vec::new();
        while let Some((t, _)) = self.timers.first()
            && *t <= now
        {
            if let Some((_, id)) = self.timers.pop_first() {
                self.scheduled.remove(&id);
                due.push(id);
            }
        }
        for id in due {
            let Some(dev) = self.devices.get_mut(&id) else { continue };
            if now >= dev.expires_at() {
                Counters::bump(&self.counters.expired);
                roost_core::peer_log!(INFO, "lwm2m.registration_expired", dev.peer, ep = %dev.info.ep, "LwM2M registration expired");
                self.deregister(now, &id, "expired", DisconnectReason::Abnormal);
                continue;
            }
            let mut out = Sink::default();
            dev.handle_timeout(now, &self.settings, &self.counters, &mut out);
            self.flush(&id, out);
        }
    }

    /// One datagram from `peer`.
    pub fn handle_datagram(&mut self, now: Instant, peer: SocketAddr, bytes: &[u8]) {
        let packet = match codec::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                Counters::bump(&self.counters.malformed);
                tracing::debug!(%peer, "LwM2M datagram dropped: {e}");
                if let Some(h) = codec::raw_header(bytes)
                    && h.confirmable
                {
                    self.rd.reset(peer, h.message_id);
                }
                return;
            }
        };
        let kind = packet.header.get_type();
        match packet.header.code {
            MessageClass::Request(_) | MessageClass::Empty
                if kind == MessageType::Confirmable || kind == MessageType::NonConfirmable =>
            {
                match self.rd.receive(now, peer, packet) {
                    Received::Request(req) => self.handle_request(now, peer, req),
                    Received::Duplicate => Counters::bump(&self.counters.duplicates),
                    _ => {}
                }
            }
            _ => {
                // ACK, RST, or a separate response / notification: the device's business.
                if self.bootstraps.contains_key(&peer)
                    && !self.by_peer.contains_key(&peer)
                    && self.bootstrap_packet(now, peer, packet.clone())
                {
                    return;
                }
                let Some(id) = self.by_peer.get(&peer).cloned() else {
                    if kind == MessageType::Confirmable {
                        self.rd.reset(peer, packet.header.message_id);
                    }
                    return;
                };
                let Some(dev) = self.devices.get_mut(&id) else { return };
                let mut out = Sink::default();
                dev.handle_packet(now, peer, packet, &self.settings, &*self.kind_of, &self.counters, &mut out);
                self.flush(&id, out);
            }
        }
    }

    /// One MQTT command for endpoint `ep` (a core delivery on its command topic).
    pub fn handle_command(&mut self, now: Instant, ep: &str, payload: &[u8], reply: ReplyTo) {
        let Some(id) = self.by_ep.get(ep).cloned() else { return };
        let Some(dev) = self.devices.get_mut(&id) else { return };
        Counters::bump(&self.counters.commands);
        let mut out = Sink::default();
        dev.handle_command(now, payload, reply, &self.settings, &self.counters, &mut out);
        self.flush(&id, out);
    }

    /// The core closed the connection of `ep` (kicked, taken over elsewhere): the
    /// registration goes, silently (nothing can be published for it any more).
    pub fn connection_closed(&mut self, ep: &str) {
        if let Some(id) = self.by_ep.get(ep).cloned() {
            self.remove(&id);
        }
    }

    /// Moves a device's datagrams and events out; publishes topics below its mountpoint.
    fn flush(&mut self, id: &str, out: Sink) {
        let Some(dev) = self.devices.get_mut(id) else { return };
        while let Some(t) = dev.layer.poll_transmit() {
            self.transmit.push_back(t);
        }
        let next = dev.poll_timeout(&self.settings);
        if self.scheduled.get(id).copied() != next {
            if let Some(old) = self.scheduled.remove(id) {
                self.timers.remove(&(old, id.to_string()));
            }
            if let Some(t) = next {
                self.timers.insert((t, id.to_string()));
                self.scheduled.insert(id.to_string(), t);
            }
        }
        let ep = dev.info.ep.clone();
        for (mut topic, json, reply) in out.publish {
            if topic == device::RESPONSE {
                topic.clone_from(&self.settings.translators.response);
            }
            let payload = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
            if let Some((rt, corr)) = reply {
                self.outputs.push_back(Output::Publish {
                    ep: ep.clone(),
                    topic: rt,
                    payload: payload.clone(),
                    correlation: corr,
                });
            }
            let topic = format!("{}{}", self.settings.mount(&ep), topic);
            self.outputs.push_back(Output::Publish { ep: ep.clone(), topic, payload, correlation: None });
        }
    }

    fn remove(&mut self, id: &str) -> Option<Device> {
        let dev = self.devices.remove(id)?;
        if let Some(t) = self.scheduled.remove(id) {
            self.timers.remove(&(t, id.to_string()));
        }
        self.by_ep.remove(&dev.info.ep);
        if self.by_peer.get(&dev.peer).is_some_and(|i| i == id) {
            self.by_peer.remove(&dev.peer);
        }
        self.counters.devices.fetch_sub(1, Relaxed);
        Some(dev)
    }
}

/// What a device's handling produced: `(topic below the mountpoint, JSON, reply-to)`.
#[derive(Default)]
pub(crate) struct Sink {
    pub publish: Vec<(String, Json, ReplyTo)>,
}
