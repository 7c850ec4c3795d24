//! Administrative views of the broker for the HTTP API, `roost ctl` and the web page:
//! clients, their queued and in-flight messages, subscriptions and retained messages as
//! snapshots, and the retained delete.
//! Each view takes the sessions table lock once, then each session's lock in turn (the
//! broker's lock order), and copies what it shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::broker::Broker;
use crate::session::{FlightState, Pending, Session};
use crate::store::Change;
use crate::trace::Tracer;
use crate::types::SubOptions;
use crate::types::{ClientId, Message};

/// One session (and its connection, if any) as listed.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub client_id: ClientId,
    /// The protocol's name (a custom codec's own name where it has one).
    pub protocol: String,
    pub connected: bool,
    /// Of the connection; `None` when offline.
    pub username: Option<String>,
    pub peer: Option<SocketAddr>,
    pub keep_alive: u16,
    pub connected_at: Option<SystemTime>,
    pub subscriptions: usize,
    /// Messages waiting in the session's queue.
    pub queued: usize,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement.
    pub inflight: usize,
    /// `None`: never expires.
    pub session_expiry: Option<Duration>,
}

/// What a client listing filters on, read under the session's lock without copying.
#[derive(Debug)]
pub struct ClientFacts<'a> {
    pub client_id: &'a ClientId,
    pub protocol: &'a str,
    pub connected: bool,
    pub username: Option<&'a str>,
}

/// A session's waiting messages as listed: the first `limit` of each list, and how many
/// each list holds in all.
#[derive(Debug, Clone)]
pub struct ClientMessages {
    /// Oldest first: what the client gets next.
    pub queued: Vec<Pending>,
    pub queued_total: usize,
    /// Oldest first.
    pub inflight: Vec<InFlightView>,
    pub inflight_total: usize,
}

/// An outgoing QoS 1/2 message awaiting its acknowledgement.
#[derive(Debug, Clone)]
pub struct InFlightView {
    pub packet_id: u16,
    /// True once PUBREC came and PUBREL went (QoS 2): only PUBCOMP is awaited.
    pub released: bool,
    pub pending: Pending,
}

/// One subscription as listed.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    pub client_id: ClientId,
    /// As the client wrote it (`$share/{group}/...` included).
    pub filter: String,
    pub options: SubOptions,
}

fn view(s: &Session) -> ClientView {
    let st = s.state.lock();
    let attached = st.attached.as_ref();
    ClientView {
        client_id: s.client_id().clone(),
        protocol: attached.map_or_else(|| st.protocol.as_str().to_string(), |a| a.info.protocol_name().to_string()),
        connected: attached.is_some(),
        username: attached.and_then(|a| a.info.username.clone()),
        peer: attached.and_then(|a| a.info.peer),
        keep_alive: attached.map_or(0, |a| a.keep_alive),
        connected_at: attached.map(|a| std::time::UNIX_EPOCH + Duration::from_secs(u64::from(a.connected_at))),
        subscriptions: st.subscriptions.len(),
        queued: st.queue.len(),
        inflight: st.inflight.len(),
        session_expiry: st.expiry,
    }
}

impl Broker {
    /// The running traces (see [`crate::trace`]); adapters log packets through it.
    pub fn tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.inner.sessions.lock().values().cloned().collect()
    }

    /// Every session, online and offline, sorted by client id.
    pub fn clients(&self) -> Vec<ClientView> {
        let mut out: Vec<ClientView> = self.all_sessions().iter().map(|s| view(s)).collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }

    /// The sessions `keep` accepts, sorted by client id: how many there are, and the views
    /// of `skip..skip + take` only. A page of a large fleet costs a sort of the ids, not a
    /// copy of every session.
    pub fn clients_page(
        &self,
        keep: impl Fn(&ClientFacts<'_>) -> bool,
        skip: usize,
        take: usize,
    ) -> (usize, Vec<ClientView>) {
        let mut sessions = self.all_sessions();
        sessions.sort_by(|a, b| a.client_id().cmp(b.client_id()));
        let mut count = 0;
        let mut page = Vec::with_capacity(take.min(sessions.len()));
        for s in &sessions {
            let kept = {
                let st = s.state.lock();
                let attached = st.attached.as_ref();
                keep(&ClientFacts {
                    client_id: s.client_id(),
                    protocol: attached.map_or(st.protocol.as_str(), |a| a.info.protocol_name()),
                    connected: attached.is_some(),
                    username: attached.and_then(|a| a.info.username.as_deref()),
                })
            };
            if kept {
                if count >= skip && page.len() < take {
                    page.push(view(s));
                }
                count += 1;
            }
        }
        (count, page)
    }

    /// One session by client id.
    pub fn client(&self, client_id: &ClientId) -> Option<ClientView> {
        let s = self.inner.sessions.lock().get(client_id).cloned()?;
        Some(view(&s))
    }

    /// The first `limit` queued and in-flight messages of one session (messages are shared,
    /// so the copy is of pointers; the lock is held for at most `2 * limit` clones).
    pub fn client_messages(&self, client_id: &ClientId, limit: usize) -> Option<ClientMessages> {
        let s = self.inner.sessions.lock().get(client_id).cloned()?;
        let st = s.state.lock();
        Some(ClientMessages {
            queued: st.queue.iter().take(limit).map(|q| q.pending.clone()).collect(),
            queued_total: st.queue.len(),
            inflight: st
                .inflight
                .iter()
                .take(limit)
                .map(|f| InFlightView {
                    packet_id: f.id,
                    released: f.state == FlightState::Released,
                    pending: f.pending.clone(),
                })
                .collect(),
            inflight_total: st.inflight.len(),
        })
    }

    /// Messages queued and in flight over all sessions (queue depth, for `/metrics`).
    pub fn queue_totals(&self) -> (usize, usize) {
        self.all_sessions().iter().fold((0, 0), |(q, f), s| {
            let st = s.state.lock();
            (q + st.queue.len(), f + st.inflight.len())
        })
    }

    /// Subscriptions over all sessions (a filter subscribed by two sessions counts twice).
    pub fn subscription_count(&self) -> usize {
        self.all_sessions().iter().map(|s| s.state.lock().subscriptions.len()).sum()
    }

    /// Every subscription of every session, sorted by client id then filter.
    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let mut out = Vec::new();
        for s in self.all_sessions() {
            let st = s.state.lock();
            for (filter, options) in &st.subscriptions {
                out.push(SubscriptionView {
                    client_id: s.client_id().clone(),
                    filter: filter.clone(),
                    options: *options,
                });
            }
        }
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id).then_with(|| a.filter.cmp(&b.filter)));
        out
    }

    /// Retained messages whose topics match `filter` (a valid topic filter), sorted by topic.
    pub fn retained_messages(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut out = self.inner.retained.matching(filter, Instant::now());
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    /// Deletes the retained message of `topic` (without publishing anything to
    /// subscribers); false if there was none.
    pub fn delete_retained(&self, topic: &str) -> bool {
        if crate::topic::validate_name(topic, &self.inner.settings).is_err() {
            return false;
        }
        let exists = !self.inner.retained.matching(topic, Instant::now()).is_empty();
        if !exists {
            return false;
        }
        let clear = Arc::new(Message::new(topic, bytes::Bytes::new(), crate::types::QoS::AtMostOnce, true));
        self.inner.retained.set(&clear, usize::MAX);
        if self.inner.store.keeps() {
            self.inner.store.record(Change::Retain { topic: clear.topic.clone(), message: None });
        }
        true
    }
}
