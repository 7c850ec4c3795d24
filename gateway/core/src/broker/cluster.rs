//! The broker's side of the cluster extension point ([`crate::cluster`]): what a
//! [`ClusterLink`] calls to route what other nodes sent, deliver from a persistent
//! session's stream, and hand sessions between nodes.

use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use crate::cluster::{ClusterLink, GroupKey, LocalShare, SessionHandoff};
use crate::session::{DisconnectReason, FlightState, Pending, Session};
use crate::store::{Change, SessionMeta, StoredMessage};
use crate::topic;
use crate::types::{ClientId, Message, QoS, SubOptions};

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
                let Ok(spec) = topic::parse_filter(raw, &self.inner.settings) else { continue };
                let own = o.no_local && msg.publisher.as_ref() == Some(client_id);
                if spec.share_group.is_some() || own || !topic::matches(spec.filter, &msg.topic) {
                    continue;
                }
                qos = Some(qos.map_or(o.qos, |q: QoS| q.max(o.qos)));
                rap |= o.retain_as_published;
                ids.extend(o.subscription_id);
            }
            let Some(qos) = qos else { return false };
            let retain = msg.retain && rap;
            Pending { qos: qos.min(msg.qos), message: Arc::new(msg), retain, subscription_ids: ids }
        };
        let inner = &self.inner;
        session.enqueue(pending, &inner.settings, &inner.metrics);
        true
    }

    /// The shape of the persistent session of `client_id` held here, if one is.
    pub fn session_meta(&self, client_id: &ClientId) -> Option<SessionMeta> {
        let session = self.inner.sessions.lock().get(client_id).cloned()?;
        let st = session.state.lock();
        (!st.destroyed && st.expiry != Some(Duration::ZERO)).then(|| session.meta(&st, None))
    }

    /// Tells the cluster the shape of `session` if it is persistent.
    pub(crate) fn tell_session(&self, session: &Session) {
        let Some(cluster) = self.inner.cluster.get() else { return };
        let meta = {
            let st = session.state.lock();
            if st.destroyed || st.expiry == Some(Duration::ZERO) {
                return;
            }
            session.meta(&st, None)
        };
        cluster.session_here(&meta);
    }

    /// Sets (or with `None`, clears) the retained message of `topic` as another node did.
    pub fn set_retained_remote(&self, topic: &str, msg: Option<Message>) {
        let inner = &self.inner;
        let msg = msg.unwrap_or_else(|| Message::new(topic, bytes::Bytes::new(), QoS::AtMostOnce, true));
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
                inner.store.record(Change::SessionGone(client_id.clone()));
            }
            st.destroyed = true;
            let subscriptions: Vec<(String, SubOptions)> = std::mem::take(&mut st.subscriptions).into_iter().collect();
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
            if let Ok(spec) = topic::parse_filter(raw, &inner.settings) {
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
