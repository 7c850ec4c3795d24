//! Driver layer, the datagram engine's device table: identity -> that device's bounded input
//! queue, and (for protocols whose replies carry no identity, as CoAP's ACK/RST) the peer
//! addresses each device was last heard from. A session's entry leaves the table when its
//! loop ends, so the table holds exactly the running sessions.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DatagramSession, Outbound};

struct Entry<I> {
    id: u64,
    tx: mpsc::Sender<I>,
    /// The addresses that route to this device (at most `peers_per_device`, newest last).
    peers: Vec<SocketAddr>,
}

struct Table<K, I> {
    devices: HashMap<K, Entry<I>>,
    by_peer: HashMap<SocketAddr, K>,
}

impl<K: Eq + Hash, I> Table<K, I> {
    /// Forgets `key` and the addresses that route to it.
    fn remove(&mut self, key: &K) {
        if let Some(e) = self.devices.remove(key) {
            for p in e.peers {
                if self.by_peer.get(&p) == Some(key) {
                    self.by_peer.remove(&p);
                }
            }
        }
    }
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
    table: Arc<parking_lot::Mutex<Table<K, I>>>,
    next_id: AtomicU64,
    queue: usize,
    peers_per_device: usize,
}

impl<K: Clone + Eq + Hash + Send + 'static, I: Send + 'static> Demux<K, I> {
    /// A table whose devices each queue at most `queue` inputs.
    pub fn new(queue: usize) -> Demux<K, I> {
        let table = Table { devices: HashMap::new(), by_peer: HashMap::new() };
        Demux {
            table: Arc::new(parking_lot::Mutex::new(table)),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
            peers_per_device: 0,
        }
    }

    /// Remembers up to `n` addresses per device for [`Demux::remember`] / [`Demux::key_of`]
    /// (a NAT may rebind a device several times while its session lives).
    pub fn with_peers(mut self, n: usize) -> Demux<K, I> {
        self.peers_per_device = n;
        self
    }

    /// Devices with a running session.
    pub fn len(&self) -> usize {
        self.table.lock().devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, key: &K) -> bool {
        self.table.lock().devices.contains_key(key)
    }

    /// The device last heard from `peer`, for datagrams that do not name their device.
    pub fn key_of(&self, peer: &SocketAddr) -> Option<K> {
        self.table.lock().by_peer.get(peer).cloned()
    }

    /// Routes `peer` to `key`'s session from now on (its oldest address is forgotten beyond
    /// `peers_per_device`). No-op for a key without a session.
    pub fn remember(&self, key: &K, peer: SocketAddr) {
        if self.peers_per_device == 0 {
            return;
        }
        let mut table = self.table.lock();
        let Some(entry) = table.devices.get_mut(key) else { return };
        let mut forget = None;
        if !entry.peers.contains(&peer) {
            if entry.peers.len() >= self.peers_per_device {
                forget = Some(entry.peers.remove(0));
            }
            entry.peers.push(peer);
        }
        if let Some(old) = forget
            && table.by_peer.get(&old) == Some(key)
        {
            table.by_peer.remove(&old);
        }
        table.by_peer.insert(peer, key.clone());
    }

    /// Hands `input` to the session of `key`, if one runs.
    pub fn dispatch(&self, key: &K, input: I) -> Dispatch<I> {
        let mut table = self.table.lock();
        let Some(entry) = table.devices.get(key) else { return Dispatch::Unknown(input) };
        match entry.tx.try_send(input) {
            Ok(()) => Dispatch::Queued,
            Err(mpsc::error::TrySendError::Full(i)) => Dispatch::Busy(i),
            Err(mpsc::error::TrySendError::Closed(i)) => {
                table.remove(key);
                Dispatch::Unknown(i)
            }
        }
    }

    /// Starts `session` for `key` with `first` as its first input, on `tracker`; what it
    /// transmits goes out through `out`.
    pub fn spawn<S: DatagramSession<Input = I>, O: Outbound>(
        &self,
        key: K,
        first: I,
        session: S,
        out: Arc<O>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let (tx, rx) = mpsc::channel(self.queue);
        let _ = tx.try_send(first);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut table = self.table.lock();
            // A replaced entry's addresses route to the new session, as it is the same device.
            let peers = table.devices.remove(&key).map(|e| e.peers).unwrap_or_default();
            table.devices.insert(key.clone(), Entry { id, tx, peers });
        }
        let table = self.table.clone();
        tracker.spawn(async move {
            let (mut session, end) = super::run(session, rx, &*out, shutdown).await;
            // Out of the table first, so the next datagram from this device starts afresh.
            {
                let mut t = table.lock();
                if t.devices.get(&key).is_some_and(|e| e.id == id) {
                    t.remove(&key);
                }
            }
            super::flush(&mut session, &*out).await;
            session.finish(end).await;
        });
    }
}
