//! Driver layer, shared by the UDP adapters (MQTT-SN, CoAP, codec UDP; DTLS beneath CoAP and
//! LwM2M): one **datagram engine** — a demux by peer (or any identity the protocol derives
//! from a datagram, e.g. a DTLS identity or a CoAP client id), a bounded queue per device,
//! and one loop per device that drives a [`DatagramSession`] with time passed in.
//!
//! A protocol supplies only its session; the engine owns the per-device queue, the timer
//! (the session's [`DatagramSession::poll_timeout`], slept on by [`sleep_until`]),
//! deliveries from the core and shutdown. Datagrams come from an [`Inbound`] (a UDP socket,
//! or the decrypted stream of DTLS) and leave through an [`Outbound`]. Order of calls, for
//! every event of one device:
//!
//! 1. exactly one of `handle_datagram` (from [`Demux::dispatch`] / [`Demux::spawn`]),
//!    `handle_delivery` (from the session's [`Connection`]), `handle_timeout` (the deadline
//!    from `poll_timeout` passed) or `handle_shutdown` (the gateway is stopping);
//! 2. `poll_transmit` until `None`: each datagram is sent to the address it names;
//! 3. on an [`End`]: the device leaves the demux table (its next datagram starts afresh),
//!    pending transmits are sent, then `finish`.

mod demux;
mod io;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use demux::{Demux, Dispatch};
pub use io::{Endpoint, Inbound, Outbound, Plain, sleep_until};

use crate::{Connection, Delivery, DisconnectReason};

/// Why a device's session ended: the disconnect reason for the core and a line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub reason: DisconnectReason,
    pub why: String,
}

impl End {
    pub fn new(reason: DisconnectReason, why: impl Into<String>) -> End {
        End { reason, why: why.into() }
    }
}

/// One device's protocol state, as the engine drives it. Implementations hold no socket and
/// no timer: they queue datagrams for [`DatagramSession::poll_transmit`] and name their next
/// deadline in [`DatagramSession::poll_timeout`]. The `handle_*` methods are async only
/// because talking to the core (connect, publish with acknowledgement) is.
pub trait DatagramSession: Send + 'static {
    /// What the demux hands a device: a decoded frame, or raw bytes with their sender.
    type Input: Send + 'static;

    /// The core connection whose deliveries the session wants now (`None`: none, e.g.
    /// before CONNECT or while the device sleeps).
    fn connection(&self) -> Option<&Connection>;
    /// The next instant `handle_timeout` must run (retransmission, keep-alive, ...).
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the gateway's shutdown is handled here (`true`), or left to the
    /// `Delivery::Close` the core sends every connection at shutdown.
    fn watches_shutdown(&self) -> bool {
        true
    }
    fn handle_datagram(&mut self, now: Instant, input: Self::Input) -> impl Future<Output = Result<(), End>> + Send;
    fn handle_delivery(&mut self, now: Instant, delivery: Delivery) -> impl Future<Output = Result<(), End>> + Send;
    fn handle_timeout(&mut self, now: Instant) -> impl Future<Output = Result<(), End>> + Send;
    fn handle_shutdown(&mut self) -> impl Future<Output = End> + Send;
    /// The next datagram to send, and where.
    fn poll_transmit(&mut self) -> Option<(Bytes, SocketAddr)>;
    /// The session is over and out of the table: release what it holds in the core.
    fn finish(self, end: End) -> impl Future<Output = ()> + Send;
}

enum Event<I> {
    Input(I),
    Delivery(Delivery),
    Timeout,
    Shutdown,
}

/// The per-device loop: one event, then everything the session wants sent.
async fn run<S: DatagramSession, O: Outbound>(
    mut s: S,
    mut rx: mpsc::Receiver<S::Input>,
    out: &O,
    shutdown: CancellationToken,
) -> (S, End) {
    loop {
        let deadline = s.poll_timeout();
        let watch = s.watches_shutdown();
        let event = {
            let conn = s.connection();
            let delivery = async move {
                match conn {
                    Some(c) => c.next_delivery().await,
                    None => std::future::pending().await,
                }
            };
            let timer = sleep_until(deadline);
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => Event::Input(m),
                    // The demux is gone: its socket stopped at shutdown.
                    None => Event::Shutdown,
                },
                d = delivery => Event::Delivery(d),
                () = timer => Event::Timeout,
                () = shutdown.cancelled(), if watch => Event::Shutdown,
            }
        };
        let now = Instant::now();
        let step = match event {
            Event::Input(i) => s.handle_datagram(now, i).await,
            Event::Delivery(d) => s.handle_delivery(now, d).await,
            Event::Timeout => s.handle_timeout(now).await,
            Event::Shutdown => Err(s.handle_shutdown().await),
        };
        flush(&mut s, out).await;
        if let Err(end) = step {
            rx.close();
            return (s, end);
        }
    }
}

/// Sends everything the session has queued.
async fn flush<S: DatagramSession, O: Outbound>(s: &mut S, out: &O) {
    while let Some((datagram, to)) = s.poll_transmit() {
        out.transmit(datagram, to).await;
    }
}
