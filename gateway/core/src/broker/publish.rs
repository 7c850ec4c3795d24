//! The one publish pipeline every message goes through, from a connected device
//! ([`Connection::publish`](super::Connection::publish)), a device without a connection
//! ([`Broker::publish_unconnected`]) or the broker itself ([`Broker::publish`]): hooks may
//! rewrite or reject it, then [`Broker::route`] retains it, forwards it to the cluster and
//! queues one copy per matching session. Subscriptions are added and removed here too, with
//! the retained messages a new one receives.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use super::Broker;
use crate::auth::{Action, ClientInfo};
use crate::cluster::LocalShare;
use crate::hooks::{Event, EventKind, PublishVerdict};
use crate::metrics::DropReason;
use crate::retained::RetainOutcome;
use crate::router::Target;
use crate::session::{Pending, Session};
use crate::store::Change;
use crate::topic::{self, TopicError};
use crate::trace::Direction;
use crate::types::{BoxFuture, ClientId, Message, QoS, SubOptions};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("topic name invalid: {0}")]
    InvalidTopic(#[from] TopicError),
    #[error("not authorized to publish to this topic")]
    NotAuthorized,
    #[error("QoS 2 receive quota exceeded ({0} awaiting PUBREL)")]
    QuotaExceeded(usize),
    /// The message was routed but could not be made durable: it must not be acknowledged.
    #[error("{0}")]
    Store(String),
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Sessions the message was queued for (0: no matching subscribers).
    pub matched: usize,
}

/// What [`Broker::route`] did.
#[derive(Default)]
pub(crate) struct Routed {
    /// Sessions the message was queued for.
    pub matched: usize,
    /// The ticket of the last store record the routing made (retained change, queued
    /// message); `None`: nothing to wait for.
    pub ticket: Option<u64>,
    /// The cluster's JetStream stores of the message (persistent sessions on other
    /// nodes), which an acknowledgement must wait for too.
    pub stored: Option<BoxFuture<'static, Result<(), String>>>,
}

impl Broker {
    /// Routes a message to every matching session: how many sessions it reached, and the
    /// ticket of the last store record it made (what an acknowledgement must wait for).
    pub(crate) fn route(&self, msg: Arc<Message>) -> Routed {
        self.route_with(msg, None)
    }

    /// [`Broker::route`]; `remote`: the message came from another node, which chose the
    /// shared groups this node serves (it is neither retained here nor forwarded again).
    pub(crate) fn route_with(&self, msg: Arc<Message>, remote: Option<(LocalShare, &[ClientId])>) -> Routed {
        let inner = &self.inner;
        let mut ticket = None;
        if remote.is_none() && msg.retain && inner.settings.retain_available {
            let keep = inner.store.keeps();
            match inner.retained.set(&msg, inner.settings.max_retained_messages) {
                RetainOutcome::Stored if keep => {
                    let change = Change::Retain { topic: msg.topic.clone(), message: Some(msg.clone()) };
                    ticket = Some(inner.store.record(change));
                }
                RetainOutcome::Cleared if keep => {
                    ticket = Some(inner.store.record(Change::Retain { topic: msg.topic.clone(), message: None }));
                }
                RetainOutcome::Stored | RetainOutcome::Cleared => {}
                RetainOutcome::Full => {
                    tracing::warn!(topic = %msg.topic, "retained store full: message not retained")
                }
            }
        }
        let hash = msg.publisher.as_ref().map_or(0, |c| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.hash(&mut h);
            h.finish()
        });
        let mut stored = None;
        let mut stored_for = Vec::new();
        let (share, forwarded, skip) = match (remote, inner.cluster.get()) {
            (Some((share, skip)), _) => (share, 0, skip),
            (None, Some(cluster)) if !msg.topic.starts_with('$') => {
                let f = cluster.forward(&msg);
                stored = f.stored;
                stored_for = f.stored_for;
                (f.share, f.nodes + stored_for.len(), &[][..])
            }
            (None, _) => (LocalShare::All, 0, &[][..]),
        };
        let mut targets: Vec<Target> = Vec::new();
        inner.router.matches(&msg.topic, hash, &share, &mut targets);
        if let Some(p) = &msg.publisher {
            targets.retain(|t| !(t.options.no_local && !t.shared && t.session.client_id() == p));
        }
        // Sessions the message was stored for in JetStream get it from there, once.
        for skip in [skip, &stored_for[..]] {
            if !skip.is_empty() {
                targets.retain(|t| t.shared || !skip.contains(t.session.client_id()));
            }
        }
        if targets.is_empty() {
            // A retained message is kept, not dropped, even with nobody subscribed; and the
            // broker's own messages ($SYS) without a reader are no client's loss.
            if !msg.retain && msg.publisher.is_some() && forwarded == 0 {
                inner.metrics.dropped(DropReason::NoSubscribers);
                if inner.hooks.wants(EventKind::MessageDropped) {
                    self.hook(&Event::Dropped { client: None, message: &msg, reason: DropReason::NoSubscribers });
                }
            }
            return Routed { matched: 0, ticket, stored };
        }
        // One copy per session: highest QoS of its matching subscriptions, all their ids.
        targets.sort_by_key(|t| t.session.id());
        let mut reached = 0;
        let mut i = 0;
        while i < targets.len() {
            let session = targets[i].session.clone();
            let mut qos = QoS::AtMostOnce;
            let mut retain_as_published = false;
            let mut ids = Vec::new();
            while i < targets.len() && targets[i].session.id() == session.id() {
                let o = targets[i].options;
                qos = qos.max(o.qos);
                retain_as_published |= o.retain_as_published;
                ids.extend(o.subscription_id);
                i += 1;
            }
            let pending = Pending {
                message: msg.clone(),
                qos: qos.min(msg.qos),
                retain: msg.retain && retain_as_published,
                subscription_ids: ids,
            };
            let enqueued = session.enqueue(pending, &inner.settings, &inner.metrics);
            ticket = enqueued.ticket.max(ticket);
            if let Some(reason) = enqueued.dropped
                && inner.hooks.wants(EventKind::MessageDropped)
            {
                self.hook(&Event::Dropped { client: Some(session.client_id()), message: &msg, reason });
            }
            reached += 1;
        }
        Routed { matched: reached, ticket, stored }
    }

    /// Publishes a message on behalf of the broker itself (`$SYS`, HTTP API, bridges).
    pub fn publish(&self, msg: Message) -> usize {
        self.route(Arc::new(msg)).matched
    }

    /// Publishes for a device that has no connection (MQTT-SN QoS -1, §6.8): the topic is
    /// validated and `client` ACL-checked, hooked and counted as if it were connected, but no
    /// session is created and no authentication runs (there are no credentials to check).
    pub fn publish_unconnected(&self, client: &ClientInfo, msg: Message) -> Result<Published, PublishError> {
        let routed = self.publish_from(client, msg)?;
        Ok(Published { matched: routed.matched })
    }

    /// The publish pipeline every client publish goes through, connected or not: the topic
    /// validated, the ACL checked, the publisher set, hooks may rewrite or reject, counted,
    /// traced, hooked, routed. The caller waits for `ticket` (and the cluster's `stored`) to
    /// be durable before acknowledging.
    pub(crate) fn publish_from(&self, client: &ClientInfo, mut msg: Message) -> Result<Routed, PublishError> {
        let inner = &self.inner;
        topic::validate_name(&msg.topic, &inner.settings)?;
        if !inner.authorizer.check(client, Action::Publish, &msg.topic) {
            inner.metrics.dropped(DropReason::NotAuthorized);
            crate::peer_log!(INFO, "acl.publish_denied", client.peer, client_id = %client.client_id, topic = %msg.topic, "publish denied by ACL");
            return Err(PublishError::NotAuthorized);
        }
        msg.publisher = Some(client.client_id.clone());
        self.filter_publish(Some(client), &mut msg)?;
        inner.metrics.message_in(client.protocol);
        inner.tracer.message(client, Direction::In, &msg);
        self.hook(&Event::Published { client: Some(client), message: &msg });
        Ok(self.route(Arc::new(msg)))
    }

    /// Lets in-process hooks rewrite or reject a client's publish.
    fn filter_publish(&self, client: Option<&ClientInfo>, msg: &mut Message) -> Result<(), PublishError> {
        let inner = &self.inner;
        if !inner.hooks.has_rewriters() {
            return Ok(());
        }
        if inner.hooks.on_publish(client, msg) == PublishVerdict::Reject {
            inner.metrics.dropped(DropReason::Rejected);
            if inner.hooks.wants(EventKind::MessageDropped) {
                self.hook(&Event::Dropped {
                    client: client.map(|c| &c.client_id),
                    message: msg,
                    reason: DropReason::Rejected,
                });
            }
            return Err(PublishError::NotAuthorized);
        }
        topic::validate_name(&msg.topic, &inner.settings)?;
        Ok(())
    }

    pub(super) fn publish_will(&self, mut msg: Message) {
        msg.created = Instant::now();
        tracing::debug!(topic = %msg.topic, "publishing will");
        self.route(Arc::new(msg));
    }

    /// Subscribes `session`; returns whether the subscription already existed.
    pub(crate) fn add_subscription(
        &self,
        session: &Arc<Session>,
        raw: &str,
        options: SubOptions,
    ) -> Result<bool, topic::TopicError> {
        let spec = topic::parse_filter(raw, &self.inner.settings)?;
        let existed = {
            let mut st = session.state.lock();
            st.subscriptions.insert(raw.to_string(), options).is_some()
        };
        self.inner.router.subscribe(session, spec.share_group, spec.filter, options);
        self.tell_session(session);
        Ok(existed)
    }

    pub(crate) fn remove_subscription(&self, session: &Arc<Session>, raw: &str) -> bool {
        let Ok(spec) = topic::parse_filter(raw, &self.inner.settings) else { return false };
        let had = session.state.lock().subscriptions.remove(raw).is_some();
        self.inner.router.unsubscribe(session.id(), spec.share_group, spec.filter);
        if had {
            self.tell_session(session);
        }
        had
    }

    /// Retained messages for a new subscription, queued for `session`.
    pub(crate) fn send_retained(&self, session: &Arc<Session>, filter: &str, options: SubOptions) {
        if !self.inner.settings.retain_available {
            return;
        }
        for m in self.inner.retained.matching(filter, Instant::now()) {
            let pending = Pending {
                qos: m.qos.min(options.qos),
                message: m,
                retain: true,
                subscription_ids: options.subscription_id.into_iter().collect(),
            };
            session.enqueue(pending, &self.inner.settings, &self.inner.metrics);
        }
    }
}
