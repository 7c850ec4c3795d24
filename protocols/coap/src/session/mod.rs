//! Session layer: one CoAP device, keyed by its identity (client id, with the token from
//! `/mqtt/connection`), not by its UDP address, so a device behind a NAT whose source port
//! changes keeps its session and observations: a request with a valid token from a new
//! address takes the session over (and notifications follow it).
//!
//! Requests come in through [`Session::handle_packet`], core deliveries through
//! [`Session::handle_delivery`], time through [`Session::handle_timeout`] at
//! [`Session::poll_timeout`]; datagrams to send come out of [`Session::poll_transmit`].
//! It owns no socket and takes time as a parameter. It is async only where it calls the
//! core (connect, publish, subscribe).

mod observe;
mod ps;
pub mod registry;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coap_lite::{CoapOption, MessageClass, Packet, RequestType, ResponseType};
use roost_core::{Broker, ClientId, ConnectError, ConnectRequest, Connection, Delivery, DisconnectReason, Protocol};

use crate::block::Assemblies;
use crate::codec;
use crate::message::{MessageLayer, Received};
use crate::resource::{self, Query, Route};
use crate::settings::CoapSettings;

pub use observe::Observers;
pub use registry::{ObservationView, Registry, SessionView};

/// What every session of one gateway shares.
pub struct Context {
    pub broker: Broker,
    pub settings: CoapSettings,
    pub counters: Counters,
    /// The sessions as the management API lists them.
    pub registry: Registry,
}

impl Context {
    pub fn new(broker: Broker, settings: CoapSettings) -> Arc<Context> {
        Arc::new(Context { broker, settings, counters: Counters::default(), registry: Registry::default() })
    }

    pub(crate) fn mount(&self, topic: &str) -> String {
        format!("{}{topic}", self.settings.mountpoint)
    }
}

/// CoAP adapter counters (wire-level events the core cannot see).
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams that did not parse (RST sent for a CON, else dropped).
    pub malformed: AtomicU64,
    /// Repeated CON/NON answered from the cache (or ignored).
    pub duplicates: AtomicU64,
    pub retransmits: AtomicU64,
    /// Notifications dropped from a full observer queue (the newest are kept).
    pub notify_dropped: AtomicU64,
    /// Observers removed because a notification was reset or timed out.
    pub observers_lost: AtomicU64,
    /// New sessions refused at `max_sessions`.
    pub rejected_sessions: AtomicU64,
    /// Datagrams dropped because the session's task had a full queue.
    pub busy_drops: AtomicU64,
    /// Requests refused with 4.01 (bad or expired token, bad credentials).
    pub unauthorized: AtomicU64,
    /// Sessions now (a gauge).
    pub sessions: AtomicU64,
    /// Observations now (a gauge).
    pub observers: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// The session is over; the driver forgets it (the datagram engine's one `End`).
pub use roost_core::datagram::End;

pub struct Session {
    ctx: Arc<Context>,
    client_id: ClientId,
    /// Where the device was last heard from; notifications go there.
    peer: SocketAddr,
    conn: Option<Arc<Connection>>,
    /// Set by `POST /mqtt/connection`; every later request must carry it.
    token: Option<String>,
    /// Username fixed by the transport (a DTLS PSK identity), overriding the query's.
    transport_user: Option<String>,
    layer: MessageLayer,
    observers: Observers,
    assemblies: Assemblies,
    /// The last large body sent in blocks, by path, for the Block2 requests that follow.
    block2: Option<(String, Bytes, Option<u32>)>,
    last_heard: Instant,
    end: Option<End>,
    /// This session's number in the [`Registry`] (a client id may be reused by a newer one).
    serial: u64,
    /// The username the core admitted the device with.
    username: Option<String>,
    created: std::time::SystemTime,
    /// What was last published to the registry.
    published: Option<registry::ViewKey>,
}

impl Session {
    pub fn new(ctx: Arc<Context>, client_id: ClientId, peer: SocketAddr, now: Instant, seed: u64) -> Self {
        let layer = MessageLayer::new(ctx.settings.transmission, seed, 64);
        let serial = ctx.registry.serial();
        Session {
            ctx,
            client_id,
            peer,
            conn: None,
            token: None,
            transport_user: None,
            layer,
            observers: Observers::default(),
            assemblies: Assemblies::default(),
            block2: None,
            last_heard: now,
            end: None,
            serial,
            username: None,
            created: std::time::SystemTime::now(),
            published: None,
        }
    }

    /// A session whose transport authenticated the device (DTLS): `username` goes to the
    /// core instead of the query's.
    pub fn with_transport_user(mut self, username: Option<String>) -> Self {
        self.transport_user = username;
        self
    }

    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The core connection, for the driver to wait on `next_delivery`.
    pub fn connection(&self) -> Option<&Arc<Connection>> {
        self.conn.as_ref()
    }

    pub fn observer_count(&self) -> usize {
        self.observers.len()
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.layer.poll_transmit()
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// How long a device may stay silent: 1.5 heartbeats (EMQX closes a connection that
    /// misses its heartbeat; the half is for the network).
    fn idle_limit(&self) -> Duration {
        self.ctx.settings.heartbeat.mul_f64(1.5)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = self.layer.poll_timeout();
        if !self.expires_when_idle() {
            return retransmit;
        }
        let idle = self.last_heard + self.idle_limit();
        Some(retransmit.map_or(idle, |t| t.min(idle)))
    }

    /// A connection (token) expires without heartbeats; a connection-less device is
    /// forgotten when idle unless it observes something.
    fn expires_when_idle(&self) -> bool {
        self.token.is_some() || self.observers.is_empty()
    }

    pub async fn handle_timeout(&mut self, now: Instant) {
        for lost in self.layer.handle_timeout(now) {
            Counters::bump(&self.ctx.counters.observers_lost);
            tracing::debug!(client_id = %self.client_id, "CoAP notification timed out: observer removed");
            self.drop_observer(now, lost.0).await;
        }
        self.sync_retransmits();
        if self.expires_when_idle() && now >= self.last_heard + self.idle_limit() {
            self.close(DisconnectReason::Abnormal, "no request within 1.5 heartbeats").await;
        }
    }

    /// One datagram from `peer` (already decoded).
    pub async fn handle_packet(&mut self, now: Instant, peer: SocketAddr, packet: Packet) {
        match self.layer.receive(now, peer, packet) {
            Received::Request(req) => {
                if let Some(resp) = self.handle_request(now, peer, &req).await {
                    self.layer.respond(peer, &req, resp);
                }
            }
            Received::Duplicate => Counters::bump(&self.ctx.counters.duplicates),
            Received::Acked(_) => self.pump(now),
            Received::Reset(tag) => {
                tracing::debug!(client_id = %self.client_id, "CoAP notification reset: observer removed");
                self.drop_observer(now, tag).await;
            }
            Received::Nothing => {}
        }
    }

    /// One core delivery (what `next_delivery` returned).
    pub async fn handle_delivery(&mut self, now: Instant, d: Delivery) {
        match d {
            Delivery::Publish { id, pending, .. } => {
                // The adapter takes the message over: its observer queue and the message
                // layer's retransmission carry it from here.
                if let Some(conn) = &self.conn
                    && id != 0
                {
                    conn.ack(id);
                }
                self.observers.enqueue(&self.ctx, pending);
                self.pump(now);
            }
            Delivery::Release { id } => {
                if let Some(conn) = &self.conn {
                    conn.ack(id);
                }
            }
            Delivery::Close(reason) => {
                // Kicked (e.g. closed through the API) or taken over: the observations end
                // here, and the device is told so.
                self.end_observations(now);
                self.conn = None;
                self.end = Some(End::new(reason, format!("closed by the broker: {reason:?}")));
            }
        }
    }

    /// Ends the session (shutdown, idle, DELETE).
    pub async fn close(&mut self, reason: DisconnectReason, why: &str) {
        if let Some(conn) = self.conn.take() {
            conn.disconnect(reason).await;
        }
        let n = self.observers.len() as u64;
        self.ctx.counters.observers.fetch_sub(n, Relaxed);
        self.observers = Observers::default();
        if self.end.is_none() {
            self.end = Some(End::new(reason, why));
        }
    }

    async fn handle_request(&mut self, now: Instant, peer: SocketAddr, req: &Packet) -> Option<Packet> {
        if let Some(n) = codec::unknown_critical(req, resource::KNOWN_OPTIONS) {
            return Some(diag(ResponseType::BadOption, &format!("critical option {n} not supported")));
        }
        let query = Query::of(req);
        let method = resource::method(req)?;
        match resource::route(req) {
            Route::Connection => Some(self.connection_resource(now, peer, method, &query).await),
            Route::Ps(topic) => {
                if let Err(resp) = self.admit(now, peer, &query).await {
                    return Some(resp);
                }
                Some(self.ps(now, peer, method, &topic, &query, req).await)
            }
            // The driver answers these itself; kept for completeness.
            Route::WellKnownCore => Some(well_known_core(method)),
            Route::NotFound => Some(reply(ResponseType::NotFound)),
            Route::BadPath => Some(diag(ResponseType::BadRequest, "Uri-Path is not UTF-8")),
        }
    }

    /// `/mqtt/connection` (EMQX): POST creates (token in the body), PUT is a heartbeat,
    /// DELETE closes.
    async fn connection_resource(&mut self, now: Instant, peer: SocketAddr, method: RequestType, q: &Query) -> Packet {
        match method {
            RequestType::Post => {
                if let Some(conn) = self.conn.take() {
                    // A device that lost its token connects again: the old connection goes.
                    conn.disconnect(DisconnectReason::Normal).await;
                    self.observers_reset(now).await;
                }
                if let Err(resp) = self.connect(peer, q).await {
                    return resp;
                }
                let token = format!("{:016x}", rand::random::<u64>());
                self.token = Some(token.clone());
                self.take_over(peer);
                self.last_heard = now;
                let mut p = reply(ResponseType::Created);
                p.payload = token.into_bytes();
                p
            }
            RequestType::Put => match self.check_token(q) {
                Ok(()) => {
                    self.take_over(peer);
                    self.last_heard = now;
                    reply(ResponseType::Changed)
                }
                Err(resp) => resp,
            },
            RequestType::Delete => match self.check_token(q) {
                Ok(()) => {
                    self.close(DisconnectReason::Normal, "DELETE /mqtt/connection").await;
                    reply(ResponseType::Deleted)
                }
                Err(resp) => resp,
            },
            _ => reply(ResponseType::MethodNotAllowed),
        }
    }

    /// Lets a `/ps` request in: the token when the session has one (always, when
    /// `connection_required`), else a connection made on the fly from the query's
    /// credentials.
    async fn admit(&mut self, now: Instant, peer: SocketAddr, q: &Query) -> Result<(), Packet> {
        if self.token.is_some() || self.ctx.settings.connection_required && self.transport_user.is_none() {
            self.check_token(q)?;
        } else if self.conn.is_none() {
            self.connect(peer, q).await?;
        }
        self.take_over(peer);
        self.last_heard = now;
        Ok(())
    }

    fn check_token(&self, q: &Query) -> Result<(), Packet> {
        match (&self.token, &q.token, &self.conn) {
            (Some(t), Some(given), Some(_)) if t == given => Ok(()),
            _ => {
                Counters::bump(&self.ctx.counters.unauthorized);
                roost_core::peer_log!(INFO, "coap.bad_token", self.peer, client_id = %self.client_id, "CoAP request refused: missing, wrong or expired token");
                Err(diag(ResponseType::Unauthorized, "missing, wrong or expired token"))
            }
        }
    }

    /// A request from a new address with valid credentials moves the session there.
    fn take_over(&mut self, peer: SocketAddr) {
        if peer != self.peer {
            tracing::debug!(client_id = %self.client_id, old = %self.peer, new = %peer, "CoAP session moved to a new address");
            self.peer = peer;
            self.layer.rebind(peer);
        }
    }

    async fn connect(&mut self, peer: SocketAddr, q: &Query) -> Result<(), Packet> {
        let username = self.transport_user.clone().or_else(|| q.username.clone());
        let req = ConnectRequest {
            client_id: self.client_id.clone(),
            protocol: Protocol::Coap,
            peer: Some(peer),
            username: username.clone(),
            password: q.password.clone().map(Bytes::from),
            clean_start: true,
            keep_alive: u16::try_from(self.ctx.settings.heartbeat.as_secs()).unwrap_or(u16::MAX),
            will: None,
            session_expiry: Some(Duration::ZERO),
            receive_maximum: u16::MAX,
        };
        match self.ctx.broker.connect(req).await {
            Ok(conn) => {
                self.conn = Some(Arc::new(conn));
                self.username = username;
                Ok(())
            }
            Err(e) => {
                roost_core::peer_log!(INFO, "coap.connect_refused", peer, client_id = %self.client_id, peer = %peer, "CoAP connection refused: {e}");
                let code = match e {
                    ConnectError::BadCredentials | ConnectError::NotAuthorized => {
                        Counters::bump(&self.ctx.counters.unauthorized);
                        ResponseType::Unauthorized
                    }
                    ConnectError::ServerBusy | ConnectError::ShuttingDown => ResponseType::ServiceUnavailable,
                };
                if self.end.is_none() && self.token.is_none() {
                    self.end = Some(End::new(DisconnectReason::Normal, format!("connection refused: {e}")));
                }
                Err(diag(code, &e.to_string()))
            }
        }
    }

    fn sync_retransmits(&mut self) {
        let n = std::mem::take(&mut self.layer.retransmits);
        if n > 0 {
            self.ctx.counters.retransmits.fetch_add(n, Relaxed);
        }
    }
}

/// A response with no options or body (type, id and token are set by the message layer).
pub(crate) fn reply(code: ResponseType) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::Response(code);
    p
}

/// An error response with a diagnostic payload (RFC 7252 §5.5.2).
pub(crate) fn diag(code: ResponseType, text: &str) -> Packet {
    let mut p = reply(code);
    p.payload = text.as_bytes().to_vec();
    p
}

pub(crate) fn well_known_core(method: RequestType) -> Packet {
    if method != RequestType::Get {
        return reply(ResponseType::MethodNotAllowed);
    }
    let mut p = reply(ResponseType::Content);
    p.add_option(CoapOption::ContentFormat, codec::encode_uint(40));
    p.payload = resource::WELL_KNOWN_CORE.as_bytes().to_vec();
    p
}
