//! The adapter API: one [`Connection`] per connected device, of any protocol. Adapters
//! translate their wire protocol into these calls and nothing else; the core owns MQTT
//! semantics (routing, retained, QoS state, queues, wills, expiry).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Broker;
pub use super::publish::{PublishError, Published};
use crate::auth::{Action, ClientInfo};
use crate::hooks::{Event, EventKind};
use crate::metrics::DropReason;
use crate::session::{ConnSignal, Delivery, DisconnectReason, Session, Will};
use crate::settings::BrokerSettings;
use crate::topic::{self, TopicError};
use crate::trace::Direction;
use crate::types::{ClientId, Message, QoS, SubOptions};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("topic filter invalid: {0}")]
    InvalidFilter(#[from] TopicError),
    #[error("not authorized to subscribe to this filter")]
    NotAuthorized,
    #[error("subscription limit of {0} reached")]
    QuotaExceeded(usize),
    #[error("No Local is not allowed on a shared subscription")]
    NoLocalOnShared,
}

/// A device's handle on the broker.
pub struct Connection {
    broker: Broker,
    session: Arc<Session>,
    conn_id: u64,
    signal: Arc<ConnSignal>,
    info: Arc<ClientInfo>,
    session_present: bool,
    ended: AtomicBool,
}

impl Connection {
    pub(crate) fn new(
        broker: Broker,
        session: Arc<Session>,
        conn_id: u64,
        signal: Arc<ConnSignal>,
        info: Arc<ClientInfo>,
        session_present: bool,
    ) -> Self {
        Connection { broker, session, conn_id, signal, info, session_present, ended: AtomicBool::new(false) }
    }

    pub fn client_id(&self) -> &ClientId {
        &self.info.client_id
    }

    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// An existing session was resumed (MQTT CONNACK Session Present).
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    fn settings(&self) -> &BrokerSettings {
        self.broker.settings()
    }

    /// Publishes a message from this device: topic checked, ACL-checked, routed, retained,
    /// hooked. The message's `publisher` is set to this client.
    pub async fn publish(&self, msg: Message) -> Result<Published, PublishError> {
        let durable = msg.qos != QoS::AtMostOnce;
        let routed = self.broker.publish_from(&self.info, msg)?;
        let inner = &self.broker.inner;
        // What is acknowledged must be on disk: wait for the store to commit what this publish
        // recorded (and, in the same group commit, anyone else's).
        if durable && let Some(ticket) = routed.ticket {
            inner.store.durable(ticket).await.map_err(|e| PublishError::Store(e.to_string()))?;
        }
        // ... and in JetStream, for persistent sessions on other nodes (bounded by the
        // cluster's request timeout).
        if durable && let Some(stored) = routed.stored {
            stored.await.map_err(PublishError::Store)?;
        }
        Ok(Published { matched: routed.matched })
    }

    /// Records an incoming QoS 2 packet id before routing its message (MQTT 5.0 §4.3.3,
    /// method A). Returns false if the id is already awaiting PUBREL: a duplicate to
    /// acknowledge again without routing.
    pub fn begin_exactly_once(&self, packet_id: u16) -> Result<bool, PublishError> {
        let mut st = self.session.state.lock();
        if st.awaiting_rel.contains(&packet_id) {
            return Ok(false);
        }
        let max = usize::from(self.settings().max_awaiting_rel);
        if st.awaiting_rel.len() >= max {
            return Err(PublishError::QuotaExceeded(max));
        }
        self.session.set_awaiting(&mut st, packet_id, true);
        Ok(true)
    }

    /// Forgets a QoS 2 packet id that was not routed after all (the publish failed).
    pub fn abort_exactly_once(&self, packet_id: u16) {
        let mut st = self.session.state.lock();
        self.session.set_awaiting(&mut st, packet_id, false);
    }

    /// PUBREL from the device: the QoS 2 id is released. False if it was unknown.
    /// Call [`Connection::sync`] before acknowledging (PUBCOMP), so a crash cannot bring the
    /// id back and swallow the client's next message that reuses it.
    pub fn release(&self, packet_id: u16) -> bool {
        let mut st = self.session.state.lock();
        self.session.set_awaiting(&mut st, packet_id, false)
    }

    /// Waits until everything recorded so far is durable (no-op for a memory store).
    pub async fn sync(&self) -> Result<(), PublishError> {
        let store = &self.broker.inner.store;
        if !store.keeps() {
            return Ok(());
        }
        store.durable(store.last_ticket()).await.map_err(|e| PublishError::Store(e.to_string()))
    }

    /// Subscribes; queues the matching retained messages as `retain_handling` says.
    /// Returns whether the subscription already existed.
    pub async fn subscribe(&self, filter: &str, options: SubOptions) -> Result<bool, SubscribeError> {
        let spec = topic::parse_filter(filter, self.settings())?;
        if spec.share_group.is_some() && options.no_local {
            return Err(SubscribeError::NoLocalOnShared);
        }
        let inner = &self.broker.inner;
        if !inner.authorizer.check(&self.info, Action::Subscribe, filter) {
            crate::peer_log!(INFO, "acl.subscribe_denied", self.info.peer, client_id = %self.info.client_id, filter, "subscribe denied by ACL");
            return Err(SubscribeError::NotAuthorized);
        }
        {
            let st = self.session.state.lock();
            let max = self.settings().max_subscriptions_per_client;
            if st.subscriptions.len() >= max && !st.subscriptions.contains_key(filter) {
                return Err(SubscribeError::QuotaExceeded(max));
            }
        }
        let existed = self.broker.add_subscription(&self.session, filter, options)?;
        self.session.persist(&mut self.session.state.lock(), None);
        self.broker.hook(&Event::Subscribed { client: &self.info, filter });
        let send_retained = spec.share_group.is_none()
            && match options.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
        if send_retained {
            self.broker.send_retained(&self.session, spec.filter, options);
        }
        Ok(existed)
    }

    /// The retained message on the topic name `topic`, if the ACL lets this client
    /// subscribe to it (a CoAP GET without Observe reads it).
    pub fn retained(&self, topic: &str) -> Result<Option<Arc<Message>>, SubscribeError> {
        topic::validate_name(topic, self.settings())?;
        if !self.broker.inner.authorizer.check(&self.info, Action::Subscribe, topic) {
            crate::peer_log!(INFO, "acl.retained_denied", self.info.peer, client_id = %self.info.client_id, topic, "retained read denied by ACL");
            return Err(SubscribeError::NotAuthorized);
        }
        Ok(self.broker.inner.retained.matching(topic, Instant::now()).into_iter().next())
    }

    /// Unsubscribes; false if there was no such subscription.
    pub async fn unsubscribe(&self, filter: &str) -> Result<bool, SubscribeError> {
        topic::parse_filter(filter, self.settings())?;
        let had = self.broker.remove_subscription(&self.session, filter);
        if had {
            self.session.persist(&mut self.session.state.lock(), None);
        }
        if had {
            self.broker.hook(&Event::Unsubscribed { client: &self.info, filter });
        }
        Ok(had)
    }

    /// The next message to send, PUBREL to resend, or the broker's order to close. Waits
    /// until there is one; cancel-safe (nothing is lost if the future is dropped). One task
    /// at a time may wait on a connection.
    pub async fn next_delivery(&self) -> Delivery {
        std::future::poll_fn(|cx| self.poll_next_delivery(cx)).await
    }

    /// [`Connection::next_delivery`] as a poll: `Pending` registers `cx`'s waker, woken when
    /// a delivery may be ready. A connection's task can wait with this and hold no future.
    pub fn poll_next_delivery(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Delivery> {
        // Registered before looking, so that a delivery queued after the look wakes us.
        self.signal.register(cx.waker());
        match self.try_next_delivery() {
            Some(d) => std::task::Poll::Ready(d),
            None => std::task::Poll::Pending,
        }
    }

    /// The next delivery if one is ready now.
    pub fn try_next_delivery(&self) -> Option<Delivery> {
        let d = self.session.poll_delivery(self.conn_id, Instant::now(), &self.broker.inner.metrics);
        if let Some(Delivery::Publish { pending, .. }) = &d {
            let inner = &self.broker.inner;
            inner.metrics.message_out(self.info.protocol);
            inner.tracer.message(&self.info, Direction::Out, &pending.message);
            if inner.hooks.wants(EventKind::MessageDelivered) {
                self.broker.hook(&Event::Delivered { client: &self.info, message: &pending.message, qos: pending.qos });
            }
        }
        d
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): the delivery `id` is done. False if unknown.
    pub fn ack(&self, id: u16) -> bool {
        let Some(message) = self.session.complete(id) else { return false };
        self.signal.wake();
        if self.broker.inner.hooks.wants(EventKind::MessageAcked) {
            self.broker.hook(&Event::Acked { client: &self.info, message: &message });
        }
        true
    }

    /// PUBREC (QoS 2): the device has the message; PUBREL follows. False if unknown.
    pub fn received(&self, id: u16) -> bool {
        self.session.received(id).is_some()
    }

    /// [`Connection::received`], returning once PUBREL may be sent: for a message a
    /// cluster node took from a persistent session's JetStream stream, once the stream has
    /// let it go (bounded by the cluster), so that the client forgets the packet id only
    /// when no redelivery can come.
    pub async fn received_settled(&self, id: u16) -> bool {
        match self.session.received(id) {
            Some(Some(settled)) => {
                settled.await;
                true
            }
            Some(None) => true,
            None => false,
        }
    }

    /// Counts a delivery the adapter could not send (e.g. larger than the device accepts)
    /// and releases its in-flight slot.
    pub fn drop_delivery(&self, id: u16, reason: DropReason) {
        self.broker.inner.metrics.dropped(reason);
        if id != 0 && self.session.complete(id).is_some() {
            self.signal.wake();
        }
    }

    /// Changes the session expiry (MQTT 5 DISCONNECT may do this).
    pub fn set_session_expiry(&self, expiry: Option<Duration>) {
        let max = self.settings().max_session_expiry;
        self.session.state.lock().expiry = match (expiry, max) {
            (Some(e), Some(m)) => Some(e.min(m)),
            (None, m) => m,
            (e, None) => e,
        };
    }

    /// Replaces the will of this connection (MQTT-SN WILLTOPICUPD / WILLMSGUPD); `None`
    /// removes it.
    pub fn set_will(&self, will: Option<Will>) {
        self.session.state.lock().will = will.map(Box::new);
    }

    /// The will of this connection, if any.
    pub fn will(&self) -> Option<Will> {
        self.session.state.lock().will.as_deref().cloned()
    }

    /// Bounds this session's queue below `[limits] max_queued_messages` (`None`: that limit
    /// alone). Messages beyond it are dropped by the overflow policy and counted as
    /// `queue_full`, as at the global limit.
    pub fn set_queue_limit(&self, limit: Option<usize>) {
        self.session.state.lock().queue_limit = limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX));
    }

    /// The session expiry now in force.
    pub fn session_expiry(&self) -> Option<Duration> {
        self.session.state.lock().expiry
    }

    /// Ends the connection: will, session expiry, hooks.
    pub async fn disconnect(&self, reason: DisconnectReason) {
        self.end(reason);
    }

    fn end(&self, reason: DisconnectReason) {
        if !self.ended.swap(true, Ordering::AcqRel) {
            self.broker.detach(&self.session, self.conn_id, reason, &self.info);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // An adapter that forgot to say goodbye: treat as a lost connection.
        self.end(DisconnectReason::Abnormal);
    }
}
