//! Driver layer: one UDP socket per bound address (or one DTLS listener's decrypted stream),
//! demultiplexing every CoAP device on it through the shared datagram engine
//! ([`roost_core::datagram`]). Sessions are keyed by identity (the client id): a request
//! names its session with the `clientid` query (or the DTLS identity, or, connection-less
//! without one, its address), and empty messages (ACK/RST to our notifications) by the
//! address the session was last heard from. What needs no session (`/.well-known/core`,
//! unknown paths, requests for an unknown connection, malformed datagrams) is answered here
//! without state; nothing a peer sends can panic it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use coap_lite::{MessageClass, MessageType, Packet, RequestType, ResponseType};
use roost_core::datagram::{self, DatagramSession, Dispatch, End, Endpoint, Outbound};
use roost_core::trace::Direction;
use roost_core::{ClientId, Connection, Delivery, DisconnectReason, Protocol};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec;
use crate::resource::{self, Query, Route};
use crate::session::{self, Context, Counters, Session};

/// Datagrams queued for one session; beyond it they are dropped (the device retries).
const SESSION_QUEUE: usize = 16;
/// Addresses remembered per session for routing ACK/RST (a NAT may rebind several times).
const ADDRS_PER_SESSION: usize = 4;

/// Binds every configured address (shared by the UDP adapters).
pub use roost_core::udp::bind;

/// The CoAP side of one listener: stateless answers, and the engine's device table keyed by
/// identity, whose sessions send through `out` (the socket, or DTLS's record layer).
pub struct Demux<O> {
    ctx: Arc<Context>,
    out: Arc<O>,
    devices: datagram::Demux<String, (SocketAddr, Packet)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl<O: Outbound> Demux<O> {
    pub fn new(ctx: Arc<Context>, out: Arc<O>, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        let devices = datagram::Demux::new(SESSION_QUEUE).with_peers(ADDRS_PER_SESSION);
        Demux { ctx, out, devices, shutdown, tracker }
    }

    /// One datagram from `addr`. `identity` is the username a secured transport
    /// authenticated (DTLS PSK identity), which then names the session.
    pub async fn datagram(&self, addr: SocketAddr, bytes: &[u8], identity: Option<&str>) {
        self.ctx.broker.metrics().bytes_in(Protocol::Coap, bytes.len());
        let packet = match codec::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                Counters::bump(&self.ctx.counters.malformed);
                roost_core::peer_log!(INFO, "coap.malformed", addr, peer = %addr, "malformed CoAP datagram: {e}");
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
            let packet = match self.devices.key_of(&addr) {
                Some(key) => match self.forward(&key, addr, packet) {
                    Some(p) => p,
                    None => return,
                },
                None => packet,
            };
            if packet.header.get_type() == MessageType::Confirmable {
                // A ping or a CON response for nothing we know: RST (§4.2, §4.3).
                self.send_packet(addr, &codec::empty(MessageType::Reset, packet.header.message_id)).await;
            }
            return;
        }
        let route = resource::route(&packet);
        let method = resource::method(&packet).unwrap_or(RequestType::UnKnown);
        let stateless = match route {
            Route::WellKnownCore => Some(session::well_known_core(method)),
            Route::NotFound => Some(session::reply(ResponseType::NotFound)),
            Route::BadPath => Some(session::diag(ResponseType::BadRequest, "Uri-Path is not UTF-8")),
            Route::Ps(_) | Route::Connection => None,
        };
        if let Some(resp) = stateless {
            self.answer(addr, &packet, resp).await;
            return;
        }
        let Some(key) = self.key(addr, &packet, identity) else {
            Counters::bump(&self.ctx.counters.unauthorized);
            let resp = session::diag(ResponseType::Unauthorized, "clientid and token required");
            self.answer(addr, &packet, resp).await;
            return;
        };
        let Some(packet) = self.forward(&key, addr, packet) else { return };
        let creates = route == Route::Connection && method == RequestType::Post
            || route != Route::Connection && (!self.ctx.settings.connection_required || identity.is_some());
        if !creates {
            Counters::bump(&self.ctx.counters.unauthorized);
            roost_core::peer_log!(INFO, "coap.unknown_connection", addr, peer = %addr, client_id = %key, "CoAP request for an unknown or expired connection refused");
            let resp = session::diag(ResponseType::Unauthorized, "unknown or expired connection");
            self.answer(addr, &packet, resp).await;
            return;
        }
        if self.ctx.counters.sessions.load(Relaxed) >= self.ctx.settings.max_sessions as u64 {
            Counters::bump(&self.ctx.counters.rejected_sessions);
            roost_core::peer_log!(WARN, "coap.max_sessions", addr, peer = %addr, "CoAP session refused: coap.max_sessions reached");
            let resp = session::diag(ResponseType::ServiceUnavailable, "too many devices");
            self.answer(addr, &packet, resp).await;
            return;
        }
        self.ctx.counters.sessions.fetch_add(1, Relaxed);
        let session = Session::new(self.ctx.clone(), ClientId::new(key.as_str()), addr, Instant::now(), rand::random())
            .with_transport_user(identity.map(str::to_string));
        let (shutdown, out) = (self.shutdown.clone(), self.out.clone());
        self.devices.spawn(key.clone(), (addr, packet), CoapDevice(session), out, shutdown, &self.tracker);
        self.devices.remember(&key, addr);
    }

    /// The session a request names: its `clientid`, else the DTLS identity, else (when
    /// connections are optional) its address; `None` when it must name one and does not.
    fn key(&self, addr: SocketAddr, packet: &Packet, identity: Option<&str>) -> Option<String> {
        match (identity, Query::of(packet).clientid) {
            (_, Some(id)) if !id.is_empty() => Some(id),
            (Some(user), _) => Some(user.to_string()),
            (None, _) if !self.ctx.settings.connection_required => Some(format!("coap-{addr}")),
            (None, _) => None,
        }
    }

    /// Hands `packet` to the session of `key`; gives it back when no session runs for it.
    fn forward(&self, key: &String, addr: SocketAddr, packet: Packet) -> Option<Packet> {
        match self.devices.dispatch(key, (addr, packet)) {
            Dispatch::Queued => self.devices.remember(key, addr),
            Dispatch::Busy(_) => {
                Counters::bump(&self.ctx.counters.busy_drops);
                tracing::debug!(peer = %addr, "CoAP session busy: datagram dropped");
            }
            Dispatch::Unknown((_, packet)) => return Some(packet),
        }
        None
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
            Ok(b) => {
                self.ctx.broker.metrics().bytes_out(Protocol::Coap, b.len());
                self.out.transmit(Bytes::from(b), addr).await;
            }
            Err(e) => roost_core::peer_log!(WARN, "coap.unencodable", addr, peer = %addr, "{e}"),
        }
    }
}

/// Serves one listener (a UDP socket: `Endpoint::udp(socket, codec::MAX_DATAGRAM)`, or
/// DTLS's decrypted stream) until `shutdown`, or until a secured transport's stream ends.
pub async fn serve<O: Outbound>(
    endpoint: Endpoint<O>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let Endpoint { mut inbound, out } = endpoint;
    let demux = Demux::new(ctx, out, shutdown.clone(), tracker);
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = inbound.recv() => r,
        };
        let Some((addr, bytes, identity)) = received else { break };
        demux.datagram(addr, bytes, identity.as_deref()).await;
    }
}

/// A CoAP session as the datagram engine drives it; traces what it receives and sends.
struct CoapDevice(Session);

impl CoapDevice {
    /// After each step: the registry's view follows the session.
    fn ended(&mut self) -> Result<(), End> {
        self.0.sync_view();
        match self.0.ended() {
            Some(end) => Err(end.clone()),
            None => Ok(()),
        }
    }
}

impl DatagramSession for CoapDevice {
    type Input = (SocketAddr, Packet);

    fn connection(&self) -> Option<&Connection> {
        self.0.connection().map(|c| &**c)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    async fn handle_datagram(&mut self, now: Instant, (peer, packet): (SocketAddr, Packet)) -> Result<(), End> {
        trace(&self.0.context(), self.0.client_id(), peer, Direction::In, &packet);
        self.0.handle_packet(now, peer, packet).await;
        self.ended()
    }

    async fn handle_delivery(&mut self, now: Instant, delivery: Delivery) -> Result<(), End> {
        self.0.handle_delivery(now, delivery).await;
        self.ended()
    }

    async fn handle_timeout(&mut self, now: Instant) -> Result<(), End> {
        self.0.handle_timeout(now).await;
        self.ended()
    }

    async fn handle_shutdown(&mut self) -> End {
        self.0.close(DisconnectReason::Shutdown, "shutdown").await;
        self.ended().err().unwrap_or_else(|| End::new(DisconnectReason::Shutdown, "shutdown"))
    }

    fn poll_transmit(&mut self) -> Option<(Bytes, SocketAddr)> {
        let (peer, bytes) = self.0.poll_transmit()?;
        let ctx = self.0.context();
        if ctx.broker.tracer().is_active()
            && let Ok(p) = codec::decode(&bytes)
        {
            trace(&ctx, self.0.client_id(), peer, Direction::Out, &p);
        }
        ctx.broker.metrics().bytes_out(Protocol::Coap, bytes.len());
        Some((bytes, peer))
    }

    async fn finish(mut self, end: End) {
        tracing::debug!(client_id = %self.0.client_id(), why = %end.why, "CoAP session ended");
        // Answer nothing more: requests still queued are retried by the device and then meet
        // an unknown connection.
        self.0.close(DisconnectReason::Abnormal, "task ended").await;
        self.0.withdraw_view();
        self.0.context().counters.sessions.fetch_sub(1, Relaxed);
    }
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
