//! Driver layer: one UDP socket per bound address, demultiplexing every MQTT-SN client on
//! it (§5.5 forwarder encapsulation included: a relayed node is keyed by forwarder address
//! and wireless node id). Each client's sans-IO [`Session`] runs on the shared datagram
//! engine ([`roost_core::datagram`]), fed by a bounded queue; the receive loop answers SEARCHGW, takes QoS -1 publishes (§6.8), sends
//! ADVERTISE when configured, and drops malformed datagrams with a log line and a count, so
//! one bad peer never affects another.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use roost_core::datagram::{DatagramSession, Demux, Dispatch, End};
use roost_core::limit::{Bucket, PeerBuckets};
use roost_core::metrics::Limited;
use roost_core::trace::Direction;
use roost_core::{ClientId, ClientInfo, Connection, Delivery, DisconnectReason, Protocol};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{self, Message, ReturnCode, SnQos, TopicIdType};
use crate::session::{Context, Counters, Session};
use crate::topics::short_name;

/// Datagrams queued for one client's task; beyond it they are dropped (UDP semantics: the
/// client retries).
const CLIENT_QUEUE: usize = 8;

/// Who sent a datagram: an address, and for a forwarder the wireless node id behind it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub addr: SocketAddr,
    pub node: Option<Bytes>,
}

/// Binds every configured address (shared by the UDP adapters).
pub use roost_core::udp::bind;

/// `msg` as the datagram for `key`: encapsulated when it came through a forwarder.
fn encode(ctx: &Context, key: &PeerKey, msg: &Message) -> Option<Bytes> {
    let bytes = match codec::to_bytes(msg) {
        Ok(b) => b,
        Err(e) => {
            roost_core::peer_log!(WARN, "mqttsn.unencodable", key.addr, peer = %key.addr, "{e}");
            return None;
        }
    };
    let bytes = match &key.node {
        None => bytes,
        Some(node) => match codec::encode_encapsulated(0, node, &bytes) {
            Ok(b) => b,
            Err(e) => {
                roost_core::peer_log!(WARN, "mqttsn.unencodable", key.addr, peer = %key.addr, "{e}");
                return None;
            }
        },
    };
    ctx.broker.metrics().bytes_out(Protocol::MqttSn, bytes.len());
    Some(bytes)
}

/// Sends `msg` to `key` from the receive loop (answers to peers without a session).
async fn send(socket: &UdpSocket, ctx: &Context, key: &PeerKey, msg: &Message) {
    if let Some(bytes) = encode(ctx, key, msg)
        && let Err(e) = socket.send_to(&bytes, key.addr).await
    {
        tracing::debug!(peer = %key.addr, "MQTT-SN send failed: {e}");
    }
}

/// Serves one socket until `shutdown`.
pub async fn serve(socket: UdpSocket, ctx: Arc<Context>, shutdown: CancellationToken, tracker: TaskTracker) {
    let socket = Arc::new(socket);
    let clients: Demux<PeerKey, Message> = Demux::new(CLIENT_QUEUE);
    let mut buf = vec![0u8; 65_536];
    let advertise = ctx.settings.advertise_interval;
    if advertise.is_some() && ctx.settings.advertise_address.is_ipv4() {
        let _ = socket.set_broadcast(true);
    }
    let mut advertise_tick = tokio::time::interval(advertise.unwrap_or(Duration::from_secs(3600)));
    // Flood control: datagrams per peer address, and datagrams from addresses that are not
    // (yet) clients — every new peer starts with one.
    let start = std::time::Instant::now();
    let mut peer_rate = (ctx.settings.peer_packet_rate > 0).then(|| {
        PeerBuckets::new(u64::from(ctx.settings.peer_packet_rate), ctx.settings.max_clients.saturating_mul(2), start)
    });
    let mut new_peers =
        (ctx.settings.new_peers_rate > 0).then(|| Bucket::new(u64::from(ctx.settings.new_peers_rate), start));
    loop {
        let (n, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = advertise_tick.tick(), if advertise.is_some() => {
                let duration = advertise.map_or(0, |d| u16::try_from(d.as_secs()).unwrap_or(u16::MAX));
                let key = PeerKey { addr: ctx.settings.advertise_address, node: None };
                send(&socket, &ctx, &key, &Message::Advertise { gw_id: ctx.settings.gateway_id, duration }).await;
                continue;
            }
            // Unconstrained: with thousands of client tasks runnable, a receive loop that
            // yields after each coop budget waits behind all of them while the kernel buffer
            // overflows; this way it yields only when the socket is empty.
            r = tokio::task::unconstrained(socket.recv_from(&mut buf)) => match r {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port unreachable and the like surface here on some systems.
                    tracing::debug!("MQTT-SN recv: {e}");
                    continue;
                }
            },
        };
        ctx.broker.metrics().bytes_in(Protocol::MqttSn, n);
        if let Some(rates) = &mut peer_rate
            && !rates.try_take(&addr, std::time::Instant::now())
        {
            ctx.broker.metrics().limited(Limited::PeerPacketRate);
            tracing::trace!(peer = %addr, "MQTT-SN: over peer_packet_rate; datagram dropped");
            continue;
        }
        let Some((key, msg)) = decode(&ctx, addr, &buf[..n]) else { continue };
        if let Some(bucket) = &mut new_peers
            && !clients.contains(&key)
            && !bucket.try_take(std::time::Instant::now())
        {
            ctx.broker.metrics().limited(Limited::NewPeerRate);
            tracing::trace!(peer = %addr, "MQTT-SN: over new_peers_rate; datagram from a new peer dropped");
            continue;
        }
        let msg = match clients.dispatch(&key, msg) {
            Dispatch::Queued => continue,
            Dispatch::Busy(m) => {
                Counters::bump(&ctx.counters.busy_drops);
                tracing::debug!(peer = %addr, msg = m.name(), "MQTT-SN client busy: datagram dropped");
                continue;
            }
            Dispatch::Unknown(m) => m,
        };
        match msg {
            Message::Connect(_) => {
                if ctx.counters.clients.load(Relaxed) >= ctx.settings.max_clients as u64 {
                    Counters::bump(&ctx.counters.rejected_clients);
                    roost_core::peer_log!(WARN, "mqttsn.max_clients", addr, peer = %addr, "MQTT-SN CONNECT refused: mqttsn.max_clients reached");
                    send(&socket, &ctx, &key, &Message::ConnAck { rc: ReturnCode::Congestion }).await;
                    continue;
                }
                let device = SnDevice::new(key.clone(), ctx.clone());
                clients.spawn(key, msg, device, socket.clone(), shutdown.clone(), &tracker);
            }
            Message::SearchGw { .. } => {
                send(&socket, &ctx, &key, &Message::GwInfo { gw_id: ctx.settings.gateway_id, gw_addr: Bytes::new() })
                    .await;
            }
            Message::Publish(p) if p.flags.qos == SnQos::MinusOne => publish_minus_one(&ctx, addr, p),
            other => {
                Counters::bump(&ctx.counters.unexpected);
                tracing::debug!(peer = %addr, msg = other.name(), "MQTT-SN message from an unconnected peer dropped");
            }
        }
    }
}

/// Decodes a datagram, unwrapping a forwarder's encapsulation (§5.5): the peer is the
/// forwarder's address plus the wireless node id. None (counted and logged) if malformed.
fn decode(ctx: &Context, addr: SocketAddr, data: &[u8]) -> Option<(PeerKey, Message)> {
    let datagram = Bytes::copy_from_slice(data);
    let (key, inner) = match codec::decode_encapsulated(&datagram) {
        Ok(None) => (PeerKey { addr, node: None }, datagram),
        Ok(Some(e)) => (PeerKey { addr, node: Some(e.node_id) }, e.inner),
        Err(e) => {
            malformed(ctx, addr, &e);
            return None;
        }
    };
    match codec::decode(&inner) {
        Ok(m) => Some((key, m)),
        Err(e) => {
            malformed(ctx, addr, &e);
            None
        }
    }
}

fn malformed(ctx: &Context, addr: SocketAddr, e: &codec::DecodeError) {
    Counters::bump(&ctx.counters.malformed);
    roost_core::peer_log!(INFO, "mqttsn.malformed", addr, peer = %addr, "malformed MQTT-SN datagram dropped: {e}");
}

/// QoS -1 (§6.8): a publish without a connection, to a predefined id or a short name. No
/// credentials travel with it, so it is gated by `allow_qos_minus_one` and the ACL, which
/// sees protocol `mqtt-sn`, the peer address and the client id `qos-1@{addr}`.
fn publish_minus_one(ctx: &Context, addr: SocketAddr, p: codec::Publish) {
    if !ctx.settings.allow_qos_minus_one {
        tracing::debug!(peer = %addr, "MQTT-SN QoS -1 publish dropped: mqttsn.allow_qos_minus_one is off");
        return;
    }
    let name = match p.flags.topic_id_type {
        TopicIdType::Predefined => ctx.topics.predefined.name(p.topic_id).map(|n| n.to_string()),
        TopicIdType::Short => short_name(p.topic_id.0.to_be_bytes()),
        TopicIdType::Normal => None,
    };
    let Some(name) = name else {
        roost_core::peer_log!(INFO, "mqttsn.qos_minus_one_unknown_topic", addr, peer = %addr, topic_id = p.topic_id.0, "MQTT-SN QoS -1 publish to an unknown or normal topic id dropped");
        return;
    };
    Counters::bump(&ctx.counters.qos_minus_one);
    let info = ClientInfo {
        client_id: ClientId::new(format!("qos-1@{addr}")),
        protocol: Protocol::MqttSn,
        peer: Some(addr),
        username: None,
        protocol_detail: None,
        grants: None,
    };
    let msg = roost_core::Message::new(
        ctx.topics.mountpoint.mount(&name),
        p.data,
        roost_core::QoS::AtMostOnce,
        p.flags.retain,
    );
    if let Err(e) = ctx.broker.publish_unconnected(&info, msg) {
        roost_core::peer_log!(INFO, "mqttsn.qos_minus_one_refused", addr, peer = %addr, "MQTT-SN QoS -1 publish refused: {e}");
    }
}

/// Writes `m` to the running traces that follow client `client_id` (one atomic load when no
/// trace runs). Before CONNECT a peer has no client id and nothing is traced.
fn trace(ctx: &Context, key: &PeerKey, client_id: Option<&str>, direction: Direction, m: &Message) {
    let tracer = ctx.broker.tracer();
    if let Some(id) = client_id
        && tracer.is_active()
    {
        tracer.packet("mqtt-sn", id, Some(key.addr), direction, None, m);
    }
}

/// One client's [`Session`] as a datagram session of the shared engine: decoded messages in,
/// traced and encoded datagrams out (to the forwarder, encapsulated, for a relayed node).
struct SnDevice {
    key: PeerKey,
    ctx: Arc<Context>,
    session: Session,
    out: Vec<Message>,
}

impl SnDevice {
    fn new(key: PeerKey, ctx: Arc<Context>) -> SnDevice {
        ctx.counters.clients.fetch_add(1, Relaxed);
        let session = Session::new(ctx.clone(), key.addr, Instant::now());
        SnDevice { key, ctx, session, out: Vec::new() }
    }

    /// After a message or delivery: send what the queue allows, or close as the core asks.
    async fn pump(&mut self, now: Instant) -> Result<(), End> {
        match self.session.pump(now, &mut self.out) {
            Some(reason) => Err(self.session.close(reason, &mut self.out).await),
            None => Ok(()),
        }
    }
}

impl DatagramSession for SnDevice {
    type Input = Message;

    fn connection(&self) -> Option<&Connection> {
        self.session.connection().filter(|_| self.session.wants_deliveries()).map(|c| &**c)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    async fn handle_datagram(&mut self, now: Instant, m: Message) -> Result<(), End> {
        let named = match &m {
            Message::Connect(c) => Some(c.client_id.as_str()),
            _ => self.session.client_id().map(ClientId::as_str),
        };
        trace(&self.ctx, &self.key, named, Direction::In, &m);
        self.session.handle_message(now, m, &mut self.out).await?;
        self.pump(now).await
    }

    async fn handle_delivery(&mut self, now: Instant, d: Delivery) -> Result<(), End> {
        if let Delivery::Close(reason) = d {
            return Err(self.session.close(reason, &mut self.out).await);
        }
        self.session.handle_delivery(now, d, &mut self.out);
        self.pump(now).await
    }

    async fn handle_timeout(&mut self, now: Instant) -> Result<(), End> {
        self.session.handle_timeout(now, &mut self.out).await
    }

    async fn handle_shutdown(&mut self) -> End {
        self.session.close(DisconnectReason::Shutdown, &mut self.out).await
    }

    fn poll_transmit(&mut self) -> Option<(Bytes, SocketAddr)> {
        while !self.out.is_empty() {
            let m = self.out.remove(0);
            trace(&self.ctx, &self.key, self.session.client_id().map(ClientId::as_str), Direction::Out, &m);
            if let Some(bytes) = encode(&self.ctx, &self.key, &m) {
                return Some((bytes, self.key.addr));
            }
        }
        None
    }

    async fn finish(self, end: End) {
        tracing::debug!(peer = %self.key.addr, client_id = ?self.session.client_id(), why = %end.why, "MQTT-SN session ended");
        self.ctx.counters.clients.fetch_sub(1, Relaxed);
    }
}
