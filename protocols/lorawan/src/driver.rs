//! Driver layer: the UDP sockets packet forwarders talk to, the per-gateway table (keyed by
//! gateway EUI, with the PULL_DATA address downlinks go to, expired when silent), the
//! downlink attempts awaiting TX_ACK, and the core connections: one per gateway (protocol
//! `lorawan`, client id `lorawan-gw-{eui}`) and, in network-server mode, one per registered
//! device (`lorawan-{dev_eui}`, subscribed to its `command/down`).
//!
//! One task owns all of it; a receive task per socket, a delivery task per connection and
//! the management API ([`crate::manage`], answered in `commands`) feed it through channels,
//! so the state needs no locks. Malformed and unknown-version datagrams are counted and
//! dropped. While a trace runs, datagrams are traced per gateway and frames per device.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use roost_core::trace::Direction;
use roost_core::{
    Broker, ClientId, ConnectContext, ConnectRequest, Connection, Delivery, DisconnectReason, Message, Protocol, QoS,
    SubOptions, Will,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod commands;
mod downlink;
mod gateways;

use downlink::PendingTx;
use gateways::Gateway;

use crate::bridge;
use crate::manage::{Manage, ManageError};
use crate::ns::{NetworkServer, NsCounters, Output, events};
use crate::semtech::{self, GatewayEui, Packet, Rxpk};
use crate::settings::{DeviceSettings, LorawanSettings, Marshaler, Mode};
use crate::types::DevEui;

/// The store space of device states.
pub const STORE_SPACE: &str = "lorawan";
/// The store space of the settings of devices created through the management API.
pub const DEVICE_SPACE: &str = "lorawan-devices";
/// Datagrams queued from the receive tasks; beyond it they are dropped (counted).
const INBOX: usize = 16_384;
/// How long a downlink waits for its TX_ACK before it is taken as failed.
const TX_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Device states changed within this period go to the store together: the store commits
/// them in one transaction instead of one per uplink (a disk commit per uplink costs more
/// CPU than the rest of the uplink's handling). A crash loses at most this much of counter
/// progress, on top of the store's own commit latency.
const PERSIST_INTERVAL: Duration = Duration::from_millis(50);

/// Wire-level counters (the network server's are in `ns`).
#[derive(Debug, Default)]
pub struct Counters {
    pub datagrams: AtomicU64,
    pub malformed: AtomicU64,
    pub unknown_version: AtomicU64,
    pub unexpected: AtomicU64,
    pub inbox_full: AtomicU64,
    pub gateways_refused: AtomicU64,
    pub frames: AtomicU64,
    pub pull_resp: AtomicU64,
    pub tx_ack_ok: AtomicU64,
    pub tx_ack_errors: AtomicU64,
    pub tx_no_path: AtomicU64,
    pub bad_commands: AtomicU64,
    /// Gateways tracked now (a gauge).
    pub gateways: AtomicU64,
    pub ns: Arc<NsCounters>,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub struct Context {
    pub broker: Broker,
    pub settings: LorawanSettings,
    pub counters: Arc<Counters>,
    /// The management API's requests to the driver.
    pub manage: Manage,
}

impl Context {
    pub fn new(broker: Broker, settings: LorawanSettings) -> Arc<Context> {
        Arc::new(Context { broker, settings, counters: Arc::default(), manage: Manage::default() })
    }
}

/// Binds every configured address (shared by the UDP adapters).
pub use roost_core::udp::bind;

enum Event {
    Datagram { socket: usize, from: SocketAddr, data: Bytes },
    DeviceCommand { dev_eui: DevEui, payload: Bytes },
    GatewayCommand { gateway: GatewayEui, topic: Arc<str>, payload: Bytes },
}

/// A registered device's core connection and the task forwarding its commands.
struct DeviceLink {
    conn: Arc<Connection>,
    /// Ends the forwarding task when the device is deleted.
    stop: CancellationToken,
}

struct Driver {
    ctx: Arc<Context>,
    sockets: Vec<Arc<UdpSocket>>,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    gateways: HashMap<GatewayEui, Gateway>,
    pending: HashMap<u16, PendingTx>,
    next_token: u16,
    ns: Option<NetworkServer>,
    devices: HashMap<DevEui, DeviceLink>,
    out: Vec<Output>,
    /// Device states to write at the next flush (the latest per device).
    dirty: HashMap<DevEui, Vec<u8>>,
}

/// Serves `sockets` until `shutdown`.
pub async fn serve(sockets: Vec<UdpSocket>, ctx: Arc<Context>, shutdown: CancellationToken, tracker: TaskTracker) {
    let sockets: Vec<Arc<UdpSocket>> = sockets.into_iter().map(Arc::new).collect();
    let (tx, mut rx) = mpsc::channel(INBOX);
    for (i, s) in sockets.iter().enumerate() {
        tracker.spawn(receive(i, s.clone(), tx.clone(), ctx.clone(), shutdown.clone()));
    }
    let mut d = Driver {
        ctx: ctx.clone(),
        sockets,
        events: tx,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        gateways: HashMap::new(),
        pending: HashMap::new(),
        next_token: rand::random(),
        ns: None,
        devices: HashMap::new(),
        out: Vec::new(),
        dirty: HashMap::new(),
    };
    if ctx.settings.mode == Mode::NetworkServer {
        d.start_network_server().await;
    }
    let mut manage = ctx.manage.take_receiver();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut persist = tokio::time::interval(PERSIST_INTERVAL);
    loop {
        let ns_deadline = d.ns.as_ref().and_then(NetworkServer::poll_timeout).map(Instant::from_std);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ev) = rx.recv() => d.handle_event(ev).await,
            _ = async { match ns_deadline { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                d.ns_timeout().await;
            }
            _ = tick.tick() => d.expire().await,
            _ = persist.tick(), if !d.dirty.is_empty() => d.flush(),
            Some(cmd) = async { match &mut manage { Some(rx) => rx.recv().await, None => std::future::pending().await } } => d.manage(cmd).await,
        }
    }
    ctx.manage.stopped();
    d.close().await;
}

async fn receive(
    index: usize,
    socket: Arc<UdpSocket>,
    tx: mpsc::Sender<Event>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let r = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        match r {
            Ok((n, from)) => {
                ctx.broker.metrics().bytes_in(Protocol::Lorawan, n);
                let ev = Event::Datagram { socket: index, from, data: Bytes::copy_from_slice(&buf[..n]) };
                if tx.try_send(ev).is_err() {
                    bump(&ctx.counters.inbox_full);
                }
            }
            Err(e) => tracing::debug!("LoRaWAN UDP recv: {e}"),
        }
    }
}

impl Driver {
    async fn start_network_server(&mut self) {
        let stored = match self.ctx.broker.load_blobs(STORE_SPACE) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("LoRaWAN device states could not be read from the store: {e}");
                Vec::new()
            }
        };
        let mut ns = NetworkServer::new(self.ctx.settings.network_server.clone(), stored);
        ns.counters = self.ctx.counters.ns.clone();
        // Devices created through the management API before this start.
        match self.ctx.broker.load_blobs(DEVICE_SPACE) {
            Ok(defs) => {
                for (key, value) in defs {
                    match serde_json::from_slice::<DeviceSettings>(&value) {
                        Ok(d) if d.dev_eui.to_string() == key => {
                            if let Err(e) = ns.add_device(d, &mut Vec::new()) {
                                tracing::warn!(dev_eui = %key, "LoRaWAN device created through the API not registered again: {e} (the config file's wins)");
                            }
                        }
                        Ok(_) => {
                            tracing::warn!(key = %key, "stored LoRaWAN device settings under another DevEUI, ignored")
                        }
                        Err(e) => tracing::warn!(key = %key, "stored LoRaWAN device settings unreadable, ignored: {e}"),
                    }
                }
            }
            Err(e) => tracing::error!("LoRaWAN devices created through the API could not be read from the store: {e}"),
        }
        let devices: Vec<_> = ns.device_euis().map(|d| d.settings.clone()).collect();
        for dev in devices {
            if let Err(e) = self.connect_device(&dev).await {
                tracing::warn!(dev_eui = %dev.dev_eui, "{e}");
            }
        }
        tracing::info!(
            devices = self.devices.len(),
            region = ns.settings.region.as_str(),
            "LoRaWAN network server started"
        );
        self.ns = Some(ns);
    }

    /// Connects a registered device to the core, subscribed to its `command/down`.
    async fn connect_device(&mut self, dev: &DeviceSettings) -> Result<(), ManageError> {
        let req = connect_request(format!("lorawan-{}", dev.dev_eui), None, None);
        // Every node of a cluster holds the device (any node may hear it): not claimed.
        let local = ConnectContext { node_local: true, ..Default::default() };
        let conn = match self.ctx.broker.connect_with(req, local).await {
            Ok(c) => Arc::new(c),
            Err(e) => return Err(ManageError::Refused(dev.dev_eui, e.to_string())),
        };
        let topic = events::command_topic(dev);
        if let Err(e) = conn.subscribe(&topic, SubOptions::default()).await {
            tracing::warn!(dev_eui = %dev.dev_eui, %topic, "LoRaWAN device could not subscribe to its commands: {e}");
        }
        let (events, stop, eui) = (self.events.clone(), self.shutdown.child_token(), dev.dev_eui);
        self.tracker.spawn(forward(
            conn.clone(),
            stop.clone(),
            move |_, payload| Event::DeviceCommand { dev_eui: eui, payload },
            events,
        ));
        self.devices.insert(dev.dev_eui, DeviceLink { conn, stop });
        Ok(())
    }

    async fn handle_event(&mut self, ev: Event) {
        match ev {
            Event::Datagram { socket, from, data } => self.datagram(socket, from, &data).await,
            Event::DeviceCommand { dev_eui, payload } => {
                if let Some(ns) = &mut self.ns {
                    match ns.enqueue(dev_eui, &payload) {
                        Ok(id) => tracing::debug!(%dev_eui, id, "LoRaWAN downlink queued"),
                        Err(e) => tracing::info!(%dev_eui, "{e}"),
                    }
                }
            }
            Event::GatewayCommand { gateway, topic, payload } => self.bridge_command(gateway, &topic, &payload).await,
        }
    }

    async fn send(&self, socket: usize, to: SocketAddr, p: &Packet) {
        let bytes = semtech::encode(p);
        self.ctx.broker.metrics().bytes_out(Protocol::Lorawan, bytes.len());
        if let Some(s) = self.sockets.get(socket)
            && let Err(e) = s.send_to(&bytes, to).await
        {
            tracing::debug!(peer = %to, "LoRaWAN UDP send failed: {e}");
        }
    }

    async fn datagram(&mut self, socket: usize, from: SocketAddr, data: &[u8]) {
        let c = &self.ctx.counters;
        bump(&c.datagrams);
        let packet = match semtech::decode(data) {
            Ok(p) => p,
            Err(e) => {
                bump(if e.is_unknown_version() { &c.unknown_version } else { &c.malformed });
                roost_core::peer_log!(INFO, "lorawan.malformed", from, peer = %from, "Semtech UDP datagram dropped: {e}");
                return;
            }
        };
        if let Packet::PushData { gateway, .. } | Packet::PullData { gateway, .. } | Packet::TxAck { gateway, .. } =
            &packet
        {
            self.trace_gateway(*gateway, from, Direction::In, &packet);
        }
        match packet {
            Packet::PushData { version, token, gateway, payload } => {
                let ack = Packet::PushAck { version, token };
                self.trace_gateway(gateway, from, Direction::Out, &ack);
                self.send(socket, from, &ack).await;
                if !self.touch(gateway, version, from).await {
                    return;
                }
                if let Some(g) = self.gateways.get_mut(&gateway) {
                    g.rx_frames += payload.rxpk.len() as u64;
                    if payload.stat.is_some() {
                        g.stat.clone_from(&payload.stat);
                    }
                }
                for rxpk in &payload.rxpk {
                    bump(&self.ctx.counters.frames);
                    self.frame(gateway, rxpk).await;
                }
                if let Some(stat) = &payload.stat
                    && self.ctx.settings.mode == Mode::Bridge
                {
                    let topic = bridge::topic(&self.ctx.settings.bridge.topic_prefix, gateway, "event/stats");
                    let body = match self.marshaler() {
                        Marshaler::Json => bridge::gateway_stats(gateway, stat, SystemTime::now()),
                        Marshaler::Protobuf => crate::gwpb::gateway_stats(gateway, stat, SystemTime::now()),
                    };
                    self.gateway_publish(gateway, topic, body, false).await;
                }
            }
            Packet::PullData { version, token, gateway } => {
                let ack = Packet::PullAck { version, token };
                self.trace_gateway(gateway, from, Direction::Out, &ack);
                self.send(socket, from, &ack).await;
                if self.touch(gateway, version, from).await
                    && let Some(g) = self.gateways.get_mut(&gateway)
                {
                    g.pull = Some((socket, from));
                }
            }
            Packet::TxAck { token, gateway, error, .. } => {
                let _ = self.touch(gateway, 2, from).await;
                self.tx_ack(token, gateway, error).await;
            }
            other => {
                bump(&c.unexpected);
                roost_core::peer_log!(INFO, "lorawan.unexpected", from, peer = %from, packet = other.name(), "Semtech UDP datagram a gateway does not send: dropped");
            }
        }
    }

    /// Writes a datagram of gateway `eui` (core client `lorawan-gw-{eui}`) to the running
    /// traces (one atomic load when none runs).
    fn trace_gateway(&self, eui: GatewayEui, peer: SocketAddr, direction: Direction, p: &Packet) {
        let tracer = self.ctx.broker.tracer();
        if tracer.is_active() {
            tracer.packet("lorawan", &format!("lorawan-gw-{eui}"), Some(peer), direction, None, p);
        }
    }

    fn marshaler(&self) -> Marshaler {
        self.ctx.settings.bridge.marshaler
    }

    fn conn_state(&self, eui: GatewayEui, online: bool) -> Vec<u8> {
        match self.marshaler() {
            Marshaler::Json => bridge::conn_state(eui, online),
            Marshaler::Protobuf => crate::gwpb::conn_state(eui, online),
        }
    }

    async fn gateway_publish(&self, eui: GatewayEui, topic: String, payload: Vec<u8>, retain: bool) {
        if let Some(conn) = self.gateways.get(&eui).and_then(|g| g.conn.as_ref()) {
            publish(conn, topic, payload, retain).await;
        }
    }

    async fn frame(&mut self, gateway: GatewayEui, rxpk: &Rxpk) {
        match self.ctx.settings.mode {
            Mode::NetworkServer => {
                if let Some(ns) = &mut self.ns {
                    ns.handle_rxpk(Instant::now().into_std(), gateway, rxpk);
                }
            }
            Mode::Bridge => {
                let Some(phy) = rxpk.payload() else {
                    bump(&self.ctx.counters.malformed);
                    roost_core::peer_log!(INFO, "lorawan.rxpk_not_base64", roost_core::peerlog::Source::Others, %gateway, "rxpk data is not base64: dropped");
                    return;
                };
                let topic = bridge::topic(&self.ctx.settings.bridge.topic_prefix, gateway, "event/up");
                let body = match self.marshaler() {
                    Marshaler::Json => bridge::uplink_frame(gateway, rxpk, &phy, rand::random(), SystemTime::now()),
                    Marshaler::Protobuf => {
                        crate::gwpb::uplink_frame(gateway, rxpk, &phy, rand::random(), SystemTime::now())
                    }
                };
                self.gateway_publish(gateway, topic, body, false).await;
            }
        }
    }

    async fn ns_timeout(&mut self) {
        let Some(ns) = &mut self.ns else { return };
        ns.trace = self.ctx.broker.tracer().is_active();
        ns.handle_timeout(Instant::now().into_std(), SystemTime::now(), &mut self.out);
        self.drain_outputs().await;
    }

    async fn drain_outputs(&mut self) {
        let outputs = std::mem::take(&mut self.out);
        for o in outputs {
            match o {
                Output::Publish { dev_eui, topic, payload } => match self.devices.get(&dev_eui) {
                    Some(link) => publish(&link.conn, topic, payload, false).await,
                    None => tracing::debug!(%dev_eui, "no core connection for the device: event dropped"),
                },
                Output::Persist { dev_eui, value } => {
                    self.dirty.insert(dev_eui, value);
                }
                Output::Transmit(t) => self.transmit(t).await,
                Output::Trace { dev_eui, gateway, text } => {
                    let peer = gateway.and_then(|g| self.gateways.get(&g)).map(|g| g.address);
                    self.ctx.broker.tracer().packet(
                        "lorawan",
                        &format!("lorawan-{dev_eui}"),
                        peer,
                        Direction::In,
                        None,
                        &format_args!("{text}"),
                    );
                }
            }
        }
    }

    /// Drops silent gateways (OFFLINE in bridge mode) and downlinks whose TX_ACK never came.
    async fn expire(&mut self) {
        let now = Instant::now();
        let timeout = self.ctx.settings.gateway_timeout;
        let stale: Vec<GatewayEui> =
            self.gateways.iter().filter(|(_, g)| now.duration_since(g.last_seen) >= timeout).map(|(e, _)| *e).collect();
        for eui in stale {
            let from = self.gateways.get(&eui).map(|g| g.address);
            roost_core::peer_log!(INFO, "lorawan.gateway_offline", from, gateway = %eui, "LoRaWAN gateway silent past lorawan.gateway_timeout: offline");
            self.drop_gateway(eui).await;
        }
        self.expire_downlinks(now).await;
    }

    /// Records every changed device state; recorded back to back, they share a commit.
    fn flush(&mut self) {
        for (dev_eui, value) in self.dirty.drain() {
            self.ctx.broker.record_blob(STORE_SPACE, dev_eui.to_string(), Some(Bytes::from(value)));
        }
    }

    async fn close(&mut self) {
        self.flush();
        let euis: Vec<GatewayEui> = self.gateways.keys().copied().collect();
        for eui in euis {
            self.drop_gateway(eui).await;
        }
        for (_, link) in self.devices.drain() {
            link.conn.disconnect(DisconnectReason::Shutdown).await;
        }
    }
}

fn connect_request(client_id: String, peer: Option<SocketAddr>, will: Option<Will>) -> ConnectRequest {
    ConnectRequest {
        client_id: ClientId::new(client_id),
        protocol: Protocol::Lorawan,
        peer,
        username: None,
        password: None,
        clean_start: true,
        keep_alive: 0,
        will,
        session_expiry: Some(Duration::ZERO),
        receive_maximum: u16::MAX,
    }
}

async fn publish(conn: &Connection, topic: String, payload: Vec<u8>, retain: bool) {
    if let Err(e) = conn.publish(Message::new(topic.as_str(), payload, QoS::AtMostOnce, retain)).await {
        tracing::info!(client_id = %conn.client_id(), %topic, "LoRaWAN publish refused: {e}");
    }
}

/// Hands a connection's deliveries to the driver until the broker closes it or shutdown.
async fn forward(
    conn: Arc<Connection>,
    shutdown: CancellationToken,
    make: impl Fn(Arc<str>, Bytes) -> Event + Send + 'static,
    events: mpsc::Sender<Event>,
) {
    loop {
        let d = tokio::select! {
            _ = shutdown.cancelled() => break,
            d = conn.next_delivery() => d,
        };
        match d {
            Delivery::Publish { id, pending, .. } => {
                if id != 0 {
                    conn.ack(id);
                }
                let ev = make(pending.message.topic.clone(), pending.message.payload.clone());
                if events.send(ev).await.is_err() {
                    break;
                }
            }
            Delivery::Release { id } => {
                conn.ack(id);
            }
            Delivery::Close(_) => break,
        }
    }
}
