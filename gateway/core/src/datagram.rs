//! Driver layer, shared by the UDP adapters: one **datagram engine** — a demux by peer (or
//! any identity the protocol derives from a datagram), a bounded queue per device, and one
//! loop per device that drives a [`DatagramSession`] with time passed in.
//!
//! A protocol supplies only its session; the engine owns the socket, the per-device queue,
//! the timer (the session's [`DatagramSession::poll_timeout`]), deliveries from the core and
//! shutdown. Order of calls, for every event of one device:
//!
//! 1. exactly one of `handle_datagram` (from [`Demux::dispatch`] / [`Demux::spawn`]),
//!    `handle_delivery` (from the session's [`Connection`]), `handle_timeout` (the deadline
//!    from `poll_timeout` passed) or `handle_shutdown` (the gateway is stopping);
//! 2. `poll_transmit` until `None`: each datagram is sent to the address it names;
//! 3. on an [`End`]: the device leaves the demux table (its next datagram starts afresh),
//!    pending transmits are sent, then `finish`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

struct Entry<I> {
    id: u64,
    tx: mpsc::Sender<I>,
}

/// What [`Demux::dispatch`] did with an input.
pub enum Dispatch<I> {
    /// Queued for the device's session.
    Queued,
    /// The device has a full queue: dropped (UDP semantics: the peer retries). Count it.
    Busy(I),
    /// No session for this key (or its session just ended): the caller decides whether to
    /// [`Demux::spawn`] one.
    Unknown(I),
}

/// The device table of one socket: key -> that device's bounded input queue.
pub struct Demux<K, I> {
    table: Arc<parking_lot::Mutex<HashMap<K, Entry<I>>>>,
    next_id: AtomicU64,
    queue: usize,
}

impl<K: Clone + Eq + Hash + Send + 'static, I: Send + 'static> Demux<K, I> {
    /// A table whose devices each queue at most `queue` inputs.
    pub fn new(queue: usize) -> Demux<K, I> {
        Demux { table: Arc::default(), next_id: AtomicU64::new(1), queue: queue.max(1) }
    }

    /// Devices with a running session.
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, key: &K) -> bool {
        self.table.lock().contains_key(key)
    }

    /// Hands `input` to the session of `key`, if one runs.
    pub fn dispatch(&self, key: &K, input: I) -> Dispatch<I> {
        let mut table = self.table.lock();
        let Some(entry) = table.get(key) else { return Dispatch::Unknown(input) };
        match entry.tx.try_send(input) {
            Ok(()) => Dispatch::Queued,
            Err(mpsc::error::TrySendError::Full(i)) => Dispatch::Busy(i),
            Err(mpsc::error::TrySendError::Closed(i)) => {
                table.remove(key);
                Dispatch::Unknown(i)
            }
        }
    }

    /// Starts `session` for `key` with `first` as its first input, on `tracker`.
    pub fn spawn<S: DatagramSession<Input = I>>(
        &self,
        key: K,
        first: I,
        session: S,
        socket: Arc<UdpSocket>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let (tx, rx) = mpsc::channel(self.queue);
        let _ = tx.try_send(first);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.table.lock().insert(key.clone(), Entry { id, tx });
        let table = self.table.clone();
        tracker.spawn(async move {
            let (mut session, end) = run(session, rx, &socket, shutdown).await;
            // Out of the table first, so the next datagram from this device starts afresh.
            {
                let mut t = table.lock();
                if t.get(&key).is_some_and(|e| e.id == id) {
                    t.remove(&key);
                }
            }
            transmit(&mut session, &socket).await;
            session.finish(end).await;
        });
    }
}

enum Event<I> {
    Input(I),
    Delivery(Delivery),
    Timeout,
    Shutdown,
}

/// The per-device loop: one event, then everything the session wants sent.
async fn run<S: DatagramSession>(
    mut s: S,
    mut rx: mpsc::Receiver<S::Input>,
    socket: &UdpSocket,
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
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
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
        transmit(&mut s, socket).await;
        if let Err(end) = step {
            rx.close();
            return (s, end);
        }
    }
}

async fn transmit<S: DatagramSession>(s: &mut S, socket: &UdpSocket) {
    while let Some((datagram, to)) = s.poll_transmit() {
        if let Err(e) = socket.send_to(&datagram, to).await {
            // ICMP errors from earlier sends and the like: the session's retries cover it.
            tracing::debug!(peer = %to, error = %e, "udp send failed");
        }
    }
}
