//! Driver layer: the listeners (TCP, TLS, WebSocket, secure WebSocket; see [`crate::transport`])
//! and the task that owns each MQTT connection's stream, timers and cancellation, feeding the
//! session and writing what it yields.
//!
//! Flood control per listener (`[mqtt]` limits): connections beyond `max_connections` or
//! over `max_conn_rate` are closed at accept; a connection over its bytes or messages rate
//! is not read until its budget refills (TCP then pushes back on the sender), or closed
//! with 0x97 if so configured. Each is counted in [`roost_core::metrics::Limited`].
//!
//! Accepted sockets are bounded by a semaphore (`limits.max_connections`, as in mini-redis).
//! An idle connection holds no read or write buffer: buffers are allocated when bytes
//! arrive or leave and released when drained, so memory per idle connection stays small.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use roost_core::metrics::Limited;
use roost_core::trace::Direction;
use roost_core::{Broker, ConnectContext, ConnectError, Connection, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{self, ConnAck, ConnAckProperties, DecodeError, Packet, ProtocolVersion, reason};
use crate::connect::{self, Accepted};
use crate::session::{Close, Limits, MqttSession};
use crate::settings::MqttSettings;
use crate::transport::{self, Bucket, Kind, Stream};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// Deliveries batched into one socket write at most.
const MAX_BATCH: usize = 256;
/// Stop batching once this much is waiting to be written.
const MAX_WRITE_BUF: usize = 64 * 1024;
/// A client that accepts no bytes for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// PUBLISH packets a connection routes before its task yields to the others. Without it a
/// publisher that never stops sending routes thousands of messages per turn (tokio's budget
/// counts socket readiness, not packets), and a subscriber those messages wake waits behind
/// every such publisher for its own turn: at 100 -> 1 fan-in it got one turn in ~0.5 s and
/// delivered ~6,000 msg/s while the publishers' messages were dropped at its full queue.
const PUBLISH_TURN: u16 = 32;

/// What every connection task of the MQTT listeners shares.
pub struct Context {
    pub broker: Broker,
    pub settings: MqttSettings,
    pub permits: Arc<Semaphore>,
    /// The TLS and WSS listeners' acceptor (from `settings.tls`).
    pub tls: Option<transport::TlsSwitch>,
}

/// Binds every MQTT listener of `settings`: plain (`bind`), TLS (`tls_bind`), WebSocket
/// (`ws_bind`), secure WebSocket (`wss_bind`).
pub async fn bind_all(settings: &MqttSettings) -> std::io::Result<Vec<(Kind, TcpListener)>> {
    let mut out: Vec<(Kind, TcpListener)> = bind(settings).await?.into_iter().map(|l| (Kind::Tcp, l)).collect();
    for (kind, addrs) in
        [(Kind::Tls, &settings.tls_bind), (Kind::Ws, &settings.ws_bind), (Kind::Wss, &settings.wss_bind)]
    {
        for addr in addrs {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("mqtt {} listener {addr}: {e}", kind.as_str())))?;
            out.push((kind, l));
        }
    }
    Ok(out)
}

/// One listener's share of flood control.
struct ListenerState {
    open: std::sync::atomic::AtomicUsize,
    rate: Option<Mutex<Bucket>>,
    /// `Context::permits`, to give back the permits its connections hold.
    permits: Arc<Semaphore>,
}

/// A connection's place: one of the listener's open connections and one permit under
/// `limits.max_connections`, both given back when the connection ends. One pointer in the
/// task where an `OwnedSemaphorePermit` and a guard took three.
struct Slot(Arc<ListenerState>);

impl Slot {
    /// Takes over `permit` (forgotten here, given back by `drop`).
    fn new(state: Arc<ListenerState>, permit: OwnedSemaphorePermit) -> Slot {
        permit.forget();
        Slot(state)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.permits.add_permits(1);
    }
}

/// Binds every `[mqtt] bind` address. Port 0 picks a free port; see `local_addr`.
/// An IPv6 loopback address on a host without IPv6 is skipped with a warning, so the
/// built-in default (`127.0.0.1` and `::1`) works everywhere; any other failure is an error.
pub async fn bind(settings: &MqttSettings) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in &settings.bind {
        match TcpListener::bind(addr).await {
            Ok(l) => out.push(l),
            Err(e) if addr.ip().is_loopback() && addr.is_ipv6() && e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::warn!(%addr, error = %e, "no IPv6 loopback here; skipping this listener");
            }
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("mqtt.bind {addr}: {e}"))),
        }
    }
    Ok(out)
}

/// Accepts connections until `shutdown` fires; every connection task joins `tracker`.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, shutdown: CancellationToken, tracker: TaskTracker) {
    serve_kind(listener, Kind::Tcp, ctx, shutdown, tracker).await
}

/// [`serve`] for a listener of any [`Kind`].
pub async fn serve_kind(
    listener: TcpListener,
    kind: Kind,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = ctx.settings.limits;
    let state = Arc::new(ListenerState {
        open: 0.into(),
        rate: (limits.max_conn_rate > 0)
            .then(|| Mutex::new(Bucket::new(u64::from(limits.max_conn_rate), Instant::now()))),
        permits: ctx.permits.clone(),
    });
    loop {
        let permit = tokio::select! {
            p = ctx.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "mqtt accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Some(rate) = &state.rate
            && !rate.lock().try_take(Instant::now())
        {
            ctx.broker.metrics().limited(Limited::ConnRate);
            tracing::debug!(%peer, "mqtt: over max_conn_rate; connection closed at accept");
            continue;
        }
        let open = state.open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = Slot::new(state.clone(), permit);
        if limits.max_connections > 0 && open >= limits.max_connections {
            ctx.broker.metrics().limited(Limited::MaxConnections);
            tracing::debug!(%peer, "mqtt: listener at max_connections; connection closed at accept");
            continue;
        }
        let _ = stream.set_nodelay(true);
        // `run` itself is the task (no wrapping async block): a wrapper would keep its own
        // copies of the arguments for the life of the connection.
        tracker.spawn(run(stream, kind, peer, ctx.clone(), shutdown.clone(), slot));
    }
}

struct Io {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    version: ProtocolVersion,
    /// `[mqtt] max_packet_size` (a `u32`, next to `version`: 8 bytes less per connection).
    max_incoming: u32,
    /// PUBLISH packets routed since the task last yielded (see [`PUBLISH_TURN`]); here, in
    /// the padding after `version`, it costs an idle connection nothing.
    routed: u16,
}

enum Read {
    Packet(Packet),
    Closed,
    Error(DecodeError),
}

impl Io {
    /// Decodes one buffered packet, if a whole one is there.
    fn decode(&mut self) -> Result<Option<Packet>, DecodeError> {
        if self.rbuf.is_empty() {
            return Ok(None);
        }
        let r = codec::decode(&mut self.rbuf, self.version, self.max_incoming as usize);
        if self.rbuf.is_empty() {
            // Idle connections keep no read buffer.
            self.rbuf = BytesMut::new();
        }
        r
    }

    /// Reads what the stream has (waiting until it has something); `Ok(0)`: closed.
    /// Cancel-safe: nothing read is lost if the future is dropped.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(tcp) => loop {
                // poll_read_ready rather than readable(): it parks the waker in the socket's
                // registration, where readable()'s future carries its own ~150-byte waiter
                // node in every idle connection's task.
                std::future::poll_fn(|cx| tcp.poll_read_ready(cx)).await?;
                self.rbuf.reserve(READ_CHUNK);
                let r = tcp.try_read_buf(&mut self.rbuf);
                if self.rbuf.is_empty() {
                    // Readiness can be stale (it stays set after the handshake read the
                    // CONNECT until a read would block): an idle connection must not keep
                    // the chunk reserved for a read that brought nothing.
                    self.rbuf = BytesMut::new();
                }
                match r {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            },
            Stream::Other(s) => {
                self.rbuf.reserve(READ_CHUNK);
                let rbuf = &mut self.rbuf;
                std::future::poll_fn(|cx| tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut **s), cx, rbuf)).await
            }
        }
    }

    /// Waits for the next packet (used before CONNECT).
    async fn read_packet(&mut self) -> Read {
        loop {
            match self.decode() {
                Ok(Some(p)) => return Read::Packet(p),
                Ok(None) => {}
                Err(e) => return Read::Error(e),
            }
            match self.read_more().await {
                Ok(0) | Err(_) => return Read::Closed,
                Ok(_) => {}
            }
        }
    }

    fn queue(&mut self, p: &Packet) {
        if let Err(e) = codec::encode(p, self.version, &mut self.wbuf) {
            tracing::error!(error = %e, "mqtt: could not encode an outgoing packet");
        }
    }

    async fn flush(&mut self) -> std::io::Result<usize> {
        if self.wbuf.is_empty() {
            return Ok(0);
        }
        let n = self.wbuf.len();
        let write = async {
            match &mut self.stream {
                Stream::Tcp(tcp) => tcp.write_all(&self.wbuf).await,
                Stream::Other(s) => {
                    s.write_all(&self.wbuf).await?;
                    s.flush().await
                }
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client accepts no bytes")),
        }
        if self.wbuf.capacity() > MAX_WRITE_BUF * 2 || n < self.wbuf.capacity() / 4 {
            self.wbuf = BytesMut::new();
        } else {
            self.wbuf.clear();
        }
        Ok(n)
    }
}

/// One connection from accept to close. The handshake and the close are boxed so that the
/// task itself is only as large as the connected loop: their futures (the core's connect and
/// disconnect) are bigger, and an idle connection should not carry their space.
/// `permit` is this connection's place under `limits.max_connections`, held until it ends.
/// Not an `async fn`: its arguments would keep their slots in the task for the connection's
/// life; here they move into the boxed handshake, which hands back what the connected state
/// needs, and the task keeps only a pointer to it (an upvar of the task's future keeps its
/// slot in every state, so the peer address and the permit are not captured here).
fn run(
    stream: TcpStream,
    kind: Kind,
    peer: SocketAddr,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    permit: Slot,
) -> impl Future<Output = ()> + Send + 'static {
    let handshake = Box::pin(async move {
        let (io, session, conn) = handshake(stream, kind, peer, &ctx, &shutdown).await?;
        // The rate budgets are built here, so that the task keeps an 8-byte box (or nothing),
        // not copies of the listener's limits.
        let rates = Rates::for_limits(&ctx.settings.limits);
        Some((Link { io, session, conn, rates }, permit))
    });
    async move {
        let Some((mut link, permit)) = handshake.await else {
            return;
        };
        let close = connected(&mut link).await;
        let Link { io, session, conn, .. } = link;
        Box::pin(close_connection(io, session, conn, close)).await;
        drop(permit);
    }
}

/// What a connected connection's task holds: its IO, protocol session, core connection and
/// rate budgets. One struct, so that the connected loop keeps one reference to it rather than
/// one per part (an `async fn` keeps each argument twice).
struct Link {
    io: Io,
    session: MqttSession,
    conn: Connection,
    rates: Option<Box<Rates>>,
}

/// CONNECT in, CONNACK queued: the connection's IO, protocol session and core connection.
async fn handshake(
    mut tcp: TcpStream,
    kind: Kind,
    peer: SocketAddr,
    ctx: &Context,
    shutdown: &CancellationToken,
) -> Option<(Io, MqttSession, Connection)> {
    let settings = &ctx.settings;
    // Behind a load balancer: the client's own address, from its PROXY header.
    let proxied = tokio::time::timeout(settings.connect_timeout, settings.proxy.client_addr(&mut tcp, peer));
    let peer = tokio::select! {
        r = proxied => match r {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                roost_core::peer_log!(INFO, "mqtt.proxy_refused", peer, %peer, transport = kind.as_str(), error = %e, "mqtt: connection refused");
                return None;
            }
            Err(_) => {
                roost_core::peer_log!(DEBUG, "mqtt.proxy_timeout", peer, %peer, "mqtt: PROXY header timed out");
                return None;
            }
        },
        _ = shutdown.cancelled() => return None,
    };
    let upgrade = tokio::time::timeout(settings.connect_timeout, upgrade(tcp, kind, ctx));
    let (stream, certificate) = tokio::select! {
        r = upgrade => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                roost_core::peer_log!(INFO, "mqtt.handshake_failed", peer, %peer, transport = kind.as_str(), error = %e, "mqtt: transport handshake failed");
                return None;
            }
            Err(_) => {
                roost_core::peer_log!(DEBUG, "mqtt.handshake_timeout", peer, %peer, transport = kind.as_str(), "mqtt: transport handshake timed out");
                return None;
            }
        },
        _ = shutdown.cancelled() => return None,
    };
    let mut io = Io {
        stream,
        rbuf: BytesMut::new(),
        wbuf: BytesMut::new(),
        version: ProtocolVersion::V311,
        max_incoming: settings.max_packet_size,
        routed: 0,
    };
    let first = tokio::select! {
        r = tokio::time::timeout(settings.connect_timeout, io.read_packet()) => r,
        _ = shutdown.cancelled() => return None,
    };
    let connect = match first {
        Err(_) => {
            roost_core::peer_log!(DEBUG, "mqtt.connect_timeout", peer, %peer, "mqtt: no CONNECT within connect_timeout; closing");
            return None;
        }
        Ok(Read::Closed) => return None,
        Ok(Read::Error(DecodeError::UnsupportedProtocolVersion(level))) => {
            roost_core::peer_log!(INFO, "mqtt.unsupported_version", peer, %peer, level, "mqtt: CONNECT with unsupported protocol level; refused");
            // 3.1.1-format CONNACK, return code 0x01: the only format such a client may know.
            io.queue(&Packet::ConnAck(Box::new(ConnAck {
                code: reason::UNSUPPORTED_PROTOCOL_VERSION,
                ..Default::default()
            })));
            let _ = io.flush().await;
            return None;
        }
        Ok(Read::Error(e)) => {
            roost_core::peer_log!(INFO, "mqtt.bad_first_packet", peer, %peer, error = %e, "mqtt: bad first packet; closing");
            return None;
        }
        Ok(Read::Packet(Packet::Connect(c))) => c,
        Ok(Read::Packet(p)) => {
            roost_core::peer_log!(INFO, "mqtt.not_connect", peer, %peer, packet = ?packet_name(&p), "mqtt: first packet is not CONNECT; closing");
            return None;
        }
    };
    io.version = connect.protocol;
    ctx.broker.metrics().bytes_in(Protocol::Mqtt, 0);

    let accepted = match connect::validate(&connect, settings, ctx.broker.settings().retain_available, Some(peer)) {
        Ok(a) => a,
        Err(refused) => {
            roost_core::peer_log!(INFO, "mqtt.connect_refused", peer, %peer, client_id = %connect.client_id, why = %refused.why, "mqtt: CONNECT refused");
            let props = ConnAckProperties { reason_string: Some(refused.why), ..Default::default() };
            io.queue(&Packet::ConnAck(Box::new(ConnAck {
                session_present: false,
                code: refused.code,
                properties: props,
            })));
            let _ = io.flush().await;
            return None;
        }
    };
    let Accepted { mut request, assigned_client_id, keep_alive, server_keep_alive, version } = accepted;
    let asked_expiry = request.session_expiry;
    if let Some(cn) = &certificate
        && settings.tls.as_ref().is_some_and(|t| t.cn_as_username)
    {
        request.username = Some(cn.clone());
    }
    let context = ConnectContext { certificate, ..Default::default() };
    let conn = match ctx.broker.connect_with(request, context).await {
        Ok(c) => c,
        Err(e) => {
            let code = match e {
                ConnectError::BadCredentials => reason::BAD_USER_NAME_OR_PASSWORD,
                ConnectError::NotAuthorized => reason::NOT_AUTHORIZED,
                ConnectError::ServerBusy => reason::SERVER_BUSY,
                ConnectError::ShuttingDown => reason::SERVER_UNAVAILABLE,
            };
            io.queue(&Packet::ConnAck(Box::new(ConnAck {
                session_present: false,
                code,
                properties: Default::default(),
            })));
            let _ = io.flush().await;
            return None;
        }
    };

    let mut props = ConnAckProperties::default();
    if version.is_v5() {
        let bs = ctx.broker.settings();
        props.receive_maximum = Some(settings.receive_maximum.min(bs.max_awaiting_rel));
        props.maximum_packet_size = Some(settings.max_packet_size);
        props.topic_alias_maximum = Some(settings.topic_alias_maximum);
        props.retain_available = (!bs.retain_available).then_some(0);
        props.assigned_client_identifier = assigned_client_id;
        props.server_keep_alive = server_keep_alive;
        let granted = conn.session_expiry();
        if granted != asked_expiry {
            props.session_expiry_interval =
                Some(granted.map_or(u32::MAX, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)));
        }
    }
    let connack =
        Packet::ConnAck(Box::new(ConnAck { session_present: conn.session_present(), code: 0, properties: props }));
    if conn.broker().tracer().is_active() {
        trace(&conn, Direction::In, &Packet::Connect(connect.clone()));
        trace(&conn, Direction::Out, &connack);
    }
    io.queue(&connack);

    let limits = Limits {
        topic_alias_maximum: settings.topic_alias_maximum,
        retain_available: ctx.broker.settings().retain_available,
        deny_disconnect: settings.acl_deny_disconnect,
    };
    let session = MqttSession::new(version, keep_alive, &connect, limits, Instant::now());
    drop(connect);
    Some((io, session, conn))
}

/// Sends what the close calls for, tells the core, shuts the socket.
async fn close_connection(mut io: Io, session: MqttSession, conn: Connection, close: Close) {
    // The connection's own record of the peer (always set for MQTT): the task does not keep
    // a copy of the address for the log line.
    let peer = conn.info().peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    if let Some(p) = session.disconnect_packet(&close) {
        trace(&conn, Direction::Out, &p);
        io.queue(&p);
        let _ = tokio::time::timeout(Duration::from_secs(1), io.flush()).await;
    }
    match close.send {
        Some(code) if code >= 0x80 && close.reason == roost_core::DisconnectReason::Abnormal => {
            roost_core::peer_log!(INFO, "mqtt.protocol_error", peer, %peer, client_id = %conn.client_id(), why = %close.why, "mqtt: connection closed");
        }
        _ => tracing::debug!(%peer, client_id = %conn.client_id(), why = %close.why, "mqtt: connection closed"),
    }
    conn.disconnect(close.reason).await;
    let _ = match &mut io.stream {
        Stream::Tcp(tcp) => tcp.shutdown().await,
        Stream::Other(s) => tokio::time::timeout(Duration::from_secs(1), s.shutdown()).await.unwrap_or(Ok(())),
    };
}

/// TLS and/or WebSocket handshakes; with TLS, the verified client certificate's common name.
async fn upgrade(tcp: TcpStream, kind: Kind, ctx: &Context) -> std::io::Result<(Stream, Option<String>)> {
    let acceptor = || {
        ctx.tls
            .as_ref()
            .map(transport::TlsSwitch::current)
            .ok_or_else(|| std::io::Error::other("no [mqtt.tls] for a TLS listener"))
    };
    Ok(match kind {
        Kind::Tcp => (Stream::Tcp(tcp), None),
        Kind::Tls => {
            let (tls, cn) = transport::tls_accept(&acceptor()?, tcp).await?;
            (Stream::Other(Box::new(tls)), cn)
        }
        Kind::Ws => (Stream::Other(Box::new(transport::ws_accept(tcp, &ctx.settings.ws_path).await?)), None),
        Kind::Wss => {
            let (tls, cn) = transport::tls_accept(&acceptor()?, tcp).await?;
            (Stream::Other(Box::new(transport::ws_accept(tls, &ctx.settings.ws_path).await?)), cn)
        }
    })
}

/// A connection's rate budgets (`[mqtt]` bytes and messages rates), and the pauses they
/// impose. Boxed and only there when a rate is configured, so an idle connection without
/// rates carries 8 bytes for all of it.
struct Rates {
    bytes: Option<Bucket>,
    messages: Option<Bucket>,
    disconnect: bool,
    /// Over the bytes rate: no reading until then.
    read_paused: Option<Instant>,
    /// Over the messages rate: the packets already read wait in the buffer until then (and
    /// nothing more is read).
    decode_paused: Option<Instant>,
}

impl Rates {
    /// The budgets of a new connection under `limits`.
    fn for_limits(limits: &crate::settings::ListenerLimits) -> Option<Box<Rates>> {
        let now = Instant::now();
        (limits.bytes_rate.is_some() || limits.messages_rate.is_some()).then(|| {
            Box::new(Rates {
                bytes: limits.bytes_rate.map(|r| Bucket::new(r, now)),
                messages: limits.messages_rate.map(|r| Bucket::new(u64::from(r), now)),
                disconnect: limits.disconnect_over_rate,
                read_paused: None,
                decode_paused: None,
            })
        })
    }

    /// Spends `n` bytes; if the budget is spent, reading pauses until it refills (counted).
    fn spend_bytes(&mut self, n: usize, metrics: &roost_core::metrics::Metrics) {
        let Some(b) = self.bytes.as_mut() else { return };
        b.spend(n as u64, Instant::now());
        self.read_paused = b.ready_at();
        if self.read_paused.is_some() {
            metrics.limited(Limited::BytesRate);
        }
    }

    /// Spends one PUBLISH; if the budget is spent, decoding pauses until it refills (counted).
    fn spend_message(&mut self, metrics: &roost_core::metrics::Metrics) {
        let Some(m) = self.messages.as_mut() else { return };
        m.spend(1, Instant::now());
        self.decode_paused = m.ready_at();
        if self.decode_paused.is_some() {
            metrics.limited(Limited::MessageRate);
        }
    }

    /// Pauses that have ended by `now` are over.
    fn resume(&mut self, now: Instant) {
        self.read_paused = self.read_paused.filter(|p| now < *p);
        self.decode_paused = self.decode_paused.filter(|p| now < *p);
    }
}

impl Link {
    fn decode_paused(&self) -> bool {
        self.rates.as_ref().is_some_and(|r| r.decode_paused.is_some())
    }

    fn paused(&self) -> bool {
        self.rates.as_ref().is_some_and(|r| r.read_paused.is_some() || r.decode_paused.is_some())
    }

    /// Paused, and the listener closes connections over their rate rather than waiting.
    fn over_rate_closes(&self) -> bool {
        self.rates.as_ref().is_some_and(|r| r.disconnect) && self.paused()
    }

    /// The earliest of the keep alive deadline and the ends of the rate pauses.
    fn wake_at(&self) -> Option<Instant> {
        let (read, decode) = self.rates.as_ref().map_or((None, None), |r| (r.read_paused, r.decode_paused));
        [self.session.keep_alive_deadline(), read, decode].into_iter().flatten().min()
    }

    /// Queues what the session produced, in order.
    fn queue_all(&mut self, out: &mut Vec<Packet>) {
        for p in out.drain(..) {
            trace(&self.conn, Direction::Out, &p);
            self.io.queue(&p);
        }
    }

    /// Decodes the next buffered packet and starts its handling, boxed. A plain function, so
    /// that the packet (200-odd bytes, and borrowed for the trace) is never a local of the
    /// connected loop's future: that future's largest state sets every idle connection's size.
    #[allow(clippy::type_complexity)]
    fn next_packet<'a>(
        &'a mut self,
        out: &'a mut Vec<Packet>,
    ) -> Result<Option<std::pin::Pin<Box<impl Future<Output = Result<(), Close>> + 'a>>>, Close> {
        let p = match self.io.decode() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(Close {
                    reason: roost_core::DisconnectReason::Abnormal,
                    send: Some(e.reason_code()),
                    why: e.to_string(),
                });
            }
        };
        trace(&self.conn, Direction::In, &p);
        if let Packet::Publish(_) = &p {
            self.io.routed += 1;
            if let Some(r) = self.rates.as_mut() {
                r.spend_message(self.conn.broker().metrics());
            }
        }
        Ok(Some(Box::pin(self.session.handle_packet(Instant::now(), p, &self.conn, out))))
    }
}

/// The connected state: packets in, deliveries out, keep alive, until something closes it.
async fn connected(link: &mut Link) -> Close {
    let mut out: Vec<Packet> = Vec::new();
    loop {
        while !link.decode_paused() {
            let handling = match link.next_packet(&mut out) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(c) => return c,
            };
            if let Err(c) = handling.await {
                // Acknowledgements owed for earlier packets still go out.
                link.queue_all(&mut out);
                return c;
            }
            if link.io.routed >= PUBLISH_TURN {
                link.io.routed = 0;
                tokio::task::yield_now().await;
            }
        }
        if link.over_rate_closes() {
            link.queue_all(&mut out);
            return Close {
                reason: roost_core::DisconnectReason::Abnormal,
                send: Some(codec::reason::QUOTA_EXCEEDED),
                why: "over the listener's bytes or messages rate".into(),
            };
        }
        link.queue_all(&mut out);
        match link.io.flush().await {
            Ok(n) => link.conn.broker().metrics().bytes_out(Protocol::Mqtt, n),
            Err(e) => return lost(format!("write failed: {e}")),
        }
        let wake = link.wake_at();
        let paused = link.paused();
        tokio::select! {
            r = link.io.read_more(), if !paused => {
                match r {
                    Ok(0) => return lost("peer closed the connection".into()),
                    Ok(n) => {
                        let metrics = link.conn.broker().metrics();
                        metrics.bytes_in(Protocol::Mqtt, n);
                        if let Some(r) = link.rates.as_mut() {
                            r.spend_bytes(n, metrics);
                        }
                    }
                    Err(e) => return lost(format!("read failed: {e}")),
                }
            }
            // A poll, not `next_delivery()`: the select holds no future for the mailbox.
            d = std::future::poll_fn(|cx| link.conn.poll_next_delivery(cx)) => {
                let now = Instant::now();
                let mut next = Some(d);
                let mut n = 0;
                while let Some(d) = next.take() {
                    match link.session.handle_delivery(now, d, &link.conn) {
                        Ok(Some(p)) => out.push(p),
                        Ok(None) => {}
                        Err(c) => {
                            link.queue_all(&mut out);
                            return c;
                        }
                    }
                    n += 1;
                    if n < MAX_BATCH && link.io.wbuf.len() < MAX_WRITE_BUF {
                        next = link.conn.try_next_delivery();
                    }
                }
            }
            // One timer for keep alive and the ends of rate pauses.
            _ = sleep_until(wake) => {
                let now = Instant::now();
                if let Some(r) = link.rates.as_mut() {
                    r.resume(now);
                }
                if let Some(c) = link.session.handle_timeout(now) {
                    return c;
                }
            }
        }
    }
}

/// Writes `p` to the running traces that follow this client or the packet's topic (one
/// atomic load when no trace runs). A CONNECT's password is never written.
fn trace(conn: &Connection, direction: Direction, p: &Packet) {
    let tracer = conn.broker().tracer();
    if !tracer.is_active() {
        return;
    }
    let info = conn.info();
    let (id, peer) = (info.client_id.as_str(), info.peer);
    match p {
        Packet::Connect(c) => {
            let shown = format!(
                "Connect {{ protocol: {:?}, client_id: {:?}, clean_start: {}, keep_alive: {}, username: {:?}, will: {:?} }}",
                c.protocol,
                c.client_id,
                c.clean_start,
                c.keep_alive,
                c.username,
                c.will.as_ref().map(|w| &w.topic)
            );
            tracer.packet("mqtt", id, peer, direction, None, &format_args!("{shown}"));
        }
        Packet::Publish(publish) if !publish.topic.is_empty() => {
            tracer.packet("mqtt", id, peer, direction, Some(&publish.topic), p)
        }
        _ => tracer.packet("mqtt", id, peer, direction, None, p),
    }
}

fn lost(why: String) -> Close {
    Close { reason: roost_core::DisconnectReason::Abnormal, send: None, why }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(_) => "DISCONNECT",
        Packet::Auth(_) => "AUTH",
    }
}
