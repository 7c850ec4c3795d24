//! Driver layer: the listeners (TCP, TLS, WebSocket, secure WebSocket; see [`crate::transport`])
//! and the task that owns each MQTT connection's stream, timers and cancellation, feeding the
//! session and writing what it yields.
//!
//! Flood control per listener (`[mqtt]` limits): connections beyond `max_connections` or
//! over `max_conn_rate` are closed at accept; a connection over its bytes or messages rate
//! is not read until its budget refills (TCP then pushes back on the sender), or closed
//! with 0x97 if so configured. Each is counted in [`roost_core::metrics::Limited`].
//!
//! Submodules: `io` (buffers and socket), `handshake` (PROXY, TLS/WebSocket, first
//! packet), `connack` (CONNECT accepted or refused), `limits` (flood control).
//!
//! Accepted sockets are bounded by a semaphore (`limits.max_connections`, as in mini-redis).
//! An idle connection holds no read or write buffer: buffers are allocated when bytes
//! arrive or leave and released when drained, so memory per idle connection stays small.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roost_core::metrics::Limited;
use roost_core::trace::Direction;
use roost_core::{Broker, Connection, Protocol};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{self, Packet};
use crate::session::{Close, MqttSession};
use crate::settings::MqttSettings;
use crate::transport::{self, Kind, Stream};

mod connack;
mod handshake;
mod io;
mod limits;

use handshake::handshake;
use io::{Io, MAX_WRITE_BUF};
use limits::{ListenerState, Rates, Slot};

/// Deliveries batched into one socket write at most.
const MAX_BATCH: usize = 256;
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
    /// `settings.limits` as a reload leaves them (read at each accept and connection).
    pub limits: Arc<crate::settings::LiveLimits>,
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
    let state = Arc::new(ListenerState::new(ctx.permits.clone()));
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
        let limits = ctx.limits.get();
        if !state.admit(limits.max_conn_rate) {
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
        let rates = Rates::for_limits(&ctx.limits.get());
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

impl Link {
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
