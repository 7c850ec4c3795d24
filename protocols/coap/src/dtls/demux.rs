//! DTLS 1.2 (RFC 6347) per-peer dispatch on one UDP socket: ClientHellos answered with a
//! stateless HelloVerifyRequest (§4.2.1) or starting a peer, records passed to their peer's
//! task, and one writer task sending what the protocol above answers, encrypted. See the
//! parent module for why it is ours and not a DTLS crate's listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Backend, DtlsCounters, DtlsSettings, PeerChannel, Plain, Secured, cookie, records};

struct Peer {
    tx: mpsc::Sender<Bytes>,
    /// The client random of the handshake this peer is: a ClientHello with another one
    /// is a new session from the same address.
    random: [u8; 32],
    generation: u64,
}

type Writers = Arc<Mutex<HashMap<SocketAddr, (u64, Arc<dyn Secured>)>>>;

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
    out_rx: mpsc::Receiver<(SocketAddr, Bytes)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let socket = Arc::new(socket);
    let writers: Writers = Arc::default();
    tracker.spawn(write_out(out_rx, writers.clone()));
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut demux = Demux {
        peers: HashMap::new(),
        generation: 0,
        cookies: cookie::CookieJar::default(),
        socket: socket.clone(),
        tracker,
        shared: PeerShared {
            backend,
            counters,
            writers,
            handshaking: Arc::new(AtomicUsize::new(0)),
            app_tx,
            ended: ended_tx,
            settings,
            shutdown: shutdown.clone(),
        },
    };
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((addr, g)) = ended_rx.recv() => {
                demux.ended(addr, g);
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
        demux.datagram(addr, &buf[..n]);
    }
}

/// Sends what the protocol above answers to its peer's secured channel.
async fn write_out(mut out_rx: mpsc::Receiver<(SocketAddr, Bytes)>, writers: Writers) {
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

/// The socket's peers by address, and what a new peer's task gets.
struct Demux {
    peers: HashMap<SocketAddr, Peer>,
    /// Tells a peer's end from that of an earlier peer at the same address.
    generation: u64,
    cookies: cookie::CookieJar,
    socket: Arc<UdpSocket>,
    tracker: TaskTracker,
    /// Cloned into every peer task.
    shared: PeerShared,
}

impl Demux {
    /// The peer task of `generation` at `addr` ended: forget it, unless a newer one took over.
    fn ended(&mut self, addr: SocketAddr, generation: u64) {
        if self.peers.get(&addr).is_some_and(|p| p.generation == generation) {
            self.peers.remove(&addr);
            self.shared.counters.peers.fetch_sub(1, Relaxed);
        }
    }

    /// One datagram from `addr`: a ClientHello, or a record for its peer (else dropped).
    fn datagram(&mut self, addr: SocketAddr, datagram: &[u8]) {
        if let Some(hello) = records::client_hello(datagram) {
            return self.client_hello(addr, datagram, hello);
        }
        let counters = &self.shared.counters;
        match self.peers.get(&addr) {
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

    /// A ClientHello: without a cookie answered statelessly; with ours, a new peer (or a
    /// retransmission to the peer whose handshake it is).
    fn client_hello(&mut self, addr: SocketAddr, datagram: &[u8], hello: records::ClientHello) {
        let counters = &self.shared.counters;
        if hello.cookie.is_empty() {
            // Answered statelessly: nothing is kept for this address.
            let hvr = self.cookies.hello_verify_request(addr, &hello);
            if self.socket.try_send_to(&hvr, addr).is_ok() {
                counters.hello_verify_sent.fetch_add(1, Relaxed);
            }
            return;
        }
        if !self.cookies.check(addr, &hello.random, &hello.cookie) {
            counters.bad_cookies.fetch_add(1, Relaxed);
            tracing::debug!(peer = %addr, "DTLS ClientHello with a cookie we did not issue (or an expired one) dropped");
            return;
        }
        if let Some(p) = self.peers.get(&addr) {
            if p.random == hello.random {
                // A retransmission within the handshake in progress.
                let _ = p.tx.try_send(Bytes::copy_from_slice(datagram));
                return;
            }
            roost_core::peer_log!(INFO, "dtls.new_session", addr, peer = %addr, "DTLS: new session from a known address; the old one is dropped");
            self.peers.remove(&addr);
            self.shared.writers.lock().remove(&addr);
            counters.peers.fetch_sub(1, Relaxed);
        }
        let settings = &self.shared.settings;
        if self.shared.handshaking.load(Relaxed) >= settings.max_handshakes || self.peers.len() >= settings.max_peers {
            counters.refused.fetch_add(1, Relaxed);
            roost_core::peer_log!(WARN, "dtls.max_handshakes", addr, peer = %addr, "DTLS ClientHello dropped: coap.dtls max_handshakes or max_peers reached");
            return;
        }
        self.start_peer(addr, datagram, hello);
    }

    /// Starts the task of a new peer at `addr`, its handshake beginning with `hello`.
    fn start_peer(&mut self, addr: SocketAddr, datagram: &[u8], hello: records::ClientHello) {
        self.generation += 1;
        let (tx, rx) = mpsc::channel(32);
        let _ = tx.try_send(Bytes::copy_from_slice(datagram));
        self.peers.insert(addr, Peer { tx, random: hello.random, generation: self.generation });
        self.shared.counters.peers.fetch_add(1, Relaxed);
        self.shared.handshaking.fetch_add(1, Relaxed);
        let channel = PeerChannel { rx, socket: self.socket.clone(), peer: addr };
        self.tracker.spawn(peer_task(channel, hello, self.generation, self.shared.clone()));
    }
}

#[derive(Clone)]
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
