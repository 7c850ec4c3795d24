//! The extension point a cluster plugs into (roost-cluster, over NATS JetStream): the core
//! knows no transport, only a [`ClusterLink`] it tells of local routes, local publishes and
//! client ids, and the calls by which the link hands it what other nodes sent.
//!
//! Loops cannot form: a message that came from another node enters through
//! [`Broker::route_remote`], which routes it locally and never calls [`ClusterLink::forward`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::broker::Broker;
use crate::session::{DisconnectReason, FlightState};
use crate::store::{SessionMeta, StoredMessage, StoredSession};
use crate::types::{ClientId, Message};

/// A shared subscription group as the whole cluster names it: (group, filter).
pub type GroupKey = (Arc<str>, Arc<str>);

/// Which shared groups this node serves for one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalShare {
    /// Every group with members here (no cluster, or no member elsewhere).
    #[default]
    All,
    /// Only these groups: the cluster picked this node for them, another node for the rest.
    Only(Vec<GroupKey>),
}

impl LocalShare {
    pub fn serves(&self, group: &str, filter: &str) -> bool {
        match self {
            LocalShare::All => true,
            LocalShare::Only(list) => list.iter().any(|(g, f)| &**g == group && &**f == filter),
        }
    }
}

/// What [`ClusterLink::forward`] did with a local publish.
#[derive(Default)]
pub struct Forwarded {
    /// Nodes the message was sent to.
    pub nodes: usize,
    pub share: LocalShare,
    /// Persistent sessions the message was stored for in JetStream: no node (this one
    /// included) routes it to them directly, they get it from their stream.
    pub stored_for: Vec<ClientId>,
    /// Resolves once JetStream has acknowledged those stores: a QoS 1/2 publish is
    /// acknowledged to its publisher only then. `None`: nothing to wait for.
    pub stored: Option<BoxFuture<'static, Result<(), String>>>,
}

impl std::fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarded")
            .field("nodes", &self.nodes)
            .field("share", &self.share)
            .field("stored_for", &self.stored_for)
            .field("stored", &self.stored.is_some())
            .finish()
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A delivery the cluster must hear the end of: a message taken from a persistent session's
/// JetStream stream is acknowledged there only once the client has it (PUBACK, PUBREC), or
/// the session dropped it by its own rules (expired, queue full, delivered at QoS 0).
pub trait Receipt: Send + Sync {
    /// The delivery is over: sends the acknowledgement at once (repeats are ignored). With
    /// `confirm`, the first call returns what resolves once the stream has it (the client
    /// may then forget a QoS 2 packet id: a redelivery can no longer happen).
    fn done(&self, confirm: bool) -> Option<BoxFuture<'static, ()>>;
    /// The packet id to deliver it with: the same on every node that delivers it, so that a
    /// client still holding the id of a QoS 2 message it received recognises the redelivery.
    fn packet_id(&self) -> Option<u16>;
}

/// A [`Receipt`] as a message carries it.
#[derive(Clone)]
pub struct ReceiptRef(pub Arc<dyn Receipt>);

impl std::fmt::Debug for ReceiptRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt").field("packet_id", &self.0.packet_id()).finish()
    }
}

/// A session moving between nodes: what [`Broker::hand_off`] exports and
/// [`Broker::adopt`] imports (the store's record shape, so it has one encoding).
pub type SessionHandoff = StoredSession;

/// The cluster as the core sees it. Every method but [`ClusterLink::claim`] is called on the
/// routing path, some under the router's lock: they must only record and return.
pub trait ClusterLink: Send + Sync {
    /// A message published on this node: send it to the nodes with matching routes and say
    /// which shared groups stay here. Not called for `$` topics, which stay per node.
    fn forward(&self, msg: &Arc<Message>) -> Forwarded;
    /// A local subscription was added (`group` for `$share/{group}/{filter}`).
    fn route_added(&self, group: Option<&str>, filter: &str);
    /// A local subscription was removed.
    fn route_removed(&self, group: Option<&str>, filter: &str);
    /// A client is connecting here: make this node the owner of `client_id` cluster-wide,
    /// closing it where it was. Returns the session to resume if another node held one and
    /// `clean_start` is false. Must be bounded in time (the connect waits for it).
    fn claim<'a>(&'a self, client_id: &'a ClientId, clean_start: bool) -> BoxFuture<'a, Option<SessionHandoff>>;
    /// The session of `client_id` ended on this node (expired, or clean and disconnected).
    fn session_ended(&self, client_id: &ClientId);
    /// A persistent session (expiry above 0) is held here, new or resumed, or its
    /// subscriptions changed: `meta` is its shape now.
    fn session_here(&self, _meta: &SessionMeta) {}
}

impl Broker {
    /// Attaches a cluster: from now on routes, publishes and connects are told to `link`.
    /// Returns the subscriptions held now as (group, filter, count) for the link to publish.
    pub fn attach_cluster(&self, link: Arc<dyn ClusterLink>) -> Vec<(Option<String>, String, usize)> {
        if self.inner.cluster.set(link.clone()).is_err() {
            tracing::warn!("a cluster was already attached");
        }
        self.inner.router.attach(link)
    }

    /// Routes a message that another node forwarded: to local subscribers only (never back
    /// to the cluster), serving exactly the shared `groups` that node picked this one for.
    /// Retained state is not touched: it arrives through the cluster's retained table.
    pub fn route_remote(&self, msg: Message, groups: Vec<GroupKey>) -> usize {
        self.route_remote_except(msg, groups, &[])
    }

    /// [`Broker::route_remote`], skipping the sessions in `stored_for` (the publishing node
    /// stored the message in their JetStream streams: they get it from there).
    pub fn route_remote_except(&self, msg: Message, groups: Vec<GroupKey>, stored_for: &[ClientId]) -> usize {
        self.route_with(Arc::new(msg), Some((LocalShare::Only(groups), stored_for))).matched
    }

    /// Queues `msg` for the session of `client_id` alone, as its own subscriptions match it
    /// (QoS, subscription ids, Retain As Published): a message its JetStream stream held.
    /// False if no session of that id is here or none of its subscriptions match any more
    /// (the message is then the caller's to settle).
    pub fn deliver_to(&self, client_id: &ClientId, msg: Message) -> bool {
        let Some(session) = self.inner.sessions.lock().get(client_id).cloned() else { return false };
        let pending = {
            let st = session.state.lock();
            if st.destroyed {
                return false;
            }
            let mut qos = None;
            let mut rap = false;
            let mut ids = Vec::new();
            for (raw, o) in &st.subscriptions {
                let Ok(spec) = crate::topic::parse_filter(raw, &self.inner.settings) else { continue };
                let own = o.no_local && msg.publisher.as_ref() == Some(client_id);
                if spec.share_group.is_some() || own || !crate::topic::matches(spec.filter, &msg.topic) {
                    continue;
                }
                qos = Some(qos.map_or(o.qos, |q: crate::QoS| q.max(o.qos)));
                rap |= o.retain_as_published;
                ids.extend(o.subscription_id);
            }
            let Some(qos) = qos else { return false };
            let retain = msg.retain && rap;
            crate::Pending { qos: qos.min(msg.qos), message: Arc::new(msg), retain, subscription_ids: ids }
        };
        let inner = &self.inner;
        session.enqueue(pending, &inner.settings, &inner.metrics);
        true
    }

    /// The shape of the persistent session of `client_id` held here, if one is.
    pub fn session_meta(&self, client_id: &ClientId) -> Option<SessionMeta> {
        let session = self.inner.sessions.lock().get(client_id).cloned()?;
        let st = session.state.lock();
        (!st.destroyed && st.expiry != Some(std::time::Duration::ZERO)).then(|| session.meta(&st, None))
    }

    /// Tells the cluster the shape of `session` if it is persistent.
    pub(crate) fn tell_session(&self, session: &crate::session::Session) {
        let Some(cluster) = self.inner.cluster.get() else { return };
        let meta = {
            let st = session.state.lock();
            if st.destroyed || st.expiry == Some(std::time::Duration::ZERO) {
                return;
            }
            session.meta(&st, None)
        };
        cluster.session_here(&meta);
    }

    /// Sets (or with `None`, clears) the retained message of `topic` as another node did.
    pub fn set_retained_remote(&self, topic: &str, msg: Option<Message>) {
        let inner = &self.inner;
        let msg = msg.unwrap_or_else(|| Message::new(topic, bytes::Bytes::new(), crate::QoS::AtMostOnce, true));
        inner.retained.set(&Arc::new(msg), inner.settings.max_retained_messages);
    }

    /// Whether a session (online or offline) of `client_id` is held here.
    pub fn has_session(&self, client_id: &ClientId) -> bool {
        self.inner.sessions.lock().contains_key(client_id)
    }

    /// Another node took `client_id` over: closes its connection here (MQTT 5 0x8E) and
    /// removes the session, returning it (subscriptions, queued and in-flight messages) for
    /// that node to resume unless `discard`.
    pub fn hand_off(&self, client_id: &ClientId, discard: bool) -> Option<SessionHandoff> {
        let inner = &self.inner;
        let session = inner.sessions.lock().remove(client_id)?;
        let mut wills = Vec::new();
        let out = {
            let mut st = session.state.lock();
            if let Some(prev) = st.attached.take() {
                prev.signal.close(DisconnectReason::TakenOver);
                inner.metrics.disconnected(st.protocol);
                if let Some(w) = st.will.take()
                    && (discard || w.delay.is_zero())
                {
                    wills.push(w.message);
                }
            }
            if let Some(w) = st.pending_will.take()
                && discard
            {
                wills.push(w.message);
            }
            st.generation += 1;
            if st.persisted && !st.destroyed {
                inner.store.record(crate::store::Change::SessionGone(client_id.clone()));
            }
            st.destroyed = true;
            let subscriptions: Vec<(String, crate::SubOptions)> =
                std::mem::take(&mut st.subscriptions).into_iter().collect();
            let mut messages = Vec::new();
            // Messages taken from a JetStream stream are not handed over: unacknowledged
            // there, they are delivered again by the new owner's consumer.
            for f in std::mem::take(&mut st.inflight) {
                if f.pending.message.receipt.is_some() {
                    continue;
                }
                let released = f.state == FlightState::Released;
                messages.push((f.seq, StoredMessage { pending: f.pending, packet_id: Some(f.id), released }));
            }
            for q in std::mem::take(&mut st.queue) {
                if q.pending.message.receipt.is_some() {
                    continue;
                }
                messages.push((q.seq, StoredMessage { pending: q.pending, packet_id: None, released: false }));
            }
            let meta = SessionMeta {
                client_id: client_id.clone(),
                protocol: st.protocol,
                expiry: st.expiry,
                expires_at: None,
                subscriptions,
            };
            SessionHandoff { meta, messages, awaiting_rel: std::mem::take(&mut st.awaiting_rel) }
        };
        session.set_online(false);
        // Out of the router after the session's lock is released (lock order: router, then
        // a session's state).
        for (raw, _) in &out.meta.subscriptions {
            if let Ok(spec) = crate::topic::parse_filter(raw, &inner.settings) {
                inner.router.unsubscribe(session.id(), spec.share_group, spec.filter);
            }
        }
        for w in wills {
            self.publish(w);
        }
        tracing::info!(client_id = %client_id, discard, "session handed to another node");
        (!discard).then_some(out)
    }

    /// Resumes here a session another node handed off: it becomes an offline session that
    /// the connect under way attaches to. A session of the same id held here is replaced.
    pub fn adopt(&self, handoff: SessionHandoff) {
        let mut sessions = self.inner.sessions.lock();
        if let Some(old) = sessions.get(&handoff.meta.client_id).cloned() {
            self.destroy_locked(&mut sessions, &old, "discarded");
        }
        let session = self.restore_session(handoff, false);
        let generation = session.state.lock().generation;
        let expiry = session.state.lock().expiry;
        sessions.insert(session.client_id().clone(), session.clone());
        drop(sessions);
        if let Some(e) = expiry {
            self.schedule(session, generation, None, Some(e));
        }
    }
}
