//! Session state (MQTT 5.0 §4.1): subscriptions, the queue of messages waiting for the
//! client, outgoing QoS 1/2 messages in flight, incoming QoS 2 ids awaiting PUBREL, the will
//! and the expiry. A session outlives its connections; at most one connection is attached.
//!
//! The router pushes into a session's bounded queue under a short lock; the attached
//! connection pulls from it when the client's window allows. A session with no connection
//! keeps queueing (offline queue), within the same bound.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::auth::ClientInfo;
use crate::metrics::{DropReason, Metrics};
use crate::settings::{BrokerSettings, OverflowPolicy};
use crate::store::{Change, SessionMeta, Store};
use crate::types::SubOptions;
use crate::types::{BoxFuture, ClientId, Message, Protocol, QoS};
pub use crate::types::{DisconnectReason, Pending};

/// A will message and its MQTT 5 delay.
#[derive(Debug, Clone)]
pub struct Will {
    pub message: Message,
    pub delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlightState {
    /// PUBLISH sent, waiting for PUBACK / PUBREC.
    Published,
    /// PUBREL sent, waiting for PUBCOMP.
    Released,
}

/// A queued message and its store sequence number (0 when the session is not persisted).
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub seq: u64,
    pub pending: Pending,
}

#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub seq: u64,
    pub id: u16,
    pub pending: Pending,
    pub state: FlightState,
}

/// The broker's side of one attached connection: how to wake it and why it must close.
/// One waiter at most (the connection's own task), so a waker slot does what a `Notify`
/// did, in less room here and without the waiter node a `Notified` future carries in every
/// idle connection's task.
#[derive(Debug, Default)]
pub(crate) struct ConnSignal {
    waker: Mutex<Option<Waker>>,
    pub closed: Mutex<Option<DisconnectReason>>,
}

impl ConnSignal {
    pub fn close(&self, reason: DisconnectReason) {
        self.closed.lock().get_or_insert(reason);
        self.wake();
    }

    /// Something changed for the connection: wakes its task if it waits.
    pub fn wake(&self) {
        let waker = self.waker.lock().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The connection's task waits: `waker` is woken at the next [`ConnSignal::wake`].
    pub fn register(&self, waker: &Waker) {
        let mut slot = self.waker.lock();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

pub(crate) struct Attached {
    pub conn_id: u64,
    /// Who is connected, for listings (shared with the [`crate::Connection`]).
    pub info: Arc<ClientInfo>,
    pub keep_alive: u16,
    /// Unix time in seconds (4 bytes rather than a 16-byte `SystemTime`: every connected
    /// session carries it).
    pub connected_at: u32,
    pub signal: Arc<ConnSignal>,
    /// Outgoing QoS 1/2 window: min(client Receive Maximum, max_inflight).
    pub window: u16,
    /// In-flight ids to send again (a resumed session), oldest first. Here rather than in
    /// the [`crate::Connection`]: it is read under this lock anyway, and the connection
    /// lives in every idle connection's task, where space is dearer.
    pub resend: VecDeque<u16>,
}

pub(crate) struct SessionState {
    /// Raw filters as the client wrote them (`$share/g/f` included) -> options.
    /// A B-tree: no hasher state or allocation while empty (smaller idle sessions), and
    /// no hash-flooding worry for client-chosen keys.
    pub subscriptions: BTreeMap<String, SubOptions>,
    pub queue: VecDeque<Queued>,
    /// Next store sequence number.
    pub next_seq: u64,
    /// The session's shape has been written to the store (so its end must be too).
    pub persisted: bool,
    pub inflight: VecDeque<InFlight>,
    next_id: u16,
    /// A few ids at most (bounded by `max_awaiting_rel`): a vector is smaller than a set,
    /// and idle sessions are what memory per connection is made of.
    pub awaiting_rel: Vec<u16>,
    pub attached: Option<Attached>,
    /// Bumped at every attach and detach; timers compare it to know they are stale.
    pub generation: u64,
    /// `None`: never expires.
    pub expiry: Option<Duration>,
    /// The will of the attached connection.
    /// Boxed, like `pending_will`: a `Will` is a whole `Message` (~230 bytes) and most
    /// sessions have none, so the space is paid only by sessions that do.
    pub will: Option<Box<Will>>,
    /// A will whose delay is running after a disconnect.
    pub pending_will: Option<Box<Will>>,
    pub protocol: Protocol,
    pub destroyed: bool,
    /// A per-session queue bound below `max_queued_messages`, set by the adapter (e.g. the
    /// buffer of a sleeping MQTT-SN client).
    pub queue_limit: Option<u32>,
    /// Replaces `max_queued_messages` for this session (a bridge's store-and-forward
    /// buffer); `queue_limit` still bounds below it.
    pub queue_capacity: Option<u32>,
}

/// One client session.
pub struct Session {
    id: u64,
    client_id: ClientId,
    online: AtomicBool,
    pub(crate) state: Mutex<SessionState>,
    store: Arc<dyn Store>,
}

/// Something an attached connection must do next.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Send this message. `id` is the packet id for QoS 1/2 (0 for QoS 0); `dup` is set when
    /// it is a redelivery after the session resumed.
    Publish { id: u16, dup: bool, pending: Pending },
    /// Resend PUBREL for a QoS 2 message the client had acknowledged with PUBREC.
    Release { id: u16 },
    /// The broker closes this connection.
    Close(DisconnectReason),
}

/// What [`Session::enqueue`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Enqueued {
    /// Why a message (this one or an older one) was dropped, if one was.
    pub dropped: Option<DropReason>,
    /// The ticket of the last store record made (none: nothing recorded).
    pub ticket: Option<u64>,
}

impl Session {
    pub(crate) fn new(
        id: u64,
        client_id: ClientId,
        protocol: Protocol,
        expiry: Option<Duration>,
        store: Arc<dyn Store>,
    ) -> Self {
        Session {
            id,
            client_id,
            online: AtomicBool::new(false),
            store,
            state: Mutex::new(SessionState {
                subscriptions: BTreeMap::new(),
                queue: VecDeque::new(),
                next_seq: 1,
                persisted: false,
                inflight: VecDeque::new(),
                next_id: 0,
                awaiting_rel: Vec::new(),
                attached: None,
                generation: 0,
                expiry,
                will: None,
                pending_will: None,
                protocol,
                destroyed: false,
                queue_limit: None,
                queue_capacity: None,
            }),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    /// Queues a message for the client, applying the queue bound and overflow policy.
    /// Returns why a message (this one or an older one) was dropped, if one was, and the
    /// ticket of the last store record it made.
    pub(crate) fn enqueue(&self, pending: Pending, settings: &BrokerSettings, metrics: &Metrics) -> Enqueued {
        let mut st = self.state.lock();
        if st.destroyed {
            return Enqueued::default();
        }
        if st.attached.is_none() && pending.qos == QoS::AtMostOnce && !settings.queue_qos0_offline {
            metrics.dropped(DropReason::Qos0Offline);
            settle(&pending);
            return Enqueued { dropped: Some(DropReason::Qos0Offline), ticket: None };
        }
        let mut ticket = None;
        let mut dropped_one = None;
        let base = st.queue_capacity.map_or(settings.max_queued_messages, |c| c as usize);
        let limit = st.queue_limit.map_or(base, |l| (l as usize).min(base));
        if st.queue.len() >= limit {
            metrics.dropped(DropReason::QueueFull);
            dropped_one = Some(DropReason::QueueFull);
            match settings.overflow_policy {
                OverflowPolicy::DropNew => {
                    settle(&pending);
                    return Enqueued { dropped: dropped_one, ticket };
                }
                OverflowPolicy::DropOldestQos0First if st.queue.is_empty() => {
                    settle(&pending);
                    return Enqueued { dropped: dropped_one, ticket };
                }
                OverflowPolicy::DropOldestQos0First => {
                    let dropped = match st.queue.iter().position(|q| q.pending.qos == QoS::AtMostOnce) {
                        Some(i) => st.queue.remove(i),
                        None => st.queue.pop_front(),
                    };
                    if let Some(d) = dropped {
                        ticket = self.log_remove(&st, d.seq);
                        settle(&d.pending);
                    }
                }
            }
        }
        let full = st.persisted && self.store.is_full();
        if full {
            metrics.dropped(DropReason::StoreFull);
        }
        let seq = if st.persisted && !full {
            let seq = st.next_seq;
            st.next_seq += 1;
            ticket = Some(self.store.record(Change::Enqueue {
                client: self.client_id.clone(),
                seq,
                pending: pending.clone(),
            }));
            seq
        } else {
            0
        };
        st.queue.push_back(Queued { seq, pending });
        if let Some(a) = &st.attached {
            a.signal.wake();
        }
        Enqueued { dropped: dropped_one, ticket }
    }

    /// The next thing connection `conn_id` must send, if any is ready now.
    pub(crate) fn poll_delivery(&self, conn_id: u64, now: Instant, metrics: &Metrics) -> Option<Delivery> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let (window, resend) = match &mut st.attached {
            Some(a) if a.conn_id == conn_id => {
                if let Some(reason) = *a.signal.closed.lock() {
                    return Some(Delivery::Close(reason));
                }
                (usize::from(a.window), &mut a.resend)
            }
            _ => return Some(Delivery::Close(DisconnectReason::TakenOver)),
        };
        while let Some(id) = resend.pop_front() {
            if let Some(f) = st.inflight.iter().find(|f| f.id == id) {
                return Some(match f.state {
                    FlightState::Published => Delivery::Publish { id, dup: true, pending: f.pending.clone() },
                    FlightState::Released => Delivery::Release { id },
                });
            }
        }
        loop {
            let front = &st.queue.front()?.pending;
            if front.message.is_expired(now) {
                let q = st.queue.pop_front()?;
                self.log_remove(st, q.seq);
                metrics.dropped(DropReason::Expired);
                settle(&q.pending);
                continue;
            }
            if front.qos == QoS::AtMostOnce {
                let q = st.queue.pop_front()?;
                self.log_remove(st, q.seq);
                settle(&q.pending);
                return Some(Delivery::Publish { id: 0, dup: false, pending: q.pending });
            }
            if st.inflight.len() >= window {
                return None;
            }
            let Queued { seq, pending } = st.queue.pop_front()?;
            // A message from a JetStream stream keeps the id every node gives it (unless a
            // local delivery holds that id now).
            let id = match pending.message.receipt.as_ref().and_then(|r| r.0.packet_id()) {
                Some(id) if !st.inflight.iter().any(|f| f.id == id) => id,
                _ => st.allocate_id(),
            };
            if seq != 0 {
                self.store.record(Change::Sent { client: self.client_id.clone(), seq, packet_id: id });
            }
            st.inflight.push_back(InFlight { seq, id, pending: pending.clone(), state: FlightState::Published });
            return Some(Delivery::Publish { id, dup: false, pending });
        }
    }
}

impl Session {
    /// Records that queued message `seq` is gone; its ticket, if it was persisted.
    fn log_remove(&self, st: &SessionState, seq: u64) -> Option<u64> {
        (seq != 0 && st.persisted).then(|| self.store.record(Change::Remove { client: self.client_id.clone(), seq }))
    }

    /// PUBACK, PUBCOMP (or a failing PUBREC): the flow of `id` is over; returns its message
    /// if it was in flight.
    pub(crate) fn complete(&self, id: u16) -> Option<Arc<Message>> {
        let mut st = self.state.lock();
        let i = st.inflight.iter().position(|f| f.id == id)?;
        let f = st.inflight.remove(i)?;
        self.log_remove(&st, f.seq);
        settle(&f.pending);
        Some(f.pending.message)
    }

    /// PUBREC: the QoS 2 message `id` is received; PUBREL follows. `Some` with, for a
    /// message from a JetStream stream, what resolves once the stream let it go (PUBREL
    /// must wait for it: until then a redelivery may come, which the client recognises by
    /// the id it holds until PUBREL).
    pub(crate) fn received(&self, id: u16) -> Option<Option<BoxFuture<'static, ()>>> {
        let mut st = self.state.lock();
        let persisted = st.persisted;
        let f = st.inflight.iter_mut().find(|f| f.id == id && f.pending.qos == QoS::ExactlyOnce)?;
        f.state = FlightState::Released;
        let settled = f.pending.message.receipt.as_ref().and_then(|r| r.0.done(true));
        if persisted && f.seq != 0 {
            self.store.record(Change::Released { client: self.client_id.clone(), seq: f.seq });
        }
        Some(settled)
    }

    /// Marks an incoming QoS 2 id as awaiting PUBREL (`true`) or released.
    pub(crate) fn set_awaiting(&self, st: &mut SessionState, packet_id: u16, awaiting: bool) -> bool {
        let position = st.awaiting_rel.iter().position(|id| *id == packet_id);
        let changed = match (awaiting, position) {
            (true, None) => {
                st.awaiting_rel.push(packet_id);
                true
            }
            (false, Some(i)) => {
                st.awaiting_rel.swap_remove(i);
                true
            }
            _ => false,
        };
        if changed && st.persisted {
            self.store.record(Change::AwaitRel { client: self.client_id.clone(), packet_id, awaiting });
        }
        changed
    }

    /// The session's shape as the store keeps it.
    pub(crate) fn meta(&self, st: &SessionState, expires_at: Option<std::time::SystemTime>) -> SessionMeta {
        SessionMeta {
            client_id: self.client_id.clone(),
            protocol: st.protocol,
            expiry: st.expiry,
            expires_at,
            subscriptions: st.subscriptions.iter().map(|(f, o)| (f.clone(), *o)).collect(),
        }
    }

    /// Writes the session's shape to the store if it outlives its connection. The first
    /// time, also writes what it already holds (queued and in-flight messages, QoS 2 ids).
    pub(crate) fn persist(&self, st: &mut SessionState, expires_at: Option<std::time::SystemTime>) {
        if !self.store.keeps() || st.destroyed || st.expiry == Some(Duration::ZERO) {
            return;
        }
        self.store.record(Change::Session(self.meta(st, expires_at)));
        if st.persisted {
            return;
        }
        st.persisted = true;
        let client = &self.client_id;
        let mut next = st.next_seq;
        for q in st.queue.iter_mut() {
            q.seq = next;
            next += 1;
            self.store.record(Change::Enqueue { client: client.clone(), seq: q.seq, pending: q.pending.clone() });
        }
        for f in st.inflight.iter_mut() {
            f.seq = next;
            next += 1;
            self.store.record(Change::Enqueue { client: client.clone(), seq: f.seq, pending: f.pending.clone() });
            self.store.record(Change::Sent { client: client.clone(), seq: f.seq, packet_id: f.id });
            if f.state == FlightState::Released {
                self.store.record(Change::Released { client: client.clone(), seq: f.seq });
            }
        }
        st.next_seq = next;
        for id in &st.awaiting_rel {
            self.store.record(Change::AwaitRel { client: client.clone(), packet_id: *id, awaiting: true });
        }
    }
}

/// Tells the cluster a delivery of a message from a JetStream stream is over.
fn settle(p: &Pending) {
    if let Some(r) = &p.message.receipt {
        r.0.done(false);
    }
}

impl SessionState {
    fn allocate_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && !self.inflight.iter().any(|f| f.id == self.next_id) {
                return self.next_id;
            }
        }
    }

    /// Ids of in-flight messages to resend, oldest first, when a connection resumes.
    pub fn resend_ids(&self) -> VecDeque<u16> {
        self.inflight.iter().map(|f| f.id).collect()
    }
}
