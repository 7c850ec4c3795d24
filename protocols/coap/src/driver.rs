//! Driver layer: one UDP socket per bound address, demultiplexing every CoAP device on it.
//! Sessions are keyed by identity (the client id): a request names its session with the
//! `clientid` query (or, connection-less without one, by its address), and empty messages
//! (ACK/RST to our notifications) by the address the session was last heard from. Each
//! session runs in a small task fed by a bounded channel. What needs no session
//! (`/.well-known/core`, unknown paths, requests for an unknown connection, malformed
//! datagrams) is answered here without state; nothing a peer sends can panic it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_core::trace::Direction;
use roost_core::{ClientId, Delivery, DisconnectReason, Protocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::resource::{self, Query, Route};
use crate::session::{self, Context, Counters, Session};

/// Datagrams queued for one session's task; beyond it they are dropped (the device retries).
const SESSION_QUEUE: usize = 16;
/// Addresses remembered per session for routing ACK/RST (a NAT may rebind several times).
const ADDRS_PER_SESSION: usize = 4;

/// Binds every configured address (shared by the UDP adapters).
pub use roost_core::udp::bind;

/// Where a session's datagrams go out. Plain UDP writes the socket; a secured transport
/// (DTLS) takes them through a channel to its record layer.
#[derive(Clone)]
pub enum Link {
    Udp(Arc<UdpSocket>),
    Channel(mpsc::Sender<(SocketAddr, Bytes)>),
}

impl Link {
    pub async fn send(&self, ctx: &Context, peer: SocketAddr, bytes: Bytes) {
        ctx.broker.metrics().bytes_out(Protocol::Coap, bytes.len());
        match self {
            Link::Udp(s) => {
                if let Err(e) = s.send_to(&bytes, peer).await {
                    tracing::debug!(peer = %peer, "CoAP send failed: {e}");
                }
            }
            Link::Channel(tx) => {
                let _ = tx.send((peer, bytes)).await;
            }
        }
    }
}

struct Entry {
    tx: mpsc::Sender<(SocketAddr, Packet)>,
    addrs: Vec<SocketAddr>,
}

/// The peer table of one socket (or one DTLS listener): sessions by key, keys by address.
pub struct Demux {
    ctx: Arc<Context>,
    link: Link,
    sessions: HashMap<String, Entry>,
    by_addr: HashMap<SocketAddr, String>,
    ended_tx: mpsc::UnboundedSender<String>,
    ended_rx: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Demux {
    pub fn new(ctx: Arc<Context>, link: Link, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        Demux { ctx, link, sessions: HashMap::new(), by_addr: HashMap::new(), ended_tx, ended_rx, shutdown, tracker }
    }

    /// Waits until a session task ends and forgets it.
    pub async fn reap(&mut self) {
        if let Some(key) = self.ended_rx.recv().await
            && self.sessions.get(&key).is_some_and(|e| e.tx.is_closed())
            && let Some(e) = self.sessions.remove(&key)
        {
            for a in e.addrs {
                if self.by_addr.get(&a) == Some(&key) {
                    self.by_addr.remove(&a);
                }
            }
            self.ctx.counters.sessions.fetch_sub(1, Relaxed);
        }
    }

    /// One datagram from `addr`. `identity` is the username a secured transport
    /// authenticated (DTLS PSK identity), which then names the session.
    pub async fn datagram(&mut self, addr: SocketAddr, bytes: &[u8], identity: Option<&str>) {
        self.ctx.broker.metrics().bytes_in(Protocol::Coap, bytes.len());
        let packet = match codec::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                Counters::bump(&self.ctx.counters.malformed);
                tracing::info!(peer = %addr, "malformed CoAP datagram: {e}");
                // §4.2: a CON we cannot process is rejected with RST; the rest is dropped.
                if let Some(h) = codec::raw_header(bytes)
                    && h.confirmable
                {
                    self.send_packet(addr, &codec::empty(MessageType::Reset, h.message_id)).await;
                }
                return;
            }
        };
        if !matches!(packet.header.code, MessageClass::Request(_)) {
            // Empty messages and responses belong to the exchange of the session last
            // heard at this address.
            if let Some(key) = self.by_addr.get(&addr).cloned() {
                self.forward(&key, addr, packet).await;
            } else if packet.header.get_type() == MessageType::Confirmable {
                // A ping or a CON response for nothing we know: RST (§4.2, §4.3).
                self.send_packet(addr, &codec::empty(MessageType::Reset, packet.header.message_id)).await;
            }
            return;
        }
        let route = resource::route(&packet);
        let method = resource::method(&packet).unwrap_or(RequestType::UnKnown);
        match route {
            Route::WellKnownCore => {
                self.answer(addr, &packet, session::well_known_core(method)).await;
                return;
            }
            Route::NotFound => {
                self.answer(addr, &packet, session::reply(ResponseType::NotFound)).await;
                return;
            }
            Route::BadPath => {
                self.answer(addr, &packet, session::diag(ResponseType::BadRequest, "Uri-Path is not UTF-8")).await;
                return;
            }
            Route::Ps(_) | Route::Connection => {}
        }
        let query = Query::of(&packet);
        let key = match (identity, &query.clientid) {
            (_, Some(id)) if !id.is_empty() => id.clone(),
            (Some(user), _) => user.to_string(),
            (None, _) if !self.ctx.settings.connection_required => format!("coap-{addr}"),
            (None, _) => {
                Counters::bump(&self.ctx.counters.unauthorized);
                let resp = session::diag(ResponseType::Unauthorized, "clientid and token required");
                self.answer(addr, &packet, resp).await;
                return;
            }
        };
        if self.sessions.contains_key(&key) {
            self.forward(&key, addr, packet).await;
            return;
        }
        let creates = route == Route::Connection && method == RequestType::Post
            || route != Route::Connection && (!self.ctx.settings.connection_required || identity.is_some());
        if !creates {
            Counters::bump(&self.ctx.counters.unauthorized);
            tracing::info!(peer = %addr, client_id = %key, "CoAP request for an unknown or expired connection refused");
            let resp = session::diag(ResponseType::Unauthorized, "unknown or expired connection");
            self.answer(addr, &packet, resp).await;
            return;
        }
        if self.ctx.counters.sessions.load(Relaxed) >= self.ctx.settings.max_sessions as u64 {
            Counters::bump(&self.ctx.counters.rejected_sessions);
            tracing::warn!(peer = %addr, "CoAP session refused: coap.max_sessions reached");
            let resp = session::diag(ResponseType::ServiceUnavailable, "too many devices");
            self.answer(addr, &packet, resp).await;
            return;
        }
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.sessions.insert(key.clone(), Entry { tx, addrs: Vec::new() });
        self.ctx.counters.sessions.fetch_add(1, Relaxed);
        let session = Session::new(
            self.ctx.clone(),
            ClientId::new(key.as_str()),
            addr,
            Instant::now().into_std(),
            rand::random(),
        )
        .with_transport_user(identity.map(str::to_string));
        self.tracker.spawn(run(
            session,
            key.clone(),
            self.link.clone(),
            rx,
            self.ended_tx.clone(),
            self.shutdown.clone(),
        ));
        self.forward(&key, addr, packet).await;
    }

    async fn forward(&mut self, key: &str, addr: SocketAddr, packet: Packet) {
        let Some(entry) = self.sessions.get_mut(key) else { return };
        match entry.tx.try_send((addr, packet)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                Counters::bump(&self.ctx.counters.busy_drops);
                tracing::debug!(peer = %addr, "CoAP session busy: datagram dropped");
                return;
            }
            Err(mpsc::error::TrySendError::Closed((_, packet))) => {
                // The session just ended: answer as if it never was.
                if packet.header.get_type() == MessageType::Confirmable {
                    let resp = session::diag(ResponseType::Unauthorized, "connection closed");
                    self.answer(addr, &packet, resp).await;
                }
                return;
            }
        }
        if !entry.addrs.contains(&addr) {
            if entry.addrs.len() >= ADDRS_PER_SESSION {
                let old = entry.addrs.remove(0);
                if self.by_addr.get(&old).map(String::as_str) == Some(key) {
                    self.by_addr.remove(&old);
                }
            }
            entry.addrs.push(addr);
        }
        self.by_addr.insert(addr, key.to_string());
    }

    /// A stateless answer (no session, so no deduplication: these are idempotent).
    async fn answer(&self, addr: SocketAddr, req: &Packet, mut resp: Packet) {
        resp.set_token(req.get_token().to_vec());
        if req.header.get_type() == MessageType::Confirmable {
            resp.header.set_type(MessageType::Acknowledgement);
            resp.header.message_id = req.header.message_id;
        } else {
            resp.header.set_type(MessageType::NonConfirmable);
            resp.header.message_id = rand::random();
        }
        self.send_packet(addr, &resp).await;
    }

    async fn send_packet(&self, addr: SocketAddr, p: &Packet) {
        match codec::encode(p) {
            Ok(b) => self.link.send(&self.ctx, addr, Bytes::from(b)).await,
            Err(e) => tracing::warn!(peer = %addr, "{e}"),
        }
    }
}

/// Serves one plain-UDP socket until `shutdown`.
pub async fn serve(socket: UdpSocket, ctx: Arc<Context>, shutdown: CancellationToken, tracker: TaskTracker) {
    let socket = Arc::new(socket);
    let mut demux = Demux::new(ctx, Link::Udp(socket.clone()), shutdown.clone(), tracker);
    let mut buf = vec![0u8; codec::MAX_DATAGRAM];
    loop {
        let (n, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = demux.reap() => continue,
            // Unconstrained: see the MQTT-SN driver (yield only when the socket is empty).
            r = tokio::task::unconstrained(socket.recv_from(&mut buf)) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("CoAP recv: {e}");
                    continue;
                }
            },
        };
        demux.datagram(addr, &buf[..n], None).await;
    }
}

enum Event {
    Datagram(SocketAddr, Packet),
    Delivery(Delivery),
    Timeout,
    Shutdown,
}

async fn run(
    mut session: Session,
    key: String,
    link: Link,
    mut rx: mpsc::Receiver<(SocketAddr, Packet)>,
    ended: mpsc::UnboundedSender<String>,
    shutdown: CancellationToken,
) {
    let ctx = session_ctx(&session);
    loop {
        let deadline = session.poll_timeout();
        let conn = session.connection().cloned();
        let event = tokio::select! {
            m = rx.recv() => match m {
                Some((a, p)) => Event::Datagram(a, p),
                None => break,
            },
            d = async { match &conn { Some(c) => c.next_delivery().await, None => std::future::pending().await } } => Event::Delivery(d),
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await, None => std::future::pending().await } } => Event::Timeout,
            _ = shutdown.cancelled() => Event::Shutdown,
        };
        drop(conn);
        let now = Instant::now().into_std();
        match event {
            Event::Datagram(a, p) => {
                trace(&ctx, session.client_id(), a, Direction::In, &p);
                session.handle_packet(now, a, p).await;
            }
            Event::Delivery(d) => session.handle_delivery(now, d).await,
            Event::Timeout => session.handle_timeout(now).await,
            Event::Shutdown => session.close(DisconnectReason::Shutdown, "shutdown").await,
        }
        while let Some((peer, bytes)) = session.poll_transmit() {
            if ctx.broker.tracer().is_active()
                && let Ok(p) = codec::decode(&bytes)
            {
                trace(&ctx, session.client_id(), peer, Direction::Out, &p);
            }
            link.send(&ctx, peer, bytes).await;
        }
        if let Some(end) = session.ended() {
            tracing::debug!(client_id = %session.client_id(), why = %end.why, "CoAP session ended");
            break;
        }
    }
    // Answer nothing more: requests still queued are retried by the device and then meet
    // an unknown connection.
    session.close(DisconnectReason::Abnormal, "task ended").await;
    rx.close();
    let _ = ended.send(key);
}

fn session_ctx(s: &Session) -> Arc<Context> {
    s.context()
}

/// Writes a session's message to the traces following its client id (one atomic load when
/// no trace runs).
fn trace(ctx: &Context, client_id: &ClientId, peer: SocketAddr, direction: Direction, p: &Packet) {
    let tracer = ctx.broker.tracer();
    if tracer.is_active() {
        tracer.packet("coap", client_id.as_str(), Some(peer), direction, None, &Summary(p));
    }
}

/// A CoAP message in one trace line: type, code, message id, token, options (RFC 7252 §5.10
/// formats: string options as text, uint options as numbers, the rest hex) and the payload's
/// length.
pub struct Summary<'a>(pub &'a Packet);

impl fmt::Debug for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        let kind = match p.header.get_type() {
            MessageType::Confirmable => "CON",
            MessageType::NonConfirmable => "NON",
            MessageType::Acknowledgement => "ACK",
            MessageType::Reset => "RST",
        };
        write!(
            f,
            "{kind} {} ({:?}) mid={} token={}",
            p.header.code,
            p.header.code,
            p.header.message_id,
            hex(p.get_token())
        )?;
        for (number, values) in p.options() {
            let name = coap_lite::CoapOption::from(*number);
            for v in values {
                match number {
                    // Uri-Host, Location-Path, Uri-Path, Uri-Query, Location-Query, Proxy-Uri, Proxy-Scheme
                    3 | 8 | 11 | 15 | 20 | 35 | 39 => write!(f, " {name:?}={:?}", String::from_utf8_lossy(v))?,
                    // Observe, Uri-Port, Content-Format, Max-Age, Accept, Block2, Block1, Size2, Size1, No-Response
                    6 | 7 | 12 | 14 | 17 | 23 | 27 | 28 | 60 | 258 if v.len() <= 4 => {
                        write!(f, " {name:?}={}", v.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)))?
                    }
                    _ => write!(f, " {name:?}=0x{}", hex(v))?,
                }
            }
        }
        write!(f, " payload={}B", p.payload.len())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
