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
mod demux;
#[cfg(feature = "openssl")]
pub mod openssl;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
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

pub use demux::serve_channels;

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

pub mod records;
