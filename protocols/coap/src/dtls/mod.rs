//! DTLS 1.2 transport (RFC 6347) for CoAP on 5684: our own per-peer dispatch on one UDP
//! socket, with the record layer and handshake behind the [`Backend`] trait (today
//! OpenSSL, see [`openssl`]).
//!
//! Why not a DTLS crate's own listener: the `dtls` crate's runs each handshake inside
//! `accept()` with no timeout (one lossy client stalls every later handshake) and never
//! forgets closed peers (a device reconnecting from the same address and port is locked
//! out). Here:
//!
//! - a ClientHello without a cookie is answered with a HelloVerifyRequest built here,
//!   statelessly ([`cookie`]): a flood of spoofed ClientHellos creates no peer and holds
//!   no memory;
//! - a ClientHello that returns a valid cookie starts a peer: its handshake runs in its
//!   own task under `handshake_timeout`, bounded by `max_handshakes` at once and
//!   `max_peers` in all, and never blocks established peers;
//! - a valid-cookie ClientHello from a known address with a new client random is a
//!   rebooted device (or one that closed and came back from the same port): the old peer
//!   is dropped and the fresh handshake goes on;
//! - an idle or closed peer is forgotten.
//!
//! Decrypted datagrams go to the same [`crate::driver::Demux`] as plain CoAP, with the peer's identity
//! (the PSK identity's username, or the client certificate's subject CN): sessions are
//! keyed by it.

pub mod cookie;
#[cfg(feature = "openssl")]
pub mod openssl;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::session::Context;
use roost_core::datagram::Endpoint;

/// One PSK identity: its key, and the username the core's auth and ACL see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PskEntry {
    pub identity: String,
    pub key: Vec<u8>,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsSettings {
    /// UDP sockets for CoAP over DTLS; empty disables it (the default: it needs keys).
    pub bind: Vec<SocketAddr>,
    pub psk: Vec<PskEntry>,
    /// PEM server certificate chain and ECDSA P-256 key, for certificate handshakes.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    /// PEM CA certificates; when set, clients must present a certificate it signed.
    pub ca_file: Option<String>,
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; a ClientHello beyond it is dropped.
    pub max_handshakes: usize,
    /// DTLS peers at once (handshaking or established).
    pub max_peers: usize,
    /// A peer that sends nothing for this long is forgotten.
    pub idle_timeout: Duration,
}

impl Default for DtlsSettings {
    fn default() -> Self {
        DtlsSettings {
            bind: Vec::new(),
            psk: Vec::new(),
            cert_file: None,
            key_file: None,
            ca_file: None,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 256,
            max_peers: 100_000,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// A finished handshake: the secured channel and who is on the other end.
#[async_trait::async_trait]
pub trait Secured: Send + Sync {
    /// The next application datagram; `None` when the peer closed or failed.
    async fn read(&self) -> Option<Bytes>;
    async fn write(&self, bytes: &[u8]) -> bool;
    async fn close(&self);
    /// The authenticated username (mapped PSK identity, certificate subject), if any.
    fn username(&self) -> Option<String>;
}

/// The peer's raw records (in) and its address on the shared socket (out).
pub struct PeerChannel {
    pub rx: mpsc::Receiver<Bytes>,
    pub socket: Arc<UdpSocket>,
    pub peer: SocketAddr,
}

/// A DTLS implementation: runs the server handshake of one peer over its channel. The
/// first datagram on the channel is `hello`, the ClientHello that returned the cookie we
/// issued (message_seq 1): the backend continues the handshake from there.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    async fn accept(&self, channel: PeerChannel, hello: &records::ClientHello) -> Result<Box<dyn Secured>, String>;
}

/// DTLS counters.
#[derive(Debug, Default)]
pub struct DtlsCounters {
    pub hello_verify_sent: AtomicU64,
    /// ClientHellos with a cookie we did not issue to that address, or an expired one.
    pub bad_cookies: AtomicU64,
    pub handshakes_ok: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub handshakes_timed_out: AtomicU64,
    /// ClientHellos dropped at `max_handshakes` / `max_peers`.
    pub refused: AtomicU64,
    /// Datagrams that are not DTLS records, or for no peer.
    pub dropped: AtomicU64,
    pub peers: AtomicU64,
}

struct Peer {
    tx: mpsc::Sender<Bytes>,
    /// The client random of the handshake this peer is: a ClientHello with another one
    /// is a new session from the same address.
    random: [u8; 32],
    generation: u64,
}

type Writers = Arc<Mutex<HashMap<SocketAddr, (u64, Arc<dyn Secured>)>>>;

/// Serves one DTLS socket until `shutdown`.
pub async fn serve(
    socket: UdpSocket,
    ctx: Arc<Context>,
    backend: Arc<dyn Backend>,
    counters: Arc<DtlsCounters>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    // Decrypted datagrams in, to the CoAP layer; its answers out, to the peers' records.
    let (app_tx, app_rx) = mpsc::channel::<Plain>(1024);
    let (out_tx, out_rx) = mpsc::channel::<(SocketAddr, Bytes)>(1024);
    let endpoint = Endpoint::secured(app_rx, out_tx);
    tracker.spawn(crate::driver::serve(endpoint, ctx.clone(), shutdown.clone(), tracker.clone()));
    let settings = ctx.settings.dtls.clone();
    serve_channels(socket, settings, backend, counters, app_tx, out_rx, shutdown, tracker).await;
}

/// A decrypted datagram: the peer, its bytes, and the peer's DTLS identity (username).
pub use roost_core::datagram::Plain;

/// Serves one DTLS socket until `shutdown` for any protocol over it (CoAP, LwM2M):
/// decrypted datagrams go to `app_tx`; what arrives on `out_rx` is sent encrypted to its
/// peer.
#[allow(clippy::too_many_arguments)]
pub async fn serve_channels(
    socket: UdpSocket,
    settings: DtlsSettings,
    backend: Arc<dyn Backend>,
    counters: Arc<DtlsCounters>,
    app_tx: mpsc::Sender<Plain>,
    mut out_rx: mpsc::Receiver<(SocketAddr, Bytes)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let socket = Arc::new(socket);
    let writers: Writers = Arc::default();
    let handshaking = Arc::new(AtomicUsize::new(0));
    tracker.spawn({
        let writers = writers.clone();
        async move {
            while let Some((addr, bytes)) = out_rx.recv().await {
                let w = writers.lock().get(&addr).map(|(_, w)| w.clone());
                match w {
                    Some(w) => {
                        w.write(&bytes).await;
                    }
                    None => tracing::debug!(peer = %addr, "CoAP over DTLS: no secured peer to send to"),
                }
            }
        }
    });
    let mut peers: HashMap<SocketAddr, Peer> = HashMap::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut generation = 0u64;
    let cookies = cookie::CookieJar::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((addr, g)) = ended_rx.recv() => {
                if peers.get(&addr).is_some_and(|p| p.generation == g) {
                    peers.remove(&addr);
                    counters.peers.fetch_sub(1, Relaxed);
                }
                continue;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("DTLS recv: {e}");
                    continue;
                }
            },
        };
        let datagram = &buf[..n];
        if let Some(hello) = records::client_hello(datagram) {
            if hello.cookie.is_empty() {
                // Answered statelessly: nothing is kept for this address.
                let hvr = cookies.hello_verify_request(addr, &hello);
                if socket.try_send_to(&hvr, addr).is_ok() {
                    counters.hello_verify_sent.fetch_add(1, Relaxed);
                }
                continue;
            }
            if !cookies.check(addr, &hello.random, &hello.cookie) {
                counters.bad_cookies.fetch_add(1, Relaxed);
                tracing::debug!(peer = %addr, "DTLS ClientHello with a cookie we did not issue (or an expired one) dropped");
                continue;
            }
            if let Some(p) = peers.get(&addr) {
                if p.random == hello.random {
                    // A retransmission within the handshake in progress.
                    let _ = p.tx.try_send(Bytes::copy_from_slice(datagram));
                    continue;
                }
                roost_core::peer_log!(INFO, "dtls.new_session", addr, peer = %addr, "DTLS: new session from a known address; the old one is dropped");
                peers.remove(&addr);
                writers.lock().remove(&addr);
                counters.peers.fetch_sub(1, Relaxed);
            }
            if handshaking.load(Relaxed) >= settings.max_handshakes || peers.len() >= settings.max_peers {
                counters.refused.fetch_add(1, Relaxed);
                roost_core::peer_log!(WARN, "dtls.max_handshakes", addr, peer = %addr, "DTLS ClientHello dropped: coap.dtls max_handshakes or max_peers reached");
                continue;
            }
            generation += 1;
            let (tx, rx) = mpsc::channel(32);
            let _ = tx.try_send(Bytes::copy_from_slice(datagram));
            peers.insert(addr, Peer { tx, random: hello.random, generation });
            counters.peers.fetch_add(1, Relaxed);
            handshaking.fetch_add(1, Relaxed);
            let channel = PeerChannel { rx, socket: socket.clone(), peer: addr };
            tracker.spawn(peer_task(
                channel,
                hello,
                generation,
                PeerShared {
                    backend: backend.clone(),
                    counters: counters.clone(),
                    writers: writers.clone(),
                    handshaking: handshaking.clone(),
                    app_tx: app_tx.clone(),
                    ended: ended_tx.clone(),
                    settings: settings.clone(),
                    shutdown: shutdown.clone(),
                },
            ));
            continue;
        }
        match peers.get(&addr) {
            Some(p) if records::is_record(datagram) => {
                if p.tx.try_send(Bytes::copy_from_slice(datagram)).is_err() {
                    counters.dropped.fetch_add(1, Relaxed);
                }
            }
            _ => {
                counters.dropped.fetch_add(1, Relaxed);
                tracing::debug!(peer = %addr, "datagram on the DTLS port dropped: not a record of a known peer");
            }
        }
    }
}

struct PeerShared {
    backend: Arc<dyn Backend>,
    counters: Arc<DtlsCounters>,
    writers: Writers,
    handshaking: Arc<AtomicUsize>,
    app_tx: mpsc::Sender<Plain>,
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    settings: DtlsSettings,
    shutdown: CancellationToken,
}

async fn peer_task(channel: PeerChannel, hello: records::ClientHello, generation: u64, s: PeerShared) {
    let addr = channel.peer;
    let result = tokio::time::timeout(s.settings.handshake_timeout, s.backend.accept(channel, &hello)).await;
    s.handshaking.fetch_sub(1, Relaxed);
    let secured: Arc<dyn Secured> = match result {
        Ok(Ok(sec)) => Arc::from(sec),
        Ok(Err(e)) => {
            s.counters.handshakes_failed.fetch_add(1, Relaxed);
            roost_core::peer_log!(WARN, "dtls.handshake_failed", addr, peer = %addr, "DTLS handshake failed: {e}");
            let _ = s.ended.send((addr, generation));
            return;
        }
        Err(_) => {
            s.counters.handshakes_timed_out.fetch_add(1, Relaxed);
            roost_core::peer_log!(INFO, "dtls.handshake_timeout", addr, peer = %addr, "DTLS handshake timed out");
            let _ = s.ended.send((addr, generation));
            return;
        }
    };
    s.counters.handshakes_ok.fetch_add(1, Relaxed);
    let user = secured.username();
    tracing::debug!(peer = %addr, user = ?user, "DTLS handshake done");
    s.writers.lock().insert(addr, (generation, secured.clone()));
    loop {
        let read = tokio::select! {
            _ = s.shutdown.cancelled() => None,
            r = tokio::time::timeout(s.settings.idle_timeout, secured.read()) => r.ok().flatten(),
        };
        let Some(datagram) = read else { break };
        if s.app_tx.send((addr, datagram, user.clone())).await.is_err() {
            break;
        }
    }
    secured.close().await;
    {
        let mut w = s.writers.lock();
        if w.get(&addr).is_some_and(|(g, _)| *g == generation) {
            w.remove(&addr);
        }
    }
    let _ = s.ended.send((addr, generation));
}

pub mod records;
