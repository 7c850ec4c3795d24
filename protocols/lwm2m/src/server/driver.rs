//! The LwM2M driver: owns one UDP socket and the core connections of the devices
//! registered through it; feeds datagrams, core deliveries (MQTT commands) and time into
//! the sans-IO [`Server`], and carries out what it asks (datagrams, connect, publish,
//! close).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_coap::codec;
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

/// Where the driver's datagrams come from and go to: a plain UDP socket (5783), or the
/// DTLS dispatcher's decrypted stream (5784, see `roost_coap::dtls::serve_channels`).
pub enum Transport {
    Udp(UdpSocket),
    Dtls { rx: mpsc::Receiver<roost_coap::dtls::Plain>, tx: mpsc::Sender<(SocketAddr, bytes::Bytes)> },
}

impl Transport {
    /// The next datagram into `buf`, with the peer's DTLS identity (the username of its PSK
    /// identity or certificate); `None` when the transport is gone.
    async fn recv(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr, Option<String>)> {
        match self {
            Transport::Udp(s) => loop {
                match s.recv_from(buf).await {
                    Ok((n, peer)) => return Some((n, peer, None)),
                    Err(e) => tracing::debug!("LwM2M recv: {e}"),
                }
            },
            Transport::Dtls { rx, .. } => {
                let (peer, bytes, user) = rx.recv().await?;
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                Some((n, peer, user))
            }
        }
    }

    async fn send(&self, bytes: bytes::Bytes, to: SocketAddr) {
        match self {
            Transport::Udp(s) => {
                if let Err(e) = s.send_to(&bytes, to).await {
                    tracing::debug!(%to, "LwM2M send: {e}");
                }
            }
            Transport::Dtls { tx, .. } => {
                let _ = tx.send((to, bytes)).await;
            }
        }
    }
}

pub async fn serve(socket: UdpSocket, ctx: Arc<Context>, shutdown: CancellationToken, tracker: TaskTracker) {
    serve_transport(Transport::Udp(socket), ctx, shutdown, tracker).await;
}

pub async fn serve_transport(
    mut transport: Transport,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut server = Server::new(ctx.settings.clone(), ctx.kind_of.clone(), ctx.counters.clone(), rand::random());
    let (feed_tx, mut feed) = mpsc::channel::<Feed>(1024);
    // Core connects (auth may be an HTTP round trip) run in their own tasks: the socket loop
    // keeps serving every other device meanwhile.
    let (connected_tx, mut connected_rx) = mpsc::channel::<Connected>(256);
    let mut devices: HashMap<String, Device> = HashMap::new();
    let mut generation = 0u64;
    let mut buf = vec![0u8; codec::MAX_DATAGRAM];
    let (query_tx, mut queries) = mpsc::channel::<Query>(16);
    ctx.queries.lock().push(query_tx);
    let mut last_user: Option<(SocketAddr, String)> = None;
    loop {
        let wake = server.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(q) = queries.recv() => match q {
                Query::Devices(reply) => {
                    let now = Instant::now();
                    let list = server
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
                    let known = server.device(&ep).is_some();
                    if known {
                        server.handle_command(Instant::now(), &ep, &payload, None);
                    }
                    let _ = done.send(known);
                }
            },
            r = transport.recv(&mut buf) => match r {
                Some((n, peer, user)) => {
                    trace(&ctx, &server, peer, Direction::In, &buf[..n]);
                    // A Register is connected right below, as the user DTLS authenticated.
                    last_user = user.map(|u| (peer, u));
                    server.handle_datagram(Instant::now(), peer, &buf[..n]);
                }
                None => break,
            },
            Some((ep, g, d)) = feed.recv() => {
                let current = devices.get(&ep).filter(|d| d.generation == g).map(|d| d.conn.clone());
                match (d, current) {
                    (Delivery::Publish { id, pending, .. }, Some(conn)) => {
                        if id != 0 {
                            conn.ack(id);
                        }
                        let m = &pending.message;
                        let reply = m.properties.response_topic.clone().map(|t| (t, m.properties.correlation_data.clone()));
                        server.handle_command(Instant::now(), &ep, &m.payload, reply);
                    }
                    (Delivery::Release { id }, Some(conn)) => {
                        conn.ack(id);
                    }
                    (Delivery::Close(reason), Some(_)) => {
                        tracing::debug!(%ep, ?reason, "LwM2M device closed by the broker");
                        if let Some(d) = devices.remove(&ep) {
                            d.stop.cancel();
                        }
                        server.connection_closed(&ep);
                    }
                    _ => {}
                }
            }
            Some((ticket, ep, g, result)) = connected_rx.recv() => {
                let outcome = match result {
                    // A newer registration of the endpoint got its connection first: this one
                    // is stale (its Register is answered 5.03; the device has moved on).
                    Ok(conn) if devices.get(&ep).is_some_and(|d| d.generation > g) => {
                        conn.disconnect(DisconnectReason::Normal).await;
                        Err(Refusal::Unavailable)
                    }
                    Ok(conn) => {
                        let conn = Arc::new(conn);
                        let stop = shutdown.child_token();
                        tracker.spawn(forward(ep.clone(), g, conn.clone(), feed_tx.clone(), stop.clone()));
                        if let Some(old) = devices.insert(ep, Device { generation: g, conn, stop }) {
                            old.stop.cancel();
                        }
                        Ok(())
                    }
                    Err(r) => Err(r),
                };
                server.connected(Instant::now(), ticket, outcome);
            }
            _ = sleep_until(wake) => server.handle_timeout(Instant::now()),
        }
        loop {
            while let Some((to, bytes)) = server.poll_transmit() {
                trace(&ctx, &server, to, Direction::Out, &bytes);
                transport.send(bytes, to).await;
            }
            let Some(out) = server.poll_output() else { break };
            match out {
                Output::Connect { ticket, ep, peer, commands } => {
                    generation += 1;
                    let g = generation;
                    let user = last_user.as_ref().filter(|(p, _)| *p == peer).map(|(_, u)| u.clone());
                    if let Some(b) = &ctx.settings.bootstrap
                        && !b.identity_allows(&ep, user.as_deref())
                    {
                        tracing::warn!(%ep, %peer, user = user.as_deref(), "LwM2M registration refused: the endpoint has bootstrap credentials of its own ([[lwm2m.bootstrap.device]]) and must register over DTLS with them");
                        server.connected(Instant::now(), ticket, Err(Refusal::Forbidden));
                        continue;
                    }
                    let (ctx, done) = (ctx.clone(), connected_tx.clone());
                    tracker.spawn(async move {
                        let result = connect(&ctx.broker, &ep, peer, user, &commands).await;
                        if let Err(tokio::sync::mpsc::error::SendError((_, _, _, Ok(conn)))) =
                            done.send((ticket, ep, g, result)).await
                        {
                            // The driver stopped meanwhile (shutdown).
                            conn.disconnect(DisconnectReason::Shutdown).await;
                        }
                    });
                }
                Output::Publish { ep, topic, payload, correlation } => {
                    let Some(d) = devices.get(&ep) else { continue };
                    let mut m = Message::new(topic, payload, QoS::AtMostOnce, false);
                    m.properties.correlation_data = correlation;
                    if let Err(e) = d.conn.publish(m).await {
                        tracing::debug!(%ep, "LwM2M publish refused: {e}");
                    }
                }
                Output::Close { ep, reason } => {
                    if let Some(d) = devices.remove(&ep) {
                        d.stop.cancel();
                        d.conn.disconnect(reason).await;
                    }
                }
            }
        }
    }
    for (_, d) in devices.drain() {
        d.stop.cancel();
        d.conn.disconnect(DisconnectReason::Shutdown).await;
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
        tracing::info!(%ep, %peer, "LwM2M registration refused: {e}");
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
        tracing::info!(%ep, "LwM2M command topic {commands} refused: {e}");
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
