//! Driver layer, the datagram engine's edges: where a socket's datagrams come from
//! ([`Inbound`]: the UDP socket itself, or the decrypted stream of a secured transport
//! beneath, DTLS), where they go ([`Outbound`]), and the one timer every UDP driver waits on
//! ([`sleep_until`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A datagram from a secured transport: its sender, its plaintext and the identity the
/// transport authenticated (the username of a DTLS PSK identity or certificate).
pub type Plain = (SocketAddr, Bytes, Option<String>);

/// Where a session's datagrams go out: a UDP socket, or a secured transport (DTLS) that takes
/// them through a channel to its record layer.
pub trait Outbound: Send + Sync + 'static {
    /// Sends `datagram` to `to`. Failures are the network's: logged, and the protocol's
    /// retransmission covers them.
    fn transmit(&self, datagram: Bytes, to: SocketAddr) -> impl Future<Output = ()> + Send;
}

impl Outbound for UdpSocket {
    async fn transmit(&self, datagram: Bytes, to: SocketAddr) {
        if let Err(e) = self.send_to(&datagram, to).await {
            // ICMP errors from earlier sends and the like: the session's retries cover it.
            tracing::debug!(peer = %to, error = %e, "udp send failed");
        }
    }
}

impl Outbound for mpsc::Sender<(SocketAddr, Bytes)> {
    async fn transmit(&self, datagram: Bytes, to: SocketAddr) {
        // Closed: the secured transport stopped (shutdown); nothing is left to send to.
        let _ = self.send((to, datagram)).await;
    }
}

enum Source {
    Udp(Arc<UdpSocket>),
    Secured(mpsc::Receiver<Plain>),
}

/// The datagrams of one listener, read one at a time into a buffer it owns.
pub struct Inbound {
    source: Source,
    buf: Vec<u8>,
    /// The last datagram of a secured transport (its bytes are handed out by reference).
    last: Bytes,
}

impl Inbound {
    /// A UDP socket, read into a buffer of `max_datagram` bytes (longer datagrams are cut).
    pub fn udp(socket: Arc<UdpSocket>, max_datagram: usize) -> Inbound {
        Inbound { source: Source::Udp(socket), buf: vec![0; max_datagram], last: Bytes::new() }
    }

    /// The decrypted stream of a secured transport beneath (DTLS).
    pub fn secured(rx: mpsc::Receiver<Plain>) -> Inbound {
        Inbound { source: Source::Secured(rx), buf: Vec::new(), last: Bytes::new() }
    }

    /// The next datagram: sender, bytes and authenticated identity; `None` when the source
    /// is gone (a secured transport stopped).
    pub async fn recv(&mut self) -> Option<(SocketAddr, &[u8], Option<String>)> {
        match &mut self.source {
            Source::Udp(socket) => loop {
                // Unconstrained: with thousands of device tasks runnable, a receive loop that
                // yields after each coop budget waits behind all of them while the kernel
                // buffer overflows; this way it yields only when the socket is empty.
                match tokio::task::unconstrained(socket.recv_from(&mut self.buf)).await {
                    Ok((n, peer)) => return Some((peer, &self.buf[..n], None)),
                    // ICMP port unreachable and the like surface here on some systems.
                    Err(e) => tracing::debug!(error = %e, "udp recv failed"),
                }
            },
            Source::Secured(rx) => {
                let (peer, bytes, identity) = rx.recv().await?;
                self.last = bytes;
                Some((peer, &self.last[..], identity))
            }
        }
    }
}

/// One listener's two ends: where its datagrams come from, and where its sessions' go.
pub struct Endpoint<O> {
    pub inbound: Inbound,
    pub out: Arc<O>,
}

impl Endpoint<UdpSocket> {
    /// A UDP socket, both ends; datagrams are read into a buffer of `max_datagram` bytes.
    pub fn udp(socket: UdpSocket, max_datagram: usize) -> Endpoint<UdpSocket> {
        let socket = Arc::new(socket);
        Endpoint { inbound: Inbound::udp(socket.clone(), max_datagram), out: socket }
    }
}

impl Endpoint<mpsc::Sender<(SocketAddr, Bytes)>> {
    /// A secured transport beneath (DTLS): its decrypted stream in, its record layer out.
    pub fn secured(rx: mpsc::Receiver<Plain>, tx: mpsc::Sender<(SocketAddr, Bytes)>) -> Self {
        Endpoint { inbound: Inbound::secured(rx), out: Arc::new(tx) }
    }
}

/// Waits until `deadline`; forever without one. The one timer of the datagram engine: a
/// session (or a socket-wide state machine) names its next deadline, the driver sleeps on it.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
