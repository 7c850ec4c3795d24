//! Session state (MQTT 5.0 §4.1): subscriptions, the queue of messages waiting for the
//! client, outgoing QoS 1/2 messages in flight, incoming QoS 2 ids awaiting PUBREL, the will
//! and the expiry. A session outlives its connections; at most one connection is attached.
//!
//! The router pushes into a session's bounded queue under a short lock; the attached
//! connection pulls from it when the client's window allows. A session with no connection
//! keeps queueing (offline queue), within the same bound.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::metrics::{DropReason, Metrics};
use crate::router::SubOptions;
use crate::settings::{BrokerSettings, OverflowPolicy};
use crate::types::{ClientId, Message, Protocol, QoS};

/// Why a connection ended, as the adapter or the broker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client said goodbye (MQTT DISCONNECT 0x00): no will.
    Normal,
    /// The client said goodbye but asked for its will (MQTT 5 DISCONNECT 0x04).
    NormalWithWill,
    /// Network error, keep alive timeout, protocol violation: the will is published.
    Abnormal,
    /// Another connection took the client id over (MQTT 5 0x8E).
    TakenOver,
    /// An administrator kicked the client (MQTT 5 0x98).
    Kicked,
    /// The broker is shutting down (MQTT 5 0x8B).
    Shutdown,
}

impl DisconnectReason {
    pub(crate) fn publishes_will(self) -> bool {
        !matches!(self, DisconnectReason::Normal)
    }
}

/// A will message and its MQTT 5 delay.
#[derive(Debug, Clone)]
pub struct Will {
    pub message: Message,
    pub delay: Duration,
}

/// One message waiting for, or in flight to, a client.
#[derive(Debug, Clone)]
pub struct Pending {
    pub message: Arc<Message>,
    /// Delivery QoS: the lower of the publish QoS and the subscription's.
    pub qos: QoS,
    /// The RETAIN flag to send (set for retained messages sent at subscribe time; otherwise
    /// the published flag where Retain As Published asks for it).
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlightState {
    /// PUBLISH sent, waiting for PUBACK / PUBREC.
    Published,
    /// PUBREL sent, waiting for PUBCOMP.
    Released,
}

#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub id: u16,
    pub pending: Pending,
    pub state: FlightState,
}

/// The broker's side of one attached connection: how to wake it and why it must close.
#[derive(Debug, Default)]
pub(crate) struct ConnSignal {
    pub notify: Notify,
    pub closed: Mutex<Option<DisconnectReason>>,
}

impl ConnSignal {
    pub fn close(&self, reason: DisconnectReason) {
        self.closed.lock().get_or_insert(reason);
        self.notify.notify_one();
    }
}

pub(crate) struct Attached {
    pub conn_id: u64,
    pub signal: Arc<ConnSignal>,
    /// Outgoing QoS 1/2 window: min(client Receive Maximum, max_inflight).
    pub window: usize,
}

pub(crate) struct SessionState {
    /// Raw filters as the client wrote them (`$share/g/f` included) -> options.
    pub subscriptions: HashMap<String, SubOptions>,
    pub queue: VecDeque<Pending>,
    pub inflight: VecDeque<InFlight>,
    next_id: u16,
    pub awaiting_rel: HashSet<u16>,
    pub attached: Option<Attached>,
    /// Bumped at every attach and detach; timers compare it to know they are stale.
    pub generation: u64,
    /// `None`: never expires.
    pub expiry: Option<Duration>,
    /// The will of the attached connection.
    pub will: Option<Will>,
    /// A will whose delay is running after a disconnect.
    pub pending_will: Option<Will>,
    pub protocol: Protocol,
    pub destroyed: bool,
    /// A per-session queue bound below `max_queued_messages`, set by the adapter (e.g. the
    /// buffer of a sleeping MQTT-SN client).
    pub queue_limit: Option<usize>,
}

/// One client session.
pub struct Session {
    id: u64,
    client_id: ClientId,
    online: AtomicBool,
    pub(crate) state: Mutex<SessionState>,
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

impl Session {
    pub(crate) fn new(id: u64, client_id: ClientId, protocol: Protocol, expiry: Option<Duration>) -> Self {
        Session {
            id,
            client_id,
            online: AtomicBool::new(false),
            state: Mutex::new(SessionState {
                subscriptions: HashMap::new(),
                queue: VecDeque::new(),
                inflight: VecDeque::new(),
                next_id: 0,
                awaiting_rel: HashSet::new(),
                attached: None,
                generation: 0,
                expiry,
                will: None,
                pending_will: None,
                protocol,
                destroyed: false,
                queue_limit: None,
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
    /// Returns false if the message (or an older one) was dropped.
    pub(crate) fn enqueue(&self, pending: Pending, settings: &BrokerSettings, metrics: &Metrics) -> bool {
        let mut st = self.state.lock();
        if st.destroyed {
            return false;
        }
        if st.attached.is_none() && pending.qos == QoS::AtMostOnce && !settings.queue_qos0_offline {
            metrics.dropped(DropReason::Qos0Offline);
            return false;
        }
        let mut kept = true;
        let limit = st.queue_limit.map_or(settings.max_queued_messages, |l| l.min(settings.max_queued_messages));
        if st.queue.len() >= limit {
            metrics.dropped(DropReason::QueueFull);
            kept = false;
            match settings.overflow_policy {
                OverflowPolicy::DropNew => return false,
                OverflowPolicy::DropOldestQos0First if st.queue.is_empty() => return false,
                OverflowPolicy::DropOldestQos0First => {
                    match st.queue.iter().position(|p| p.qos == QoS::AtMostOnce) {
                        Some(i) => st.queue.remove(i),
                        None => st.queue.pop_front(),
                    };
                }
            }
        }
        st.queue.push_back(pending);
        if let Some(a) = &st.attached {
            a.signal.notify.notify_one();
        }
        kept
    }

    /// The next thing connection `conn_id` must send, if any is ready now.
    pub(crate) fn poll_delivery(
        &self,
        conn_id: u64,
        resend: &mut VecDeque<u16>,
        now: Instant,
        metrics: &Metrics,
    ) -> Option<Delivery> {
        let mut st = self.state.lock();
        let window = match &st.attached {
            Some(a) if a.conn_id == conn_id => {
                if let Some(reason) = *a.signal.closed.lock() {
                    return Some(Delivery::Close(reason));
                }
                a.window
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
            let front = st.queue.front()?;
            if front.message.is_expired(now) {
                st.queue.pop_front();
                metrics.dropped(DropReason::Expired);
                continue;
            }
            if front.qos == QoS::AtMostOnce {
                let pending = st.queue.pop_front()?;
                return Some(Delivery::Publish { id: 0, dup: false, pending });
            }
            if st.inflight.len() >= window {
                return None;
            }
            let pending = st.queue.pop_front()?;
            let id = st.allocate_id();
            st.inflight.push_back(InFlight { id, pending: pending.clone(), state: FlightState::Published });
            return Some(Delivery::Publish { id, dup: false, pending });
        }
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

    /// PUBACK, PUBCOMP (or a failing PUBREC): the flow of `id` is over.
    pub fn complete(&mut self, id: u16) -> bool {
        match self.inflight.iter().position(|f| f.id == id) {
            Some(i) => {
                self.inflight.remove(i);
                true
            }
            None => false,
        }
    }

    /// PUBREC: the QoS 2 message `id` is received; PUBREL follows.
    pub fn received(&mut self, id: u16) -> bool {
        match self.inflight.iter_mut().find(|f| f.id == id && f.pending.qos == QoS::ExactlyOnce) {
            Some(f) => {
                f.state = FlightState::Released;
                true
            }
            None => false,
        }
    }

    /// Ids of in-flight messages to resend, oldest first, when a connection resumes.
    pub fn resend_ids(&self) -> VecDeque<u16> {
        self.inflight.iter().map(|f| f.id).collect()
    }
}
