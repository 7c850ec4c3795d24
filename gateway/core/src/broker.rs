//! The broker: the session table, routing of publishes to sessions, retained messages,
//! session takeover, wills and session expiry. Adapters reach it only through
//! [`Broker::connect`] and the [`Connection`] it returns.
//!
//! Lock order: sessions table -> one session's state. Routing takes the router's read lock,
//! then each target session's state lock in turn, never two at once; wills are published
//! after every lock is released.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::auth::{AllowAll, AnonymousPolicy, AuthDecision, Authenticator, Authorizer, Credentials};
use crate::connection::Connection;
use crate::hooks::{Event, EventKind, Hook, Hooks};
use crate::metrics::{DropReason, Metrics};
use crate::retained::{RetainOutcome, Retained};
use crate::router::{Router, SubOptions, Target};
use crate::session::{Attached, ConnSignal, DisconnectReason, Pending, Session, Will};
use crate::settings::BrokerSettings;
use crate::store::{Change, NullStore, Store, StoreError};
use crate::topic;
use crate::types::{ClientId, ClientInfo, Message, Protocol, QoS};

/// What an adapter asks for when a device connects.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub client_id: ClientId,
    pub protocol: Protocol,
    pub peer: Option<SocketAddr>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// Start a new session, discarding any existing one.
    pub clean_start: bool,
    /// Keep alive in seconds, as negotiated by the adapter (informational for the core).
    pub keep_alive: u16,
    pub will: Option<Will>,
    /// `None`: the session never expires; `Some(0)`: it ends with the connection.
    pub session_expiry: Option<Duration>,
    /// How many outgoing QoS 1/2 messages the device accepts at once.
    pub receive_maximum: u16,
}

/// What the transport knows about a connecting device beyond its [`ConnectRequest`].
#[derive(Debug, Clone, Default)]
pub struct ConnectContext {
    /// A name finer than [`Protocol`] (a custom codec's), see [`Broker::connect_as`].
    pub protocol_name: Option<Arc<str>>,
    /// The identity of a client certificate the listener verified (mTLS), or a DTLS PSK
    /// identity: authentication sources may accept the client on it.
    pub certificate: Option<String>,
    /// A client the gateway holds on every node of a cluster for the same device (a LoRaWAN
    /// device, heard by whichever node its gateways deliver to): its id is this node's own and
    /// is not claimed cluster-wide, so the nodes do not take it over from one another.
    pub node_local: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("bad username or password")]
    BadCredentials,
    #[error("not authorized")]
    NotAuthorized,
    #[error("server busy: connection limit reached")]
    ServerBusy,
    #[error("server shutting down")]
    ShuttingDown,
}

pub(crate) struct Inner {
    pub settings: BrokerSettings,
    pub metrics: Metrics,
    pub router: Router,
    pub retained: Retained,
    pub sessions: Mutex<HashMap<ClientId, Arc<Session>>>,
    pub store: Arc<dyn Store>,
    pub authenticator: Box<dyn Authenticator>,
    pub authorizer: Box<dyn Authorizer>,
    pub hooks: Hooks,
    pub tracer: crate::trace::Tracer,
    pub failures: crate::auth::throttle::FailureTracker,
    /// The cluster this node is part of, if any (`roost-cluster`).
    pub cluster: std::sync::OnceLock<Arc<dyn crate::cluster::ClusterLink>>,
    next_id: AtomicU64,
    shutting_down: std::sync::atomic::AtomicBool,
}

/// The shared broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

/// Builds a [`Broker`] with non-default parts.
pub struct BrokerBuilder {
    settings: BrokerSettings,
    store: Arc<dyn Store>,
    authenticator: Option<Box<dyn Authenticator>>,
    authorizer: Box<dyn Authorizer>,
    hooks: Vec<Arc<dyn Hook>>,
}

impl BrokerBuilder {
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = store;
        self
    }
    pub fn authenticator(mut self, a: Box<dyn Authenticator>) -> Self {
        self.authenticator = Some(a);
        self
    }
    pub fn authorizer(mut self, a: Box<dyn Authorizer>) -> Self {
        self.authorizer = a;
        self
    }
    pub fn hook(mut self, h: Arc<dyn Hook>) -> Self {
        self.hooks.push(h);
        self
    }
    /// Builds the broker and restores what its store holds.
    pub fn build(self) -> Result<Broker, StoreError> {
        let allow_anonymous = self.settings.allow_anonymous;
        let failures = crate::auth::throttle::FailureTracker::new(self.settings.auth_failures_free);
        let inner = Arc::new(Inner {
            router: Router::new(self.settings.shared_strategy),
            settings: self.settings,
            metrics: Metrics::default(),
            retained: Retained::default(),
            sessions: Mutex::new(HashMap::new()),
            store: self.store,
            authenticator: self.authenticator.unwrap_or_else(|| Box::new(AnonymousPolicy { allow_anonymous })),
            authorizer: self.authorizer,
            hooks: Hooks::new(self.hooks),
            tracer: crate::trace::Tracer::default(),
            failures,
            cluster: std::sync::OnceLock::new(),
            next_id: AtomicU64::new(1),
            shutting_down: false.into(),
        });
        let broker = Broker { inner };
        broker.restore()?;
        Ok(broker)
    }
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
    pub stored: Option<crate::cluster::BoxFuture<'static, Result<(), String>>>,
}

impl Broker {
    pub fn builder(settings: BrokerSettings) -> BrokerBuilder {
        BrokerBuilder {
            settings,
            store: Arc::new(NullStore),
            authenticator: None,
            authorizer: Box::new(AllowAll),
            hooks: Vec::new(),
        }
    }

    /// A broker whose state lives in memory only.
    pub fn new(settings: BrokerSettings) -> Broker {
        let inner = Broker::builder(settings).build();
        // A NullStore holds nothing to restore, so building cannot fail.
        inner.unwrap_or_else(|_| unreachable!("a NullStore restores nothing"))
    }

    pub fn settings(&self) -> &BrokerSettings {
        &self.inner.settings
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Sessions held (online and offline).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.lock().len()
    }

    /// Messages waiting in a session's queue (not yet handed to its connection), if the
    /// session exists.
    pub fn queue_len(&self, client_id: &ClientId) -> Option<usize> {
        let session = self.inner.sessions.lock().get(client_id).cloned()?;
        let len = session.state.lock().queue.len();
        Some(len)
    }

    /// Gives the session of `client_id` its own queue capacity instead of
    /// `max_queued_messages` (`None`: back to the global one). False if there is no such
    /// session yet.
    pub fn set_queue_capacity(&self, client_id: &ClientId, capacity: Option<usize>) -> bool {
        let Some(session) = self.inner.sessions.lock().get(client_id).cloned() else { return false };
        session.state.lock().queue_capacity = capacity.map(|c| u32::try_from(c).unwrap_or(u32::MAX));
        true
    }

    pub fn retained_count(&self) -> usize {
        self.inner.retained.len()
    }

    pub fn subscription_filter_count(&self) -> usize {
        self.inner.router.filter_count()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Connects a device: authentication, connection limit, then session takeover or
    /// creation. The returned [`Connection`] is the adapter's only handle on the broker.
    pub async fn connect(&self, req: ConnectRequest) -> Result<Connection, ConnectError> {
        self.connect_with(req, ConnectContext::default()).await
    }

    /// [`Broker::connect`] for a protocol that names itself more finely than
    /// [`Protocol`]: a custom codec passes its registered name, which hooks, ACL and
    /// listings see as [`ClientInfo::protocol_name`].
    pub async fn connect_as(&self, req: ConnectRequest, protocol_name: Arc<str>) -> Result<Connection, ConnectError> {
        self.connect_with(req, ConnectContext { protocol_name: Some(protocol_name), ..Default::default() }).await
    }

    /// [`Broker::connect`] with what the transport knows beyond the request: a finer
    /// protocol name, the identity of a verified client certificate (mTLS) or PSK.
    pub async fn connect_with(&self, req: ConnectRequest, context: ConnectContext) -> Result<Connection, ConnectError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::Relaxed) {
            return Err(ConnectError::ShuttingDown);
        }
        let ConnectContext { protocol_name: protocol_detail, certificate, node_local } = context;
        // An address that failed to log in repeatedly waits before it is answered.
        if let Some(ip) = req.peer.map(|p| p.ip()) {
            let delay = inner.failures.delay(ip, Instant::now());
            if !delay.is_zero() {
                tracing::debug!(%ip, ?delay, "connect slowed after repeated failed logins");
                tokio::time::sleep(delay).await;
            }
        }
        let mut info = Arc::new(ClientInfo {
            client_id: req.client_id.clone(),
            protocol: req.protocol,
            protocol_detail,
            peer: req.peer,
            username: req.username.clone(),
            grants: None,
        });
        let slot = crate::auth::GrantSlot::default();
        let creds = Credentials {
            client: &info,
            password: req.password.as_ref(),
            certificate: certificate.as_deref(),
            grants: &slot,
        };
        let decision = inner.authenticator.authenticate(creds).await;
        let grants = slot.take();
        if decision == AuthDecision::Allow && grants != crate::auth::Grants::default() {
            // Not shared yet: make_mut changes it in place.
            Arc::make_mut(&mut info).grants = Some(Arc::new(grants));
        }
        if let Some(ip) = info.peer.map(|p| p.ip()) {
            match decision {
                AuthDecision::Allow => inner.failures.succeeded(ip),
                _ => inner.failures.failed(ip, Instant::now()),
            }
        }
        if inner.hooks.wants(EventKind::ClientAuthenticate) {
            self.hook(&Event::Authenticate { client: &info, allowed: decision == AuthDecision::Allow });
        }
        match decision {
            AuthDecision::Allow => {}
            AuthDecision::BadCredentials => {
                inner.metrics.auth_failure();
                crate::peer_log!(WARN, "login.bad_credentials", info.peer, client_id = %info.client_id, username = ?info.username, protocol = info.protocol_name(), peer = ?info.peer, "login failed: bad credentials");
                return Err(ConnectError::BadCredentials);
            }
            AuthDecision::NotAuthorized => {
                inner.metrics.auth_failure();
                crate::peer_log!(WARN, "login.not_authorized", info.peer, client_id = %info.client_id, username = ?info.username, protocol = info.protocol_name(), peer = ?info.peer, "login failed: not authorized");
                return Err(ConnectError::NotAuthorized);
            }
        }
        if inner.metrics.connections() >= inner.settings.max_connections as u64 {
            crate::peer_log!(WARN, "connect.max_connections", info.peer, client_id = %info.client_id, "connect refused: max_connections reached");
            return Err(ConnectError::ServerBusy);
        }

        // In a cluster the client id is unique cluster-wide: the node that held it closes it
        // and hands its session over (bounded by the cluster's own timeout).
        if let Some(cluster) = inner.cluster.get().filter(|_| !node_local)
            && let Some(handoff) = cluster.claim(&req.client_id, req.clean_start).await
        {
            self.adopt(handoff);
        }
        let expiry = clamp_expiry(req.session_expiry, inner.settings.max_session_expiry);
        let conn_id = self.next_id();
        let signal = Arc::new(ConnSignal::default());
        let window = req.receive_maximum.clamp(1, inner.settings.max_inflight.max(1));
        let mut wills = Vec::new();
        let (session, session_present) = {
            let mut sessions = inner.sessions.lock();
            let existing = sessions.get(&req.client_id).cloned();
            let mut resumed = None;
            if let Some(old) = existing {
                let mut st = old.state.lock();
                if let Some(prev) = st.attached.take() {
                    prev.signal.close(DisconnectReason::TakenOver);
                    inner.metrics.disconnected(st.protocol);
                    // The old connection ends abnormally: its will fires now unless a delay
                    // is running that the resumed session below cancels (§3.1.2.5).
                    if let Some(w) = st.will.take()
                        && (req.clean_start || w.delay.is_zero())
                    {
                        wills.push(w.message);
                    }
                }
                if req.clean_start {
                    if let Some(w) = st.pending_will.take() {
                        wills.push(w.message);
                    }
                    drop(st);
                    self.destroy_locked(&mut sessions, &old, "discarded");
                } else {
                    st.pending_will = None;
                    let resend = st.resend_ids();
                    drop(st);
                    resumed = Some((old, resend));
                }
            }
            let (session, present, resend) = match resumed {
                Some((s, resend)) => (s, true, resend),
                None => {
                    let s = Arc::new(Session::new(
                        conn_id,
                        req.client_id.clone(),
                        req.protocol,
                        expiry,
                        inner.store.clone(),
                    ));
                    sessions.insert(req.client_id.clone(), s.clone());
                    (s, false, Default::default())
                }
            };
            {
                let mut st = session.state.lock();
                st.attached = Some(Attached {
                    conn_id,
                    signal: signal.clone(),
                    window,
                    info: info.clone(),
                    keep_alive: req.keep_alive,
                    connected_at: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
                    resend,
                });
                st.generation += 1;
                st.expiry = expiry;
                st.will = req.will.clone().map(Box::new);
                st.protocol = req.protocol;
                session.persist(&mut st, None);
            }
            session.set_online(true);
            inner.metrics.connected(req.protocol);
            (session, present)
        };
        for w in wills {
            self.publish_will(w);
        }
        if session_present {
            self.hook(&Event::SessionResumed { client: &info });
        } else {
            self.hook(&Event::SessionCreated { client: &info });
        }
        self.hook(&Event::Connected { client: &info, session_present, keep_alive: req.keep_alive });
        self.tell_session(&session);
        tracing::debug!(client_id = %info.client_id, protocol = info.protocol_name(), session_present, "connected");
        Ok(Connection::new(self.clone(), session, conn_id, signal, info, session_present))
    }

    pub(crate) fn hook(&self, event: &Event<'_>) {
        self.inner.hooks.emit(event);
    }

    /// Routes a message to every matching session: how many sessions it reached, and the
    /// ticket of the last store record it made (what an acknowledgement must wait for).
    pub(crate) fn route(&self, msg: Arc<Message>) -> Routed {
        self.route_with(msg, None)
    }

    /// [`Broker::route`]; `remote`: the message came from another node, which chose the
    /// shared groups this node serves (it is neither retained here nor forwarded again).
    pub(crate) fn route_with(
        &self,
        msg: Arc<Message>,
        remote: Option<(crate::cluster::LocalShare, &[ClientId])>,
    ) -> Routed {
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
            (None, _) => (crate::cluster::LocalShare::All, 0, &[][..]),
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
    pub fn publish_unconnected(
        &self,
        client: &ClientInfo,
        msg: Message,
    ) -> Result<crate::connection::Published, crate::connection::PublishError> {
        topic::validate_name(&msg.topic, &self.inner.settings)?;
        let inner = &self.inner;
        if !inner.authorizer.check(client, crate::auth::Action::Publish, &msg.topic) {
            inner.metrics.dropped(DropReason::NotAuthorized);
            crate::peer_log!(INFO, "acl.publish_denied", client.peer, client_id = %client.client_id, topic = %msg.topic, "unconnected publish denied by ACL");
            return Err(crate::connection::PublishError::NotAuthorized);
        }
        let routed = self.publish_as(client, msg)?;
        Ok(crate::connection::Published { matched: routed.matched })
    }

    /// The publish pipeline every client publish goes through (connected or not), after the
    /// ACL check: the publisher set, hooks may rewrite or reject, counted, traced, hooked,
    /// routed. The caller waits for `ticket` to be durable before acknowledging.
    pub(crate) fn publish_as(
        &self,
        client: &ClientInfo,
        mut msg: Message,
    ) -> Result<Routed, crate::connection::PublishError> {
        let inner = &self.inner;
        msg.publisher = Some(client.client_id.clone());
        self.filter_publish(Some(client), &mut msg)?;
        inner.metrics.message_in(client.protocol);
        inner.tracer.message(client, crate::trace::Direction::In, &msg);
        self.hook(&Event::Published { client: Some(client), message: &msg });
        Ok(self.route(Arc::new(msg)))
    }

    /// Lets in-process hooks rewrite or reject a client's publish.
    pub(crate) fn filter_publish(
        &self,
        client: Option<&ClientInfo>,
        msg: &mut Message,
    ) -> Result<(), crate::connection::PublishError> {
        let inner = &self.inner;
        if !inner.hooks.has_rewriters() {
            return Ok(());
        }
        if inner.hooks.on_publish(client, msg) == crate::hooks::PublishVerdict::Reject {
            inner.metrics.dropped(DropReason::Rejected);
            if inner.hooks.wants(EventKind::MessageDropped) {
                self.hook(&Event::Dropped {
                    client: client.map(|c| &c.client_id),
                    message: msg,
                    reason: DropReason::Rejected,
                });
            }
            return Err(crate::connection::PublishError::NotAuthorized);
        }
        topic::validate_name(&msg.topic, &inner.settings)?;
        Ok(())
    }

    fn publish_will(&self, mut msg: Message) {
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

    /// Detaches connection `conn_id` from its session, firing the will and scheduling or
    /// performing the session's end as the reason and expiry say.
    pub(crate) fn detach(&self, session: &Arc<Session>, conn_id: u64, reason: DisconnectReason, info: &ClientInfo) {
        let mut fire = None;
        let mut destroy = false;
        let mut timers = None;
        {
            let mut st = session.state.lock();
            match &st.attached {
                Some(a) if a.conn_id == conn_id => {}
                // Already taken over or kicked out by the broker: nothing of ours to end.
                _ => return,
            }
            st.attached = None;
            st.generation += 1;
            session.set_online(false);
            self.inner.metrics.disconnected(st.protocol);
            let will = st.will.take().filter(|_| reason.publishes_will());
            let expiry = st.expiry;
            if expiry != Some(Duration::ZERO) {
                let expires_at = expiry.map(|e| std::time::SystemTime::now() + e);
                session.persist(&mut st, expires_at);
            }
            if expiry == Some(Duration::ZERO) {
                destroy = true;
                fire = will.map(|w| w.message);
            } else {
                match will {
                    Some(w) if w.delay.is_zero() => fire = Some(w.message),
                    Some(w) => {
                        let delay = expiry.map_or(w.delay, |e| e.min(w.delay));
                        st.pending_will = Some(w);
                        timers = Some((st.generation, Some(delay), expiry));
                    }
                    None => timers = Some((st.generation, None, expiry)),
                }
            }
        }
        self.hook(&Event::Disconnected { client: info, reason });
        if destroy {
            let mut sessions = self.inner.sessions.lock();
            self.destroy_locked(&mut sessions, session, "closed");
        }
        if let Some(msg) = fire {
            self.publish_will(msg);
        }
        if let Some((generation, will_delay, expiry)) = timers {
            self.schedule(session.clone(), generation, will_delay, expiry);
        }
    }

    pub(crate) fn schedule(
        &self,
        session: Arc<Session>,
        generation: u64,
        will_delay: Option<Duration>,
        expiry: Option<Duration>,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let broker = self.clone();
        if let Some(delay) = will_delay {
            let (b, s) = (broker.clone(), session.clone());
            rt.spawn(async move {
                tokio::time::sleep(delay).await;
                let will = {
                    let mut st = s.state.lock();
                    if st.generation != generation { None } else { st.pending_will.take() }
                };
                if let Some(w) = will {
                    b.publish_will(w.message);
                }
            });
        }
        if let Some(expiry) = expiry {
            rt.spawn(async move {
                tokio::time::sleep(expiry).await;
                let will = {
                    let mut st = session.state.lock();
                    if st.generation != generation || st.attached.is_some() {
                        return;
                    }
                    st.pending_will.take()
                };
                {
                    let mut sessions = broker.inner.sessions.lock();
                    broker.destroy_locked(&mut sessions, &session, "expired");
                }
                tracing::debug!(client_id = %session.client_id(), "session expired");
                if let Some(w) = will {
                    broker.publish_will(w.message);
                }
            });
        }
    }

    /// Ends a session: out of the table, the router and the store.
    pub(crate) fn destroy_locked(
        &self,
        sessions: &mut HashMap<ClientId, Arc<Session>>,
        session: &Arc<Session>,
        why: &'static str,
    ) {
        if sessions.get(session.client_id()).is_some_and(|s| Arc::ptr_eq(s, session)) {
            sessions.remove(session.client_id());
        }
        let filters: Vec<String> = {
            let mut st = session.state.lock();
            if st.persisted && !st.destroyed {
                self.inner.store.record(Change::SessionGone(session.client_id().clone()));
            }
            st.destroyed = true;
            st.queue.clear();
            st.inflight.clear();
            std::mem::take(&mut st.subscriptions).into_keys().collect()
        };
        for raw in filters {
            if let Ok(spec) = topic::parse_filter(&raw, &self.inner.settings) {
                self.inner.router.unsubscribe(session.id(), spec.share_group, spec.filter);
            }
        }
        if let Some(cluster) = self.inner.cluster.get() {
            cluster.session_ended(session.client_id());
        }
        self.hook(&Event::SessionTerminated { client_id: session.client_id(), reason: why });
    }

    /// Begins shutdown: refuses new connections and asks every connection to close with
    /// "server shutting down" (their sessions are written to the store as they detach).
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let sessions: Vec<Arc<Session>> = self.inner.sessions.lock().values().cloned().collect();
        for s in &sessions {
            if let Some(a) = &s.state.lock().attached {
                a.signal.close(DisconnectReason::Shutdown);
            }
        }
    }

    /// Records an adapter's own durable record (`key` in `space`; `None` deletes it) and
    /// returns its store ticket: [`Broker::durable`] resolves once it is on disk.
    pub fn record_blob(&self, space: &str, key: String, value: Option<Bytes>) -> u64 {
        let store = &self.inner.store;
        if !store.keeps() {
            return 0;
        }
        store.record(Change::Blob { space: space.into(), key, value })
    }

    /// Every record of `space` the store holds (an adapter's start-up).
    pub fn load_blobs(&self, space: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        self.inner.store.load_blobs(space)
    }

    /// Waits until the change with store `ticket` is durable.
    pub async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        self.inner.store.durable(ticket).await
    }

    /// Makes everything recorded durable and closes the store; call once connections are
    /// gone at shutdown.
    pub fn close_store(&self) {
        self.inner.store.close();
    }

    /// Kicks a client off (administrative action); true if it was connected.
    pub fn kick(&self, client_id: &ClientId) -> bool {
        let session = self.inner.sessions.lock().get(client_id).cloned();
        let Some(s) = session else { return false };
        let st = s.state.lock();
        match &st.attached {
            Some(a) => {
                a.signal.close(DisconnectReason::Kicked);
                true
            }
            None => false,
        }
    }

    /// Connections of all protocols now open.
    pub fn connection_count(&self) -> u64 {
        self.inner.metrics.connections()
    }
}

fn clamp_expiry(asked: Option<Duration>, max: Option<Duration>) -> Option<Duration> {
    match (asked, max) {
        (None, m) => m,
        (Some(a), Some(m)) => Some(a.min(m)),
        (Some(a), None) => Some(a),
    }
}
