//! The LwM2M driver: owns one listener (a UDP socket, or DTLS's decrypted stream, read and
//! written through the datagram engine's [`Inbound`] / [`Outbound`]) and the core
//! connections of the devices registered through it; feeds datagrams, core deliveries (MQTT
//! commands) and time (the engine's one timer, [`sleep_until`]) into the sans-IO
//! [`Server`] — a socket-wide state machine keeping devices as records in a table with one
//! timer set — and carries out what it asks (datagrams, connect, publish, close).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_coap::codec;
use roost_core::datagram::{Endpoint, Outbound, sleep_until};
use roost_core::trace::Direction;
use roost_core::{
    Broker, ClientId, ConnectError, ConnectRequest, Connection, Delivery, DisconnectReason, Message, Protocol, QoS,
    SubOptions,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::engine::{Counters, KindOf, Output, Refusal, Server};
use super::settings::Lwm2mSettings;

/// What every socket of one gateway shares.
pub struct Context {
    pub broker: Broker,
    pub settings: Arc<Lwm2mSettings>,
    /// Resource types from the object definitions.
    pub kind_of: KindOf,
    pub counters: Arc<Counters>,
    /// One sender per running driver (socket), for the management API.
    queries: parking_lot::Mutex<Vec<mpsc::Sender<Query>>>,
}

/// A registered device as the management API shows it.
#[derive(Debug, Clone)]
pub struct DeviceView {
    pub registration_id: String,
    pub info: super::engine::RegInfo,
    pub peer: SocketAddr,
    /// Since the last Register or Update.
    pub since_update: Duration,
    pub queued: usize,
    pub observed: usize,
}

/// What the management API asks a driver.
enum Query {
    Devices(tokio::sync::oneshot::Sender<Vec<DeviceView>>),
    /// An EMQX-style JSON command, as if published on the device's command topic; answers
    /// whether the endpoint is registered on this socket.
    Command {
        ep: String,
        payload: Vec<u8>,
        done: tokio::sync::oneshot::Sender<bool>,
    },
}

/// A driver that does not answer within this is skipped.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

impl Context {
    pub fn new(broker: Broker, settings: Lwm2mSettings, kind_of: KindOf) -> Arc<Context> {
        Arc::new(Context {
            broker,
            settings: Arc::new(settings),
            kind_of,
            counters: Arc::new(Counters::default()),
            queries: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn drivers(&self) -> Vec<mpsc::Sender<Query>> {
        let mut q = self.queries.lock();
        q.retain(|s| !s.is_closed());
        q.clone()
    }

    /// Every registered device, sorted by endpoint name.
    pub async fn devices(&self) -> Vec<DeviceView> {
        let mut all = Vec::new();
        for d in self.drivers() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if d.send(Query::Devices(tx)).await.is_ok()
                && let Ok(Ok(list)) = tokio::time::timeout(QUERY_TIMEOUT, rx).await
            {
                all.extend(list);
            }
        }
        all.sort_by(|a, b| a.info.ep.cmp(&b.info.ep));
        all
    }

    /// Hands `payload` (a JSON command) to the device `ep`, whose result is published on its
    /// response topic like that of a command from MQTT. `false` when `ep` is not registered.
    pub async fn command(&self, ep: &str, payload: &[u8]) -> bool {
        for d in self.drivers() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let q = Query::Command { ep: ep.to_string(), payload: payload.to_vec(), done: tx };
            if d.send(q).await.is_ok() && matches!(tokio::time::timeout(QUERY_TIMEOUT, rx).await, Ok(Ok(true))) {
                return true;
            }
        }
        false
    }
}

/// Writes a datagram to the traces following its device's endpoint (one atomic load when
/// no trace runs).
fn trace(ctx: &Context, server: &Server, peer: SocketAddr, direction: Direction, bytes: &[u8]) {
    let tracer = ctx.broker.tracer();
    if !tracer.is_active() {
        return;
    }
    let Ok(p) = codec::decode(bytes) else { return };
    // A Register names its endpoint before the registration exists.
    let registering = || codec::uri_query(&p).into_iter().find(|(k, _)| k == "ep").map(|(_, v)| v);
    let ep = server.endpoint_at(peer).map(str::to_string).or_else(registering);
    if let Some(ep) = ep {
        tracer.packet("lwm2m", &ep, Some(peer), direction, None, &roost_coap::driver::Summary(&p));
    }
}

/// Binds the registration sockets (an empty list binds none).
pub fn bind(addrs: &[SocketAddr], recv_buffer: usize) -> std::io::Result<Vec<UdpSocket>> {
    roost_core::udp::bind(addrs, recv_buffer)
}

struct Device {
    generation: u64,
    conn: Arc<Connection>,
    stop: CancellationToken,
}

/// Deliveries from the devices' core connections, tagged with the endpoint and the
/// connection's generation (a re-registered endpoint has a new one).
type Feed = (String, u64, Delivery);

/// A finished core connect: ticket, endpoint, generation and the connection or refusal.
type Connected = (u64, String, u64, Result<Connection, Refusal>);

/// Serves one listener until `shutdown` (or until a secured transport's stream ends): a UDP
/// socket on 5783 (`Endpoint::udp(socket, codec::MAX_DATAGRAM)`), or the DTLS dispatcher's
/// decrypted stream on 5784 (see `roost_coap::dtls::serve_channels`).
pub async fn serve<O: Outbound>(
    endpoint: Endpoint<O>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let Endpoint { mut inbound, out } = endpoint;
    let (feed_tx, mut feed) = mpsc::channel::<Feed>(1024);
    // Core connects (auth may be an HTTP round trip) run in their own tasks: the socket loop
    // keeps serving every other device meanwhile.
    let (connected_tx, mut connected) = mpsc::channel::<Connected>(256);
    let (query_tx, mut queries) = mpsc::channel::<Query>(16);
    ctx.queries.lock().push(query_tx);
    let server = Server::new(ctx.settings.clone(), ctx.kind_of.clone(), ctx.counters.clone(), rand::random());
    let mut d = Driver {
        ctx,
        out,
        server,
        devices: HashMap::new(),
        generation: 0,
        last_user: None,
        feed_tx,
        connected_tx,
        shutdown: shutdown.clone(),
        tracker,
    };
    loop {
        let wake = d.server.poll_timeout();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(q) = queries.recv() => d.answer(q),
            r = inbound.recv() => match r {
                Some((peer, bytes, user)) => d.datagram(peer, bytes, user),
                None => break,
            },
            Some(f) = feed.recv() => d.delivery(f).await,
            Some(c) = connected.recv() => d.connected(c).await,
            _ = sleep_until(wake) => d.server.handle_timeout(Instant::now()),
        }
        d.flush().await;
    }
    for (_, dev) in d.devices.drain() {
        dev.stop.cancel();
        dev.conn.disconnect(DisconnectReason::Shutdown).await;
    }
}

/// One socket's driver: the sans-IO [`Server`] and the core connections of its devices.
struct Driver<O> {
    ctx: Arc<Context>,
    out: Arc<O>,
    server: Server,
    devices: HashMap<String, Device>,
    generation: u64,
    /// The DTLS identity of the last datagram's sender: a Register is connected as it.
    last_user: Option<(SocketAddr, String)>,
    feed_tx: mpsc::Sender<Feed>,
    connected_tx: mpsc::Sender<Connected>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl<O: Outbound> Driver<O> {
    fn answer(&mut self, q: Query) {
        match q {
            Query::Devices(reply) => {
                let now = Instant::now();
                let list = self
                    .server
                    .devices()
                    .map(|d| DeviceView {
                        registration_id: d.id.clone(),
                        info: d.info.clone(),
                        peer: d.peer,
                        since_update: now.saturating_duration_since(d.last_update),
                        queued: d.queued(),
                        observed: d.observed(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Query::Command { ep, payload, done } => {
                let known = self.server.device(&ep).is_some();
                if known {
                    self.server.handle_command(Instant::now(), &ep, &payload, None);
                }
                let _ = done.send(known);
            }
        }
    }

    fn datagram(&mut self, peer: SocketAddr, bytes: &[u8], user: Option<String>) {
        trace(&self.ctx, &self.server, peer, Direction::In, bytes);
        // A Register is connected right below, as the user DTLS authenticated.
        self.last_user = user.map(|u| (peer, u));
        self.server.handle_datagram(Instant::now(), peer, bytes);
    }

    /// A delivery from one device's core connection: a command, or the broker closing it.
    async fn delivery(&mut self, (ep, g, d): Feed) {
        let current = self.devices.get(&ep).filter(|d| d.generation == g).map(|d| d.conn.clone());
        let Some(conn) = current else { return };
        match d {
            Delivery::Publish { id, pending, .. } => {
                if id != 0 {
                    conn.ack(id);
                }
                let m = &pending.message;
                let reply = m.properties.response_topic.clone().map(|t| (t, m.properties.correlation_data.clone()));
                self.server.handle_command(Instant::now(), &ep, &m.payload, reply);
            }
            Delivery::Release { id } => {
                conn.ack(id);
            }
            Delivery::Close(reason) => {
                tracing::debug!(%ep, ?reason, "LwM2M device closed by the broker");
                if let Some(d) = self.devices.remove(&ep) {
                    d.stop.cancel();
                }
                self.server.connection_closed(&ep);
            }
        }
    }

    /// A core connect finished: the device's registration is answered.
    async fn connected(&mut self, (ticket, ep, g, result): Connected) {
        let outcome = match result {
            // A newer registration of the endpoint got its connection first: this one is
            // stale (its Register is answered 5.03; the device has moved on).
            Ok(conn) if self.devices.get(&ep).is_some_and(|d| d.generation > g) => {
                conn.disconnect(DisconnectReason::Normal).await;
                Err(Refusal::Unavailable)
            }
            Ok(conn) => {
                let conn = Arc::new(conn);
                let stop = self.shutdown.child_token();
                self.tracker.spawn(forward(ep.clone(), g, conn.clone(), self.feed_tx.clone(), stop.clone()));
                if let Some(old) = self.devices.insert(ep, Device { generation: g, conn, stop }) {
                    old.stop.cancel();
                }
                Ok(())
            }
            Err(r) => Err(r),
        };
        self.server.connected(Instant::now(), ticket, outcome);
    }

    /// Carries out what the server asks: datagrams, then connects, publishes and closes,
    /// until it asks nothing more.
    async fn flush(&mut self) {
        loop {
            while let Some((to, bytes)) = self.server.poll_transmit() {
                trace(&self.ctx, &self.server, to, Direction::Out, &bytes);
                self.out.transmit(bytes, to).await;
            }
            let Some(out) = self.server.poll_output() else { break };
            match out {
                Output::Connect { ticket, ep, peer, commands } => self.connect(ticket, ep, peer, commands),
                Output::Publish { ep, topic, payload, correlation } => {
                    let Some(d) = self.devices.get(&ep) else { continue };
                    let mut m = Message::new(topic, payload, QoS::AtMostOnce, false);
                    m.properties.correlation_data = correlation;
                    if let Err(e) = d.conn.publish(m).await {
                        tracing::debug!(%ep, "LwM2M publish refused: {e}");
                    }
                }
                Output::Close { ep, reason } => {
                    if let Some(d) = self.devices.remove(&ep) {
                        d.stop.cancel();
                        d.conn.disconnect(reason).await;
                    }
                }
            }
        }
    }

    /// Starts the core connect of a registering device, in its own task.
    fn connect(&mut self, ticket: u64, ep: String, peer: SocketAddr, commands: String) {
        self.generation += 1;
        let g = self.generation;
        let user = self.last_user.as_ref().filter(|(p, _)| *p == peer).map(|(_, u)| u.clone());
        if let Some(b) = &self.ctx.settings.bootstrap
            && !b.identity_allows(&ep, user.as_deref())
        {
            roost_core::peer_log!(WARN, "lwm2m.needs_dtls", peer, %ep, %peer, user = user.as_deref(), "LwM2M registration refused: the endpoint has bootstrap credentials of its own ([[lwm2m.bootstrap.device]]) and must register over DTLS with them");
            self.server.connected(Instant::now(), ticket, Err(Refusal::Forbidden));
            return;
        }
        let (ctx, done) = (self.ctx.clone(), self.connected_tx.clone());
        self.tracker.spawn(async move {
            let result = connect(&ctx.broker, &ep, peer, user, &commands).await;
            if let Err(mpsc::error::SendError((_, _, _, Ok(conn)))) = done.send((ticket, ep, g, result)).await {
                // The driver stopped meanwhile (shutdown).
                conn.disconnect(DisconnectReason::Shutdown).await;
            }
        });
    }
}

/// Connects endpoint `ep` to the core and subscribes its command topic.
/// `user`: the username of the device's DTLS identity, for auth and ACL (`%u`).
async fn connect(
    broker: &Broker,
    ep: &str,
    peer: SocketAddr,
    user: Option<String>,
    commands: &str,
) -> Result<Connection, Refusal> {
    let req = ConnectRequest {
        client_id: ClientId::new(ep),
        protocol: Protocol::Lwm2m,
        peer: Some(peer),
        username: user,
        password: None,
        clean_start: true,
        keep_alive: 0,
        will: None,
        session_expiry: Some(Duration::ZERO),
        receive_maximum: u16::MAX,
    };
    let conn = broker.connect(req).await.map_err(|e| {
        roost_core::peer_log!(INFO, "lwm2m.registration_refused", peer, %ep, %peer, "LwM2M registration refused: {e}");
        match e {
            ConnectError::BadCredentials | ConnectError::NotAuthorized => Refusal::Forbidden,
            ConnectError::ServerBusy | ConnectError::ShuttingDown => Refusal::Unavailable,
        }
    })?;
    // No Local: what the device itself publishes (results, events) never comes back as a command.
    let options = SubOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: false,
        retain_handling: 2,
        subscription_id: None,
    };
    if let Err(e) = conn.subscribe(commands, options).await {
        roost_core::peer_log!(INFO, "lwm2m.command_topic_refused", roost_core::peerlog::Source::Others, %ep, "LwM2M command topic {commands} refused: {e}");
        conn.disconnect(DisconnectReason::Normal).await;
        return Err(Refusal::Forbidden);
    }
    Ok(conn)
}

/// Carries one connection's deliveries to the driver until it closes or is replaced.
async fn forward(
    ep: String,
    generation: u64,
    conn: Arc<Connection>,
    feed: mpsc::Sender<Feed>,
    stop: CancellationToken,
) {
    loop {
        let d = tokio::select! {
            _ = stop.cancelled() => return,
            d = conn.next_delivery() => d,
        };
        let close = matches!(d, Delivery::Close(_));
        if feed.send((ep.clone(), generation, d)).await.is_err() || close {
            return;
        }
    }
}
